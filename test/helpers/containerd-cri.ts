import type { Test } from 'tap'
import { connectCri, type CriClient } from '../../src/agent/cri.js'
import { startContainerd, type Containerd } from './containerd.js'
import { errorMessage } from '../../src/util/guards.js'

/**
 * A private containerd and a CRI client on its socket, both closed when the test ends; a
 * containerd that does not start fails the test (it was found, so it should run) and gives
 * undefined. Tests skip with containerdSkipReason() where there is none.
 */
export async function containerdWithCri(t: Test): Promise<{ ctrd: Containerd; cri: CriClient } | undefined> {
  let ctrd: Containerd
  try {
    ctrd = await startContainerd()
  } catch (err) {
    t.fail(`containerd did not start: ${errorMessage(err)}`)
    return undefined
  }
  t.teardown(() => ctrd.cleanup())
  const cri = connectCri(ctrd.endpoint)
  t.teardown(() => cri.close())
  return { ctrd, cri }
}
