import { inClusterHttp, kubeConfigHttp, type KubeHttp } from './http.js'
import { SERVICE_ACCOUNT_DIR } from '../api/service-account.js'
import { loadKubeConfig } from './config.js'

export interface ConnectOptions {
  /** --kubeconfig: always this file. */
  kubeconfig?: string | undefined
  /** In a pod: where the service account's token and ca.crt are mounted. */
  serviceAccountDir?: string | undefined
}

/**
 * The API server this process talks to. In a pod (KUBERNETES_SERVICE_HOST set) without
 * --kubeconfig: its service account, without loading client-node. Otherwise the kubeconfig
 * (the file given, else $KUBECONFIG or ~/.kube/config), through client-node, imported only here.
 */
export async function connectKube(options: ConnectOptions, env: NodeJS.ProcessEnv): Promise<KubeHttp> {
  if (options.kubeconfig === undefined && env['KUBERNETES_SERVICE_HOST']) {
    return inClusterHttp(env, options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR)
  }
  return kubeConfigHttp(await loadKubeConfig(options.kubeconfig))
}
