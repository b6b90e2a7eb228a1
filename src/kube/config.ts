import type { KubeConfig } from '@kubernetes/client-node'
import { errorMessage } from '../util/guards.js'

/**
 * A kubeconfig: the file given, else what kubectl would use ($KUBECONFIG, all of its
 * files merged; ~/.kube/config; in a pod, the service account). The library is imported
 * here, on demand: it is large, and most runs (the agent in a pod, offline checks) never
 * need it.
 */
export async function loadKubeConfig(path?: string): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node')
  const kc = new KubeConfig()
  if (path === undefined || path === '') {
    kc.loadFromDefault()
    return kc
  }
  try {
    kc.loadFromFile(path)
  } catch (err) {
    throw new Error(`cannot load kubeconfig "${path}": ${errorMessage(err)}`, { cause: err })
  }
  return kc
}
