// Audio built to lie or to stall, sent through the real route: the duration recorded is what the
// bytes hold, and no file can make the meter hold up other requests. The byte-level corpus (one
// test per lie and container) is in crates/core/src/media/duration/; these prove the route end to end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { errorOf, fixture, startStack, until, type Stack } from './helpers'

let s: Stack
let alice: string

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
})
afterAll(() => s.close())

const recording = () => s.session('user_alice', null, { status: 'recording' })
const meta = (type: string, durationMs: number) => ({ 'x-content-type': type, 'x-duration-ms': String(durationMs) })

/**
 * The report that stalled the process: `ftyp`, then a `moof/traf` holding 4,000 `trun` boxes of 16
 * bytes, each claiming 2^32-1 samples with no per-sample fields (about 4.3 billion loop passes
 * each, in the meter as it was).
 */
function stallingMp4(): Buffer {
  const trun = Buffer.from('00000010' + '7472756e' + '00000000' + 'ffffffff', 'hex')
  const runs = Buffer.concat(Array.from({ length: 4000 }, () => trun))
  const traf = Buffer.concat([u32(8 + runs.length), Buffer.from('traf'), runs])
  const moof = Buffer.concat([u32(8 + traf.length), Buffer.from('moof'), traf])
  return Buffer.concat([Buffer.from('00000010' + '66747970' + '4d344120' + '00000000', 'hex'), moof])
}
function u32(n: number) {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

describe('no upload can stall the process', () => {
  it('while four uploads built to stall the meter are mid-stream, a GET of another session is answered', async () => {
    const listened = await s.session('user_alice') // has audio
    const body = stallingMp4()
    const cut = 60_000
    const gates: (() => void)[] = []
    const putsBefore = s.blob.calls.put
    const uploads = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const id = await recording()
        const gate = new Promise<void>((release) => gates.push(release))
        const stream = new ReadableStream({
          async start(c) {
            c.enqueue(new Uint8Array(body.subarray(0, cut))) // the 4,000 boxes are in here
            await gate
            c.enqueue(new Uint8Array(body.subarray(cut)))
            c.close()
          },
        })
        return { id, answer: s.post(id, stream, { token: alice, headers: meta('audio/mp4', 5000) }) }
      }),
    )
    // All four are streaming into storage, so their first 60 KB went through the meter.
    expect(await until(() => s.blob.calls.put - putsBefore >= 4, 20_000)).toBe(true)
    await new Promise((r) => setTimeout(r, 300))
    const get = await s.get(listened, { token: alice })
    expect(get.status).toBe(200)
    expect((await get.arrayBuffer()).byteLength).toBe(s.wav.length)
    // Only now may the uploads end; each is refused (no audio in it), none is stored or attached.
    const settled = await Promise.race([
      Promise.all(uploads.map((u) => u.answer)).then(() => 'answered'),
      new Promise((r) => setTimeout(() => r('still open'), 500)),
    ])
    expect(settled).toBe('still open')
    gates.forEach((release) => release())
    for (const u of uploads) {
      const e = await errorOf(await u.answer)
      expect(e.status).toBe(400)
      expect(['duration_unmeasurable', 'inconsistent_audio']).toContain(e.code)
      expect((await s.convex.getSession(u.id)).status).toBe('recording')
    }
    expect(s.blob.list().filter((p) => uploads.some((u) => p.includes(u.id)))).toEqual([])
  })
})

/** `sweep-60s.webm` with its Info `Duration` rewritten to say 5 s, in front of 60 s of blocks. */
function webmClaiming5s(): Buffer {
  const webm = Buffer.from(fixture('sweep-60s.webm'))
  const at = webm.indexOf(Buffer.from([0x44, 0x89, 0x88])) // Duration, an 8-byte float
  expect(webm.readDoubleBE(at + 3)).toBeCloseTo(60_008, 0)
  webm.writeDoubleBE(5_000, at + 3)
  return webm
}

describe('a header cannot shorten the recording', () => {
  it('a WebM whose Duration says 5 s in front of 60 s of audio, declared 5 s, is 400 inconsistent_audio; nothing stored', async () => {
    const id = await recording()
    const before = s.blob.list()
    const e = await errorOf(await s.post(id, webmClaiming5s(), { token: alice, headers: meta('audio/webm', 5000) }))
    expect([e.status, e.code]).toEqual([400, 'inconsistent_audio'])
    expect(s.blob.list()).toEqual(before)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  it('the honest 60 s WebM, declared 60 s, records what its packets hold', async () => {
    const id = await recording()
    const res = await s.post(id, Buffer.from(fixture('sweep-60s.webm')), {
      token: alice,
      headers: meta('audio/webm', 60_000),
    })
    expect(res.status).toBe(201)
    const body = await res.json()
    expect(body.durationSource).toBe('measured')
    expect(Math.abs(body.durationMs - 60_000)).toBeLessThanOrEqual(600)
  })
})
