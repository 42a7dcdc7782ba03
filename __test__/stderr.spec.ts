// Logging never fails a request: Node makes fd 2 non-blocking, and when stderr is a pipe nobody
// reads, every write answers EAGAIN. The route runs in a process whose stderr is such a pipe, full
// before the first request; every answer is still the right one, the process stays up, and the
// lines it could not write are counted in the records (logLinesDropped).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startStack, type Stack } from './helpers'
import { startRouteProcess, type RouteProcess } from './route-process'

let s: Stack
let route: RouteProcess
beforeAll(async () => {
  s = await startStack()
  route = await startRouteProcess({ app: s.options() }, { stderr: 'unread' })
})
afterAll(async () => {
  route?.stop()
  await s.close()
})

describe('a full stderr pipe', () => {
  it('200 Range GETs answer 206 and an upload 201; the process lives and counts the dropped lines', async () => {
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const id = await s.session('user_alice')
    const statuses = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const res = await fetch(route.route('app', id), {
          headers: { authorization: `Bearer ${alice}`, range: `bytes=${i * 100}-${i * 100 + 99}` },
        })
        const body = await res.arrayBuffer()
        return res.status === 206 && body.byteLength === 100 ? 206 : res.status
      }),
    )
    expect(statuses.filter((st) => st !== 206)).toEqual([])

    const recording = await s.session('user_alice', null, { status: 'recording' })
    const upload = await fetch(route.route('app', recording), {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, 'x-duration-ms': '5000', 'x-content-type': 'audio/wav' },
      body: s.wav,
    })
    expect(upload.status, await upload.clone().text()).toBe(201)
    expect((await s.convex.getSession(recording)).status).toBe('transcribing')

    expect(route.alive()).toBe(true)
    const { records } = await route.stats()
    expect(records.length).toBe(201)
    const dropped = records.map((r) => r.logLinesDropped)
    expect(Math.max(...dropped)).toBeGreaterThan(0)
    expect(dropped.every((n) => Number.isInteger(n) && n >= 0)).toBe(true)
  })
})
