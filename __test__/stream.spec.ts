// The body stream: cancellation closes the upstream at once (even when it is stalled), and many
// large streams at once keep memory flat. Bytes are asserted, never times beyond a generous bound.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRouteServer } from '../stack/route-server.mjs'
import { writeLargeWav } from '../stack/wav.mjs'
import { createAudioHandlers } from '../index.js'
import { startStack, until, type Stack } from './helpers'

// `gc()` for the memory test below (flags set before any context that needs it is made).
v8.setFlagsFromString('--expose-gc')

let s: Stack
let alice: string

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken()
})
afterAll(() => s.close())

describe('cancellation', () => {
  it('cancelling the body while the upstream is stalled closes the upstream connection within a second', async () => {
    const id = await s.session('user_alice', '/stall/tone.wav')
    const res = await s.get(id, { token: alice })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    // Take everything the storage sent before it stalled (64 KiB), so the next read must wait.
    let got = 0
    while (got < 64 * 1024) {
      const { value } = await reader.read()
      got += value!.byteLength
    }
    expect(got).toBe(64 * 1024)
    const record = s.audio.stalled.at(-1)!
    expect(record.closedAt).toBeNull()
    // A read is now pending on a stalled upstream: the case napi's built-in stream leaks.
    const pending = reader.read()
    await new Promise((r) => setTimeout(r, 50))
    const cancelledAt = Date.now()
    await reader.cancel()
    expect(await until(() => record.closedAt !== null, 1000)).toBe(true)
    expect(record.closedAt! - cancelledAt).toBeLessThan(1000)
    await expect(pending).resolves.toMatchObject({ done: true })
  })

  it('a client that disconnects from a Next-style server closes the upstream connection', async () => {
    const app = await startRouteServer({ handlers: createAudioHandlers(s.options()) })
    try {
      const id = await s.session('user_alice', '/stall/tone.wav')
      const controller = new AbortController()
      const res = await fetch(`${app.url}/api/listening-sessions/${id}/audio`, {
        headers: { authorization: `Bearer ${alice}` },
        signal: controller.signal,
      })
      const reader = res.body!.getReader()
      await reader.read()
      const record = s.audio.stalled.at(-1)!
      controller.abort()
      expect(await until(() => record.closedAt !== null, 1000)).toBe(true)
    } finally {
      await app.close()
    }
  })

  it('a slow reader applies backpressure: the proxy stays a bounded distance ahead', async () => {
    const big = path.join(s.root, 'big.wav')
    writeLargeWav(big, 32 * 1024 * 1024)
    const id = await s.session('user_alice', '/audio/big.wav')
    const res = await s.get(id, { token: alice })
    const reader = res.body!.getReader()
    let got = 0
    const r = await reader.read()
    got += r.value!.byteLength
    await new Promise((r) => setTimeout(r, 500)) // the reader stops; the upstream must stop too
    // `send` writes into the socket until it is full: what left the storage is what the socket
    // buffers hold plus what the proxy prefetched, far below the 32 MiB file.
    const sentEntry = s.audio.requests.at(-1)!
    expect(sentEntry.status).toBeUndefined() // not finished: the storage is still waiting on us
    await reader.cancel()
    expect(got).toBeGreaterThan(0)
  })
})

describe('what a reader is handed', () => {
  it('a slow reader gets chunks of at most 64 KiB, and the whole body intact', async () => {
    // hyper reads up to ~400 KiB per socket read when the socket is full, which a slow reader's
    // always is; handing those over as views kept hyper's whole buffer alive until V8 collected
    // them. A reader that falls behind gets bounded copies instead (crates/core/src/playback/body.rs).
    const file = path.join(s.root, 'slow.wav')
    writeLargeWav(file, 4 * 1024 * 1024)
    const expected = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
    const id = await s.session('user_alice', '/audio/slow.wav')
    const res = await s.get(id, { token: alice })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    const hash = crypto.createHash('sha256')
    const sizes: number[] = []
    for (;;) {
      // Slower than the storage: the socket fills while the reader pauses.
      if (sizes.length < 12) await new Promise((r) => setTimeout(r, 60))
      const { done, value } = await reader.read()
      if (done) break
      hash.update(value)
      sizes.push(value.byteLength)
    }
    expect(hash.digest('hex')).toBe(expected)
    // The first chunks, read slowly, are all bounded; the storage sent far more than 64 KiB ahead.
    expect(Math.max(...sizes.slice(0, 12))).toBeLessThanOrEqual(64 * 1024)
  })

  it("a slow reader's chunks are V8's own memory (array buffers), not views of the addon's", async () => {
    // Copied into Buffers V8 allocates as they cross (src/body_reader.rs `JsChunk`), they count in
    // `process.memoryUsage().arrayBuffers`, which external views of Rust memory do not: what JS
    // holds is what V8 allocated, counts and frees (BENCHMARKS.md: where the memory goes).
    const gc = vm.runInNewContext('gc') as () => void
    const file = path.join(s.root, 'held.wav')
    writeLargeWav(file, 4 * 1024 * 1024)
    const id = await s.session('user_alice', '/audio/held.wav')
    const res = await s.get(id, { token: alice })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    // V8 frees array buffers' memory after a collection, off the JS thread: collect, let it
    // finish, twice, so nothing collectable is left to be freed during the reads below.
    for (let i = 0; i < 2; i++) {
      gc()
      await new Promise((r) => setTimeout(r, 100))
    }
    const before = process.memoryUsage().arrayBuffers
    const held: Uint8Array[] = []
    while (held.length < 12) {
      await new Promise((r) => setTimeout(r, 60)) // slower than the storage: the budget stays small
      const { done, value } = await reader.read()
      if (done) break
      held.push(value)
    }
    const grew = process.memoryUsage().arrayBuffers - before
    const bytes = held.reduce((n, c) => n + c.byteLength, 0)
    await reader.cancel()
    expect(bytes).toBeGreaterThan(256 * 1024)
    // Everything collectable was collected before: the growth is at least most of what is held.
    expect(grew).toBeGreaterThan(bytes / 2)
  })
})

describe('many streams at once', () => {
  it('50 concurrent streams of a 64 MiB file arrive intact with flat memory', async () => {
    const file = path.join(s.root, 'large.wav')
    writeLargeWav(file, 64 * 1024 * 1024)
    const expected = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
    const size = fs.statSync(file).size
    const id = await s.session('user_alice', '/audio/large.wav')
    const handlers = s.handlers({ lookupTtlMs: 60_000 })
    global.gc?.()
    const baseline = process.memoryUsage.rss()
    let peak = baseline
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20)
    try {
      const results = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const res = await s.get(id, { token: alice, handlers })
          expect(res.status).toBe(200)
          const hash = crypto.createHash('sha256')
          let n = 0
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            hash.update(chunk)
            n += chunk.byteLength
          }
          return { n, digest: hash.digest('hex') }
        }),
      )
      for (const r of results) expect(r).toEqual({ n: size, digest: expected })
    } finally {
      clearInterval(sampler)
    }
    const growthMiB = (peak - baseline) / 2 ** 20
    console.log(
      `50 × 64 MiB: RSS growth ${growthMiB.toFixed(1)} MiB over ${((50 * size) / 2 ** 30).toFixed(2)} GiB streamed`,
    )
    // Buffering whole files would need 3.2 GiB; per-stream prefetch is a few hundred KiB.
    expect(growthMiB).toBeLessThan(400)
  }, 300_000)
})
