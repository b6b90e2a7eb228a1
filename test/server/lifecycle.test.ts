import t from 'tap'
import { Lifecycle, type Component } from '../../src/server/lifecycle.js'
import { silentLogger } from '../../src/util/logger.js'

function recording(events: string[]) {
  return (name: string, extra: Partial<Component> = {}): Component => ({
    name,
    start: () => void events.push(`start ${name}`),
    stop: () => void events.push(`stop ${name}`),
    ...extra,
  })
}

t.test('components start in order and stop in reverse, once', async (t) => {
  const events: string[] = []
  const c = recording(events)
  const life = new Lifecycle(silentLogger).add(c('inventory')).add(c('audit')).add(c('https'))
  t.equal(life.ready(), false, 'not ready before start')
  await life.start()
  t.equal(life.ready(), true)
  await Promise.all([life.stop(), life.stop()])
  await life.stop()
  t.same(events, ['start inventory', 'start audit', 'start https', 'stop https', 'stop audit', 'stop inventory'])
  t.equal(life.ready(), false, 'not ready once stopping')
})

t.test('ready means every component is ready', async (t) => {
  let synced = false
  const life = new Lifecycle(silentLogger)
    .add({ name: 'inventory', start: () => undefined, stop: () => undefined, ready: () => synced })
    .add({ name: 'https', start: () => undefined, stop: () => undefined })
  await life.start()
  t.equal(life.ready(), false)
  t.same(life.waitingFor(), ['inventory'])
  synced = true
  t.equal(life.ready(), true)
  t.same(life.waitingFor(), [])
})

t.test('a component that fails to start stops those started before it, and the error is passed on', async (t) => {
  const events: string[] = []
  const c = recording(events)
  const life = new Lifecycle(silentLogger)
    .add(c('inventory'))
    .add(
      c('https', {
        start: () => {
          throw new Error('EADDRINUSE')
        },
      }),
    )
    .add(c('never'))
  await t.rejects(life.start(), /EADDRINUSE/)
  t.same(events, ['start inventory', 'stop inventory'])
  t.equal(life.ready(), false)
})

t.test('a failing stop is logged and the others still stop', async (t) => {
  const events: string[] = []
  const errors: string[] = []
  const log = {
    ...silentLogger,
    error: (obj: object, msg: string) => void errors.push(`${(obj as { component: string }).component}: ${msg}`),
  }
  const c = recording(events)
  const life = new Lifecycle(log)
    .add(c('inventory'))
    .add(
      c('tls', {
        stop: () => {
          throw new Error('boom')
        },
      }),
    )
    .add(c('https'))
  await life.start()
  await life.stop()
  t.same(events, ['start inventory', 'start tls', 'start https', 'stop https', 'stop inventory'])
  t.same(errors, ['tls: component failed to stop cleanly'])
})

t.test('stopped while a component is starting: that one is stopped too, the rest never start', async (t) => {
  const events: string[] = []
  const c = recording(events)
  let release: () => void = () => undefined
  const slow = new Promise<void>((r) => (release = r))
  const life = new Lifecycle(silentLogger)
    .add(c('inventory'))
    .add(
      c('https', {
        start: async () => {
          events.push('start https')
          await slow
        },
      }),
    )
    .add(c('ops'))
  const starting = life.start()
  await new Promise((r) => setImmediate(r))
  const stopping = life.stop()
  release()
  await Promise.all([starting, stopping])
  t.same(events, ['start inventory', 'start https', 'stop inventory', 'stop https'])
  t.throws(() => life.add(c('late')), /added before start/)
})
