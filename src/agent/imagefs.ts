import { statfs } from 'node:fs/promises'
import { join } from 'node:path'
import type { NodeImageSetImageFilesystem } from '../api/types.js'
import type { CriClient } from './cri.js'

// The image filesystem as the kubelet's image garbage collector sees it: the runtime names
// it (CRI ImageFsInfo), statfs sizes it. The kubelet (pkg/kubelet/images/image_gc_manager.go)
// computes usagePercent = 100 - available*100/capacity in integer arithmetic and frees
// unpinned, unused images once that reaches --image-gc-high-threshold.

export interface FsSize {
  capacityBytes: bigint
  availableBytes: bigint
}

export type StatFs = (path: string) => Promise<FsSize>

export const nodeStatFs: StatFs = async (path) => {
  const s = await statfs(path, { bigint: true })
  return { capacityBytes: s.blocks * s.bsize, availableBytes: s.bavail * s.bsize }
}

/** The kubelet's usagePercent, exactly: integer division, in 64 bits. */
export function usedPercent(size: FsSize): number | undefined {
  if (size.capacityBytes <= 0n) return undefined
  const percent = 100n - (size.availableBytes * 100n) / size.capacityBytes
  return Number(percent < 0n ? 0n : percent > 100n ? 100n : percent)
}

/**
 * The runtime's image filesystem with its size. `hostRoot` is where the node's root is
 * mounted in the agent's container (the DaemonSet mounts the runtime's directory there);
 * without the size the usage is still published, the percentage not.
 */
export async function readImageFilesystem(
  cri: Pick<CriClient, 'imageFsInfo'>,
  statFs: StatFs,
  hostRoot: string,
): Promise<NodeImageSetImageFilesystem | undefined> {
  if (cri.imageFsInfo === undefined) return undefined
  const fs = await cri.imageFsInfo()
  if (fs === undefined) return undefined
  const out: NodeImageSetImageFilesystem = { usedBytes: fs.usedBytes }
  if (fs.mountpoint !== '') out.mountpoint = fs.mountpoint
  if (fs.mountpoint === '') return out
  let size: FsSize
  try {
    size = await statFs(hostRoot === '' || hostRoot === '/' ? fs.mountpoint : join(hostRoot, fs.mountpoint))
  } catch {
    return out
  }
  const percent = usedPercent(size)
  if (percent === undefined) return out
  out.capacityBytes = Number(size.capacityBytes)
  out.availableBytes = Number(size.availableBytes)
  out.usedPercent = percent
  return out
}
