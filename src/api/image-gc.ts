// The kubelet's image garbage collection settings. They live in the kubelet's config on each
// node and are not visible through the API, so the webhook is told them by flag. Defaults
// are the kubelet's (pkg/kubelet/apis/config/v1beta1/defaults.go).

export interface ImageGcPolicy {
  /** --image-gc-high-threshold: at this image filesystem usage (percent) GC starts; 100 turns it off. */
  highThresholdPercent: number
  /** --image-gc-low-threshold: GC frees images until usage is below this. */
  lowThresholdPercent: number
  /** --image-maximum-gc-age (ImageMaximumGCAge, 1.29+): unused images older than this go regardless; 0 = off. */
  maximumAgeMs: number
}

export const DEFAULT_IMAGE_GC: ImageGcPolicy = Object.freeze({
  highThresholdPercent: 85,
  lowThresholdPercent: 80,
  maximumAgeMs: 0,
})
