import { stat } from 'node:fs/promises'
import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import type { RuntimeImage, RuntimeInfo } from '../api/types.js'

// src/agent/cri.ts (via tsx) and dist/agent/cri.js are both two levels below the package
// root, which ships proto/ beside them.
export const CRI_PROTO_PATH = fileURLToPath(new URL('../../proto/cri-images.proto', import.meta.url))

/** Where kubeadm, CRI-O and cri-dockerd put their sockets, in the order we try them. */
export const DEFAULT_CRI_ENDPOINTS: readonly string[] = [
  'unix:///run/containerd/containerd.sock',
  'unix:///var/run/crio/crio.sock',
  'unix:///var/run/cri-dockerd.sock',
]

export const DEFAULT_CRI_TIMEOUT_MS = 5_000

// The kubelet allows 16 MiB CRI replies; grpc-js defaults to 4 MiB, which a node with a few
// thousand images and many tags can exceed.
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024

export interface CriClient {
  readonly endpoint: string
  listImages(): Promise<RuntimeImage[]>
  /**
   * ImageStatus, as the kubelet asks it: the image the runtime resolves `image` to, or
   * undefined when it has none. Throws CriError when the runtime answers with an error
   * (containerd: an ambiguous truncated ID).
   */
  imageStatus(image: string): Promise<RuntimeImage | undefined>
  /** ImageFsInfo: the first image filesystem the runtime reports, undefined when none (optional for fakes). */
  imageFsInfo?(): Promise<ImageFsUsage | undefined>
  version(): Promise<RuntimeInfo>
  close(): void
}

/** CRI FilesystemUsage of the image filesystem: where it is and what the images use. */
export interface ImageFsUsage {
  mountpoint: string
  usedBytes: number
}

export interface ConnectOptions {
  /** Deadline for each call, ms. */
  timeoutMs?: number
}

export class CriError extends Error {
  override readonly name = 'CriError'
  constructor(
    message: string,
    readonly endpoint: string,
    /** gRPC status code, when the call got that far. */
    readonly code?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/**
 * Accepts `unix:///abs/path`, `unix:/abs/path`, `unix:rel/path` and bare paths; returns the
 * canonical `unix:///abs/path` form used in messages and RuntimeInfo.endpoint.
 */
export function normalizeEndpoint(endpoint: string): string {
  const raw = endpoint.trim()
  if (raw === '') throw new CriError('CRI endpoint is empty', endpoint)
  let path: string
  if (raw.startsWith('unix://')) path = raw.slice('unix://'.length)
  else if (raw.startsWith('unix:')) path = raw.slice('unix:'.length)
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    throw new CriError(
      `unsupported CRI endpoint "${endpoint}": only unix sockets are supported (unix:///run/containerd/containerd.sock or a bare path)`,
      endpoint,
    )
  } else path = raw
  if (path === '') throw new CriError(`CRI endpoint "${endpoint}" has no socket path`, endpoint)
  return `unix://${isAbsolute(path) ? path : resolve(path)}`
}

export function socketPath(endpoint: string): string {
  return normalizeEndpoint(endpoint).slice('unix://'.length)
}

async function isSocket(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isSocket()
  } catch {
    return false
  }
}

/** Picks the first candidate whose socket exists; `exists` is injected for tests. */
export async function probeEndpoint(
  candidates: readonly string[] = DEFAULT_CRI_ENDPOINTS,
  exists: (path: string) => boolean | Promise<boolean> = isSocket,
): Promise<string> {
  for (const candidate of candidates) {
    const endpoint = normalizeEndpoint(candidate)
    if (await exists(socketPath(endpoint))) return endpoint
  }
  throw new CriError(
    `no container runtime socket found (tried ${candidates.join(', ')}); ` +
      'mount the runtime socket into the agent pod or pass --cri-endpoint',
    candidates.join(','),
  )
}

interface RawImage {
  id: string
  repoTags: string[]
  repoDigests: string[]
  size: number
  pinned: boolean
}

interface RawVersion {
  version: string
  runtimeName: string
  runtimeVersion: string
  runtimeApiVersion: string
}

