// Kubernetes name rules (k8s.io/apimachinery pkg/util/validation), in one place for every
// flag and config value that names an object.

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/

/** IsDNS1123Label (namespaces): lower-case alphanumerics and '-', alphanumeric at both ends, at most 63. */
export function isDns1123Label(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name)
}

/**
 * IsDNS1123Subdomain (Node and ServiceAccount names): at most 253, dot-separated DNS-1123
 * labels; apimachinery caps the whole name, not each label.
 */
export function isDns1123Subdomain(name: string): boolean {
  return name.length <= 253 && DNS1123_SUBDOMAIN.test(name)
}

/** IsDNS1035Label (Service names): a DNS-1123 label that starts with a letter. */
export function isDns1035Label(name: string): boolean {
  return name.length <= 63 && DNS1035_LABEL.test(name)
}
