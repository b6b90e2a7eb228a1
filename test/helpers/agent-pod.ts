import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ensureCertificates } from '../../src/certs/files.js'

// The agent as the DaemonSet runs it, for the tests and the bench that start it as its own
// process: the manifest's NODE_OPTIONS, and a pod's service-account files for an HTTPS
// apiserver on 127.0.0.1. No tap here: the bench imports it too.

interface DaemonSet {
  spec: { template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } } }
}

const MANIFEST = new URL('../../manifests/base/agent-daemonset.yaml', import.meta.url)

/** The NODE_OPTIONS the DaemonSet gives the agent, read from its manifest so nothing can drift from it. */
export async function daemonSetNodeOptions(): Promise<string> {
  const ds = parseYaml(await readFile(MANIFEST, 'utf8')) as DaemonSet
  const value = ds.spec.template.spec.containers[0]?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value
  if (value === undefined) throw new Error('manifests/base/agent-daemonset.yaml sets no NODE_OPTIONS')
  return value
}

export interface PodServiceAccount {
  /** The directory to pass as the agent's service-account directory (token, ca.crt). */
  dir: string
  /** The apiserver's serving certificate and key (127.0.0.1), signed by the ca.crt in `dir`. */
  cert: string
  key: string
}

/** Under `root`: a CA and a serving certificate for 127.0.0.1, and the service-account files with `token`. */
export async function podServiceAccount(root: string, token: string, days = 1): Promise<PodServiceAccount> {
  const pki = await ensureCertificates({
    outDir: join(root, 'pki'),
    service: 'kubernetes',
    namespace: 'default',
    hosts: ['127.0.0.1'],
    days,
    force: false,
    now: new Date(),
  })
  const dir = join(root, 'serviceaccount')
  await mkdir(dir)
  await writeFile(join(dir, 'token'), token)
  await writeFile(join(dir, 'ca.crt'), await readFile(pki.paths.caCert))
  const [cert, key] = await Promise.all([readFile(pki.paths.cert, 'utf8'), readFile(pki.paths.key, 'utf8')])
  return { dir, cert, key }
}
