import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { pack } from 'tar-stream'

// Builds a tiny OCI image layout tarball (what `ctr images import` and `docker save` accept)
// without a registry: oci-layout, index.json naming the image, and blobs/sha256/ holding a
// config, a manifest and one gzip layer with a single file.

export interface OciImageOptions {
  /** Full, normalised names, e.g. `docker.io/neverpull/a:1`; each becomes an index.json entry. */
  names: string[]
  /** Content of the one file in the layer; different content gives a different image. */
  content: string
}

export interface OciImage {
  /** Archive bytes. */
  tar: Buffer
  names: string[]
  manifestDigest: string
  /** The image ID as containerd's CRI reports it. */
  configDigest: string
  layerDigest: string
  /** Bytes of manifest + config + compressed layer. */
  contentSize: number
}

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const CONFIG = 'application/vnd.oci.image.config.v1+json'
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip'

// Fixed mtime: the same inputs give the same digests on every run.
const EPOCH = new Date(0)

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

async function tarOf(files: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const p = pack()
  for (const f of files) p.entry({ name: f.name, mtime: EPOCH, mode: 0o644 }, f.data)
  p.finalize()
  const chunks: Buffer[] = []
  for await (const chunk of p) chunks.push(Buffer.from(chunk as Uint8Array))
  return Buffer.concat(chunks)
}

export function ociArch(arch: string = process.arch): string {
  switch (arch) {
    case 'x64':
      return 'amd64'
    case 'ia32':
      return '386'
    default:
      return arch
  }
}

/** The tag part of a name, for `org.opencontainers.image.ref.name`. */
function refName(name: string): string {
  const slash = name.lastIndexOf('/')
  const colon = name.lastIndexOf(':')
  return colon > slash ? name.slice(colon + 1) : 'latest'
}

export async function buildOciImage(options: OciImageOptions): Promise<OciImage> {
  const layerTar = await tarOf([{ name: 'hello.txt', data: Buffer.from(options.content) }])
  const layer = gzipSync(layerTar)
  const layerDigest = sha256(layer)
  const config = Buffer.from(
    JSON.stringify({
      architecture: ociArch(),
      os: 'linux',
      config: { Cmd: ['/hello.txt'] },
      rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
    }),
  )
  const configDigest = sha256(config)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: CONFIG, digest: configDigest, size: config.length },
      layers: [{ mediaType: LAYER, digest: layerDigest, size: layer.length }],
    }),
  )
  const manifestDigest = sha256(manifest)
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: options.names.map((name) => ({
        mediaType: MANIFEST,
        digest: manifestDigest,
        size: manifest.length,
        platform: { architecture: ociArch(), os: 'linux' },
        annotations: {
          'io.containerd.image.name': name,
          'org.opencontainers.image.ref.name': refName(name),
        },
      })),
    }),
  )
  const blob = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`
  const tar = await tarOf([
    { name: 'oci-layout', data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { name: 'index.json', data: index },
    { name: blob(configDigest), data: config },
    { name: blob(manifestDigest), data: manifest },
    { name: blob(layerDigest), data: layer },
  ])
  return {
    tar,
    names: [...options.names],
    manifestDigest,
    configDigest,
    layerDigest,
    contentSize: manifest.length + config.length + layer.length,
  }
}

/** Builds the image and writes it to `dir/file`; returns the image and the tarball path. */
export async function writeOciImage(
  dir: string,
  file: string,
  options: OciImageOptions,
): Promise<OciImage & { path: string }> {
  const image = await buildOciImage(options)
  const path = join(dir, file)
  await writeFile(path, image.tar)
  return { ...image, path }
}
