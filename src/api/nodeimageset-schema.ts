import type { OpenApiSchema } from './openapi.js'

// THE NodeImageSet schema: the one source for the CRD's openAPIV3Schema
// (manifests/base/crd.yaml), the TypeScript types (nodeimageset.generated.ts), the
// inventory reader's validator and the write guard's. Change it here, then run
// `npm run generate`; a test fails while the derived files lag behind.
//
// NodeImageSet is the contract between the agent (one writer per node) and the webhook
// (many readers), so the schema is strict: anything not declared here would be pruned
// silently by the apiserver, and the webhook would then decide on data it never got.
// Lists are atomic because the agent replaces the whole list on each server-side apply;
// per-item ownership (listType map) would only bloat managedFields on nodes with
// thousands of images, next to etcd's 1.5 MiB object limit.
// `title` names the generated TypeScript type; the apiserver accepts and ignores it.

export const NODE_IMAGE_SET_SCHEMA = {
  type: 'object',
  description:
    "The images one node's container runtime holds, as the neverpull-guard agent last listed them over CRI. Named after its node.",
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object' },
    spec: {
      title: 'NodeImageSetSpec',
      type: 'object',
      required: ['nodeName', 'images'],
      properties: {
        nodeName: {
          type: 'string',
          description: "The node whose runtime holds these images; always the object's own name.",
          minLength: 1,
          maxLength: 253,
        },
        runtime: {
          title: 'NodeImageSetRuntime',
          type: 'object',
          description: 'The container runtime as RuntimeService/Version reports it.',
          properties: {
            name: {
              type: 'string',
              description: '`containerd`, `cri-o`, `docker` ... (runtime_name).',
              maxLength: 253,
            },
            version: { type: 'string', description: 'runtime_version.', maxLength: 253 },
            endpoint: {
              type: 'string',
              description: 'The CRI endpoint the agent used, e.g. unix:///run/containerd/containerd.sock.',
              maxLength: 1024,
            },
            unqualifiedSearchRegistries: {
              type: 'array',
              description:
                'CRI-O: the registries a short name is tried in, in order (registries.conf unqualified-search-registries, drop-ins merged). Absent: not known.',
              maxItems: 100,
              'x-kubernetes-list-type': 'atomic',
              items: { type: 'string', minLength: 1, maxLength: 253 },
            },
            shortNameAliases: {
              type: 'object',
              description:
                'CRI-O: short-name aliases from registries.conf [aliases] (drop-ins merged), short name -> fully qualified repository.',
              maxProperties: 10000,
              additionalProperties: { type: 'string', maxLength: 1024 },
            },
          },
        },
        images: {
          type: 'array',
          description: 'Every image the runtime lists (ImageService/ListImages).',
          maxItems: 20000,
          'x-kubernetes-list-type': 'atomic',
          items: {
            title: 'NodeImageSetImage',
            type: 'object',
            required: ['id'],
            properties: {
              id: {
                type: 'string',
                description: 'Image ID, e.g. sha256:4d1f... (containerd: the config digest).',
                minLength: 1,
                maxLength: 512,
              },
              repoTags: {
                type: 'array',
                description: 'Normalised tag references, e.g. docker.io/library/nginx:1.27.',
                maxItems: 1000,
                'x-kubernetes-list-type': 'atomic',
                items: { type: 'string', maxLength: 1024 },
              },
              repoDigests: {
                type: 'array',
                description: 'Normalised digest references, e.g. docker.io/library/nginx@sha256:....',
                maxItems: 1000,
                'x-kubernetes-list-type': 'atomic',
                items: { type: 'string', maxLength: 1024 },
              },
              size: {
                description:
                  'Bytes, as the runtime reports them. CRI reports a uint64; above int64 the agent sends a decimal string.',
                'x-kubernetes-int-or-string': true,
              },
              pinned: {
                type: 'boolean',
                description: 'The runtime keeps the image from garbage collection (CRI pinned).',
              },
            },
          },
        },
        imagesElsewhere: {
          type: 'array',
          description:
            'Images the node holds where the kubelet does not look: containerd namespaces other than k8s.io ' +
            '(ctr images import without -n k8s.io; Docker with the containerd image store uses moby). Never counted as present. ' +
            'At most 1000, sorted by namespace and name.',
          maxItems: 1000,
          'x-kubernetes-list-type': 'atomic',
          items: {
            title: 'NodeImageSetImageElsewhere',
            type: 'object',
            required: ['name', 'containerdNamespace'],
            properties: {
              name: {
                type: 'string',
                description: 'The image name as containerd stores it (ctr images ls).',
                minLength: 1,
                maxLength: 1024,
              },
              digest: {
                type: 'string',
                description: 'The manifest or index digest the name points to.',
                maxLength: 200,
              },
              containerdNamespace: {
                type: 'string',
                description: 'The containerd namespace that holds it.',
                minLength: 1,
                maxLength: 253,
              },
            },
          },
        },
        imagesElsewhereOmitted: {
          type: 'integer',
          description: 'How many more images elsewhere the agent found than imagesElsewhere lists.',
          format: 'int32',
          minimum: 0,
        },
      },
    },
    status: {
      title: 'NodeImageSetStatus',
      type: 'object',
      properties: {
        observedTime: {
          type: 'string',
          description: 'RFC 3339 time the agent last confirmed the list against the runtime.',
          format: 'date-time',
        },
        imageCount: {
          type: 'integer',
          description: 'spec.images.length, for the printer column (a JSONPath cannot count an array).',
          format: 'int32',
          minimum: 0,
        },
        imageFilesystem: {
          title: 'NodeImageSetImageFilesystem',
          type: 'object',
          description:
            "The image filesystem as the kubelet's image garbage collector sees it: CRI ImageFsInfo and statfs of its mountpoint.",
          properties: {
            mountpoint: {
              type: 'string',
              description: 'Where the runtime keeps its images (CRI ImageFsInfo fs_id).',
              maxLength: 4096,
            },
            usedBytes: {
              type: 'integer',
              description: "Bytes the runtime's images use (CRI used_bytes).",
              format: 'int64',
              minimum: 0,
            },
            capacityBytes: {
              type: 'integer',
              description: 'Size of the filesystem (statfs).',
              format: 'int64',
              minimum: 0,
            },
            availableBytes: {
              type: 'integer',
              description: 'Bytes available on it (statfs).',
              format: 'int64',
              minimum: 0,
            },
            usedPercent: {
              type: 'integer',
              description:
                '100 - availableBytes*100/capacityBytes, as the kubelet compares it with --image-gc-high-threshold.',
              format: 'int32',
              minimum: 0,
              maximum: 100,
            },
          },
        },
        conditions: {
          type: 'array',
          maxItems: 16,
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['type'],
          items: {
            title: 'NodeImageSetCondition',
            type: 'object',
            required: ['type', 'status'],
            properties: {
              type: { type: 'string', maxLength: 316 },
              status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
              reason: { type: 'string', maxLength: 1024 },
              message: { type: 'string', maxLength: 32768 },
              lastTransitionTime: { type: 'string', format: 'date-time' },
            },
          },
        },
      },
    },
  },
} as const satisfies OpenApiSchema
