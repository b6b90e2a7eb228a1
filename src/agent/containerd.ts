import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import type { NodeImageSetImageElsewhere } from '../api/types.js'
import { normalizeEndpoint } from './cri.js'

// Images the node holds where the kubelet does not look. containerd keeps images per
// namespace and its CRI plugin (the kubelet's view) uses only `k8s.io`; an image imported
// with `ctr images import` (namespace `default`) or loaded into Docker with the containerd
// image store (`moby`) is on the node and still ErrImageNeverPull. containerd's own API on
// the same socket lists them. Read-only: nothing here writes to the runtime.

export const CONTAINERD_PROTO_PATHS = [
  fileURLToPath(new URL('../../proto/containerd-images.proto', import.meta.url)),
  fileURLToPath(new URL('../../proto/containerd-images-v1.proto', import.meta.url)),
]

/** The namespace of the CRI plugin: the only one the kubelet sees. */
export const KUBELET_NAMESPACE = 'k8s.io'

/** How many images elsewhere a NodeImageSet carries; the rest are only counted. */
export const MAX_IMAGES_ELSEWHERE = 1000

const MAX_MESSAGE_BYTES = 16 * 1024 * 1024

export interface ImagesElsewhere {
  /** Sorted by namespace and name, at most MAX_IMAGES_ELSEWHERE. */
  images: NodeImageSetImageElsewhere[]
  /** Found beyond the bound. */
  omitted: number
}

export interface ContainerdClient {
  /** Every image outside k8s.io. Rejects when containerd's API is not there (CRI-O, cri-dockerd). */
  listImagesElsewhere(): Promise<ImagesElsewhere>
  close(): void
}

interface RawImage {
  name: string
  target?: { digest?: string } | null
}

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall

interface NamespacesClient extends grpc.Client {
  List: Unary<{ filter?: string }, { namespaces: Array<{ name: string }> }>
}

interface ImagesClient extends grpc.Client {
  List: Unary<{ filters?: string[] }, { images: RawImage[] }>
}

type ClientClass<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => C

interface Loaded {
  containerd: {
    services: {
      namespaces: { v1: { Namespaces: ClientClass<NamespacesClient> } }
      images: { v1: { Images: ClientClass<ImagesClient> } }
    }
  }
}

function load(): Loaded {
  const definition = protoLoader.loadSync(CONTAINERD_PROTO_PATHS, {
    keepCase: false,
    longs: String,
    defaults: true,
    arrays: true,
  })
  return grpc.loadPackageDefinition(definition) as unknown as Loaded
}

/** Sorted and bounded: equal sets give equal JSON, so an unchanged node costs no write. */
export function boundImagesElsewhere(all: NodeImageSetImageElsewhere[], max = MAX_IMAGES_ELSEWHERE): ImagesElsewhere {
  const seen = new Set<string>()
  const unique: NodeImageSetImageElsewhere[] = []
  for (const image of all) {
    const key = `${image.containerdNamespace}\u0000${image.name}`
    if (seen.has(key)) continue
    seen.add(key)
    unique.push(image)
  }
  unique.sort((a, b) =>
    a.containerdNamespace < b.containerdNamespace
      ? -1
      : a.containerdNamespace > b.containerdNamespace
        ? 1
        : a.name < b.name
          ? -1
          : a.name > b.name
            ? 1
            : 0,
  )
  return { images: unique.slice(0, max), omitted: Math.max(0, unique.length - max) }
}

export function connectContainerd(endpoint: string, options: { timeoutMs?: number } = {}): ContainerdClient {
  const address = normalizeEndpoint(endpoint)
  const timeoutMs = options.timeoutMs ?? 5_000
  const credentials = grpc.credentials.createInsecure()
  const channelOptions: grpc.ClientOptions = { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES }
  function call<Req, Res>(
    what: string,
    client: grpc.Client,
    unary: Unary<Req, Res>,
    request: Req,
    namespace?: string,
  ): Promise<Res> {
    const metadata = new grpc.Metadata()
    if (namespace !== undefined) metadata.set('containerd-namespace', namespace)
    return new Promise((resolve, reject) => {
      unary.call(client, request, metadata, { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err) {
          const status = grpc.status[err.code] ?? String(err.code)
          reject(
            new Error(`containerd ${what} on ${address} failed: ${status}: ${err.details || err.message}`, {
              cause: err,
            }),
          )
        } else if (response === undefined) reject(new Error(`containerd ${what} on ${address} returned no response`))
        else resolve(response)
      })
    })
  }

  // One channel for both services, kept between listings (a channel per listing left an
  // HTTP/2 session's buffers to the collector every interval). Replaced after UNAVAILABLE,
  // so it never sits in grpc-js's reconnect backoff after containerd restarted. The protos
  // are loaded on the first listing: only a containerd node lists, and a node whose runtime
  // is not containerd never pays for them.
  let loaded: Loaded | undefined
  let clients: { namespaces: NamespacesClient; images: ImagesClient } | undefined
  function connect(): { namespaces: NamespacesClient; images: ImagesClient } {
    if (clients !== undefined) return clients
    loaded ??= load()
    const { containerd } = loaded
    const namespaces = new containerd.services.namespaces.v1.Namespaces(address, credentials, channelOptions)
    const images = new containerd.services.images.v1.Images(address, credentials, {
      ...channelOptions,
      channelOverride: namespaces.getChannel(),
    })
    clients = { namespaces, images }
    return clients
  }
  function disconnect(): void {
    clients?.images.close()
    clients?.namespaces.close()
    clients = undefined
  }

  return {
    async listImagesElsewhere() {
      const c = connect()
      try {
        return await list(c.namespaces, c.images)
      } catch (err) {
        if ((err as { cause?: { code?: unknown } }).cause?.code === grpc.status.UNAVAILABLE) disconnect()
        throw err
      }
    },
    close() {
      disconnect()
    },
  }

  async function list(namespaces: NamespacesClient, images: ImagesClient): Promise<ImagesElsewhere> {
    const listed = await call('Namespaces.List', namespaces, namespaces.List, {})
    const all: NodeImageSetImageElsewhere[] = []
    for (const ns of listed.namespaces) {
      if (ns.name === KUBELET_NAMESPACE || ns.name === '') continue
      const res = await call('Images.List', images, images.List, {}, ns.name)
      for (const image of res.images) {
        if (image.name === '') continue
        const digest = image.target?.digest ?? ''
        all.push({ name: image.name, ...(digest === '' ? {} : { digest }), containerdNamespace: ns.name })
      }
    }
    return boundImagesElsewhere(all)
  }
}