type Unary<Req, Res> = (
  request: Req,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall

interface ImageServiceClient extends grpc.Client {
  ListImages: Unary<{ filter?: unknown }, { images: RawImage[] }>
  ImageStatus: Unary<{ image: { image: string }; verbose: boolean }, { image?: RawImage | null }>
  ImageFsInfo: Unary<
    Record<string, never>,
    { imageFilesystems: Array<{ fsId?: { mountpoint: string } | null; usedBytes?: { value: number } | null }> }
  >
}

interface RuntimeServiceClient extends grpc.Client {
  Version: Unary<{ version: string }, RawVersion>
}

interface RuntimeV1 {
  ImageService: new (
    address: string,
    credentials: grpc.ChannelCredentials,
    options?: grpc.ClientOptions,
  ) => ImageServiceClient
  RuntimeService: new (
    address: string,
    credentials: grpc.ChannelCredentials,
    options?: grpc.ClientOptions,
  ) => RuntimeServiceClient
}

let runtimeV1: RuntimeV1 | undefined

function loadRuntimeV1(): RuntimeV1 {
  if (runtimeV1) return runtimeV1
  const definition = protoLoader.loadSync(CRI_PROTO_PATH, {
    keepCase: false,
    // uint64 sizes as numbers, exact to 8 PiB: a string (longs: String) would be converted to
    // a number all the same, after a 64-bit division per image per interval to write it.
    longs: Number,
    defaults: true,
    arrays: true,
  })
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { runtime: { v1: RuntimeV1 } }
  runtimeV1 = loaded.runtime.v1
  return runtimeV1
}

function toRuntimeImage(raw: RawImage): RuntimeImage {
  return {
    id: raw.id,
    repoTags: raw.repoTags,
    repoDigests: raw.repoDigests,
    size: raw.size,
    pinned: raw.pinned,
  }
}

function describe(err: grpc.ServiceError): string {
  const status = grpc.status[err.code] ?? String(err.code)
  // grpc-js appends an empty "Resolution note: " to connection errors; it only adds noise.
  const details = (err.details || err.message).replace(/\s*Resolution note:\s*$/, '')
  return `${status}: ${details}`
}

export function connectCri(endpoint: string, options: ConnectOptions = {}): CriClient {
  const canonical = normalizeEndpoint(endpoint)
  const timeoutMs = options.timeoutMs ?? DEFAULT_CRI_TIMEOUT_MS
  const { ImageService, RuntimeService } = loadRuntimeV1()
  const credentials = grpc.credentials.createInsecure()
  const channelOptions: grpc.ClientOptions = {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  }
  const connect = () => {
    const images = new ImageService(canonical, credentials, channelOptions)
    const runtime = new RuntimeService(canonical, credentials, {
      ...channelOptions,
      channelOverride: images.getChannel(),
    })
    return { images, runtime }
  }
  let clients = connect()
  // After the runtime was unreachable the channel sits in grpc-js's reconnect backoff (up
  // to 120 s). The socket is local and a channel cheap: the next call gets a fresh one,
  // so a restarted runtime is seen at the agent's next tick.
  let fresh = true
  function current(): ReturnType<typeof connect> {
    if (!fresh) {
      clients.images.close()
      clients = connect()
      fresh = true
    }
    return clients
  }

  function call<Req, Res>(
    method: string,
    fn: (c: ReturnType<typeof connect>) => [Unary<Req, Res>, grpc.Client],
    request: Req,
  ): Promise<Res> {
    const [unary, client] = fn(current())
    return new Promise((resolvePromise, reject) => {
      unary.call(client, request, { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err) {
          if (err.code === grpc.status.UNAVAILABLE) fresh = false
          reject(
            new CriError(`CRI ${method} on ${canonical} failed: ${describe(err)}`, canonical, err.code, { cause: err }),
          )
        } else if (response === undefined) {
          reject(new CriError(`CRI ${method} on ${canonical} returned no response`, canonical))
        } else {
          resolvePromise(response)
        }
      })
    })
  }

  return {
    endpoint: canonical,
    async listImages() {
      const res = await call('ListImages', (c) => [c.images.ListImages, c.images], {})
      return res.images.map(toRuntimeImage)
    },
    async imageStatus(image: string) {
      const res = await call('ImageStatus', (c) => [c.images.ImageStatus, c.images], {
        image: { image },
        verbose: false,
      })
      // proto3: an unset message field decodes as null (defaults: true) or undefined.
      return res.image === undefined || res.image === null ? undefined : toRuntimeImage(res.image)
    },
    async imageFsInfo() {
      const res = await call('ImageFsInfo', (c) => [c.images.ImageFsInfo, c.images], {})
      const fs = res.imageFilesystems[0]
      if (fs === undefined) return undefined
      return { mountpoint: fs.fsId?.mountpoint ?? '', usedBytes: fs.usedBytes?.value ?? 0 }
    },
    async version() {
      const res = await call('Version', (c) => [c.runtime.Version, c.runtime], { version: 'v1' })
      return { name: res.runtimeName, version: res.runtimeVersion, endpoint: canonical }
    },
    close() {
      clients.runtime.close()
      clients.images.close()
    },
  }
}
