import { loadInventoryFile } from '../inventory/file.js'
import { InventoryIndex } from '../inventory/inventory-index.js'
import { loadKubeConfig } from '../kube/config.js'
import { kubeConfigHttp } from '../kube/http.js'
import { silentLogger } from '../util/logger.js'

// Where the offline tools get their inventory: a snapshot file, or one full list of a live
// cluster through the same watch the webhook uses, closed as soon as it has synced.

export interface InventorySourceOptions {
  inventoryFile?: string
  kubeconfig?: string
  staleAfterMs: number
  now: number
  /** How long to wait for the cluster's first full list. */
  syncTimeoutMs?: number
  /** Told each field of an inventory file that could not be read and was left out. */
  onSkipped?: (message: string) => void
}

export async function loadInventory(options: InventorySourceOptions): Promise<InventoryIndex> {
  const index = new InventoryIndex({ staleAfterMs: options.staleAfterMs })
  if (options.inventoryFile !== undefined) {
    const summary = await loadInventoryFile(options.inventoryFile, index, options.now)
    for (const message of summary.skipped) options.onSkipped?.(`${options.inventoryFile}: ${message}`)
    return index
  }
  const { startInventoryWatch } = await import('../inventory/watch.js')
  const http = kubeConfigHttp(await loadKubeConfig(options.kubeconfig))
  const watch = startInventoryWatch({ http, sink: index, log: silentLogger })
  const timeoutMs = options.syncTimeoutMs ?? 30_000
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      watch.synced,
      new Promise((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `the cluster at ${http.server} did not list nodes, nodeimagesets and namespaces within ${timeoutMs / 1000}s`,
              ),
            ),
          timeoutMs,
        )
      }),
    ])
  } finally {
    clearTimeout(timer)
    await watch.close()
  }
  return index
}
