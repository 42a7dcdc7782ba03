// client/recorder/journal.mjs in a real browser: Debian's Chromium driven by playwright-core, the module served
// from the repository's client/ folder by a loopback HTTP server and import()ed in the page, so every
// test runs against Chromium's own IndexedDB (durability, quota, crashes, forced closes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { CHROMIUM, QUIET_ARGS, requireChromium } from '../stack/chromium.mjs'

const ARGS = ['--headless', ...QUIET_ARGS]
const CLIENT = path.resolve('client')

// The page: helpers that make a chunk's bytes from (seq, size) with xorshift, so the page can check
// what the journal hands back without the test shipping megabytes through the protocol.
const PAGE = `<!doctype html><meta charset="utf-8"><title>journal</title><script>
window.chunkBytes = (seq, size) => {
  const b = new Uint8Array(size)
  let x = ((seq + 1) * 2654435761) >>> 0 || 1
  for (let i = 0; i < size; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 255 }
  return b
}
window.concatChunks = (sizes) => {
  const all = new Uint8Array(sizes.reduce((a, b) => a + b, 0))
  let at = 0
  sizes.forEach((size, seq) => { all.set(chunkBytes(seq, size), at); at += size })
  return all
}
window.sameBytes = async (blob, expected) => {
  const got = new Uint8Array(await blob.arrayBuffer())
  if (got.length !== expected.length) return 'length ' + got.length + ' instead of ' + expected.length
  for (let i = 0; i < got.length; i++) if (got[i] !== expected[i]) return 'byte ' + i + ' differs'
  return 'same'
}
window.journalError = async (promise) => {
  try { await promise; return 'resolved' } catch (e) {
    return { name: e.name, code: e.code, message: e.message, cause: e.cause && e.cause.name }
  }
}
</script>`

let server: http.Server
let origin = ''
let browser: Browser
const tmpDirs: string[] = []

/** `/` is PAGE, `/client/**.mjs` the repository's client modules (with CORS, for opaque-origin frames). */
function serve(): Promise<void> {
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      return res.end(PAGE)
    }
    const name = url.pathname.startsWith('/client/') ? url.pathname.slice('/client/'.length) : ''
    if (!/^([a-z-]+\/)?[a-z-]+\.mjs$/.test(name) || !fs.existsSync(path.join(CLIENT, name))) {
      res.writeHead(404)
      return res.end()
    }
    res.writeHead(200, { 'content-type': 'text/javascript', 'access-control-allow-origin': '*' })
    res.end(fs.readFileSync(path.join(CLIENT, name)))
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
      resolve()
    }),
  )
}

beforeAll(async () => {
  requireChromium()
  await serve()
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
})

afterAll(async () => {
  await browser?.close()
  server?.closeAllConnections()
  await new Promise((resolve) => server?.close(resolve))
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true })
})

/** A page of `context` on the loopback origin, with the journal module imported as `window.J`. */
async function journalPage(context: BrowserContext): Promise<Page> {
  const page = await context.newPage()
  await page.goto(origin + '/')
  await importJournal(page)
  return page
}

/** import() the module in the page: as a string, since vitest rewrites import() in test functions. */
function importJournal(page: Page) {
  return page.evaluate(`import('/client/recorder/journal.mjs').then((module) => { window.J = module })`)
}

/** A persistent profile (a real on-disk IndexedDB; incognito contexts keep it in memory). */
function persistentContext(dir: string, extraArgs: string[] = []) {
  return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, args: [...ARGS, ...extraArgs] })
}
function tmpProfile() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-journal-'))
  tmpDirs.push(dir)
  return dir
}

/** 200 chunk sizes: small and large, one empty (MediaRecorder can hand over an empty chunk). */
const SIZES = Array.from({ length: 200 }, (_, seq) =>
  seq === 57 ? 0 : 1 + ((seq * 7919) % 4099) + (seq % 25 === 0 ? 40_000 : 0),
)
const STARTS = SIZES.map((_, seq) => SIZES.slice(0, seq).reduce((a, b) => a + b, 0))
const TOTAL = SIZES.reduce((a, b) => a + b, 0)

/** Append chunks 0..sizes.length-1 of `sessionId` (after begin), awaiting each; Blobs and Uint8Arrays alternate. */
function appendAll(page: Page, dbName: string, sessionId: string, sizes: number[]) {
  return page.evaluate(
    async ({ dbName, sessionId, sizes }) => {
      const w = window as any
      const j = await w.J.openJournal({ dbName })
      await j.begin(sessionId, { mimeType: 'audio/webm', routeUrl: '/api/x' })
      for (let seq = 0; seq < sizes.length; seq++) {
        const bytes = w.chunkBytes(seq, sizes[seq])
        await j.append(sessionId, seq, seq % 2 ? new Blob([bytes]) : bytes, { recordedMs: (seq + 1) * 1000 })
      }
      j.close()
    },
    { dbName, sessionId, sizes },
  )
}

/** Every byte of the journal of `sessionId` compared with the chunks as generated; its `get` record. */
function readBack(page: Page, dbName: string, sessionId: string, sizes: number[]) {
  return page.evaluate(
    async ({ dbName, sessionId, sizes }) => {
      const w = window as any
      const j = await w.J.openJournal({ dbName })
      const record = await j.get(sessionId)
      const total = sizes.reduce((a: number, b: number) => a + b, 0)
      const bytes = record ? await w.sameBytes(await j.read(sessionId, 0, total), w.concatChunks(sizes)) : 'no journal'
      j.close()
      return { record, bytes }
    },
    { dbName, sessionId, sizes },
  )
}

describe('journal: append and read in Chromium', () => {
  let context: BrowserContext
  let page: Page
  beforeAll(async () => {
    context = await browser.newContext()
    page = await journalPage(context)
    await appendAll(page, 'journal-read', 'rec', SIZES)
    // Count the chunk records each read loads (IDBIndex/IDBObjectStore getAll and cursors on `chunks`).
    await page.evaluate(async () => {
      const w = window as any
      w.loaded = 0
      for (const proto of [IDBIndex.prototype, IDBObjectStore.prototype] as any[]) {
        const getAll = proto.getAll
        proto.getAll = function (...args: unknown[]) {
          const request = getAll.apply(this, args)
          const store = this instanceof IDBIndex ? this.objectStore.name : this.name
          if (store === 'chunks') request.addEventListener('success', () => (w.loaded += request.result.length))
          return request
        }
        const openCursor = proto.openCursor
        proto.openCursor = function (...args: unknown[]) {
          const request = openCursor.apply(this, args)
          const store = this instanceof IDBIndex ? this.objectStore.name : this.name
          if (store === 'chunks') request.addEventListener('success', () => request.result && (w.loaded += 1))
          return request
        }
      }
      w.j = await w.J.openJournal({ dbName: 'journal-read' })
    })
  })
  afterAll(() => context?.close())

  it('get counts the 200 chunks, their bytes and the last recordedMs', async () => {
    const record = await page.evaluate(() => (window as any).j.get('rec'))
    expect(record).toMatchObject({
      sessionId: 'rec',
      chunkCount: 200,
      bytes: TOTAL,
      recordedMs: 200_000,
      meta: { mimeType: 'audio/webm', routeUrl: '/api/x' },
    })
    expect(await page.evaluate(() => (window as any).j.get('nobody'))).toBeNull()
  })

  // [name, start, end, chunk records the read may load]
  const RANGES: [string, number, number, number][] = [
    ['the first bytes', 0, 16, 1],
    ['bytes inside one chunk', STARTS[3] + 5, STARTS[3] + 20, 1],
    ['exactly one chunk', STARTS[10], STARTS[11], 1],
    ['across many chunks', STARTS[20] + 7, STARTS[150] + 3, 131],
    ['around the empty chunk', STARTS[57] - 1, STARTS[57] + 1, 3],
    ['the last byte', TOTAL - 1, TOTAL, 1],
    ['nothing (empty range)', 1000, 1000, 0],
    ['the whole recording', 0, TOTAL, 200],
  ]
  it.each(RANGES)(
    'read of %s [%i, %i) equals that slice of the chunks, loading ≤ %i chunk records',
    async (_name, start, end, most) => {
      const got = await page.evaluate(
        async ({ start, end, sizes }) => {
          const w = window as any
          w.loaded = 0
          const blob = await w.j.read('rec', start, end)
          return {
            size: blob.size,
            same: await w.sameBytes(blob, w.concatChunks(sizes).subarray(start, end)),
            loaded: w.loaded,
          }
        },
        { start, end, sizes: SIZES },
      )
      expect(got).toEqual({ size: end - start, same: 'same', loaded: got.loaded })
      expect(got.loaded).toBeLessThanOrEqual(most)
    },
  )

  it.each([
    ['past the end', 0, TOTAL + 1],
    ['end before start', 10, 5],
    ['a negative start', -1, 5],
  ])('read %s is journal_failed', async (_name, start, end) => {
    const error = await page.evaluate(
      ({ start, end }) => (window as any).journalError((window as any).j.read('rec', start, end)),
      { start, end },
    )
    expect(error).toMatchObject({ name: 'JournalError', code: 'journal_failed' })
  })

  it('appends fired without awaiting are journaled in seq order with consistent offsets', async () => {
    const sizes = SIZES.slice(0, 60)
    const got = await page.evaluate(async (sizes) => {
      const w = window as any
      await w.j.begin('burst', { mimeType: 'audio/webm' })
      const pending = sizes.map((size: number, seq: number) => w.j.append('burst', seq, w.chunkBytes(seq, size)))
      const read = w.j.read(
        'burst',
        0,
        sizes.reduce((a: number, b: number) => a + b, 0),
      ) // queued behind them
      await Promise.all(pending)
      return { record: await w.j.get('burst'), same: await w.sameBytes(await read, w.concatChunks(sizes)) }
    }, sizes)
    expect(got.same).toBe('same')
    expect(got.record).toMatchObject({ chunkCount: 60, bytes: sizes.reduce((a, b) => a + b, 0) })
  })

  it('a gap, a duplicate seq or an unknown session is journal_failed and changes nothing', async () => {
    const got = await page.evaluate(async () => {
      const w = window as any
      await w.j.begin('strict-seq', {})
      await w.j.append('strict-seq', 0, new Uint8Array([1, 2, 3]))
      await w.j.append('strict-seq', 1, new Uint8Array([4]))
      return {
        gap: await w.journalError(w.j.append('strict-seq', 3, new Uint8Array([9]))),
        duplicate: await w.journalError(w.j.append('strict-seq', 1, new Uint8Array([9]))),
        noBegin: await w.journalError(w.j.append('never-begun', 0, new Uint8Array([9]))),
        notBytes: await w.journalError(w.j.append('strict-seq', 2, 'text')),
        again: await w.journalError(w.j.begin('strict-seq', {})),
        record: await w.j.get('strict-seq'),
        bytes: Array.from(new Uint8Array(await (await w.j.read('strict-seq', 0, 4)).arrayBuffer())),
      }
    })
    expect(got.gap).toMatchObject({ code: 'journal_failed', message: expect.stringContaining('gap') })
    expect(got.duplicate).toMatchObject({ code: 'journal_failed', message: expect.stringContaining('duplicate') })
    expect(got.noBegin).toMatchObject({ code: 'journal_failed', message: expect.stringContaining('begin()') })
    expect(got.notBytes).toMatchObject({ code: 'journal_failed' })
    expect(got.again).toMatchObject({ code: 'journal_failed', message: expect.stringContaining('replace: true') })
    expect(got.record).toMatchObject({ chunkCount: 2, bytes: 4 })
    expect(got.bytes).toEqual([1, 2, 3, 4])
  })

  it('setMeta merges into meta; begin with replace starts the journal over', async () => {
    const got = await page.evaluate(async () => {
      const w = window as any
      await w.j.begin('meta', { routeUrl: '/r', partSize: 8 })
      await w.j.append('meta', 0, new Uint8Array(5))
      await w.j.setMeta('meta', { upload: { uploadId: 'u1', parts: { 1: 'etag-1' } } })
      const merged = await w.j.get('meta')
      await w.j.begin('meta', { routeUrl: '/r2' }, { replace: true })
      await w.j.append('meta', 0, new Uint8Array([7]))
      return { merged, replaced: await w.j.get('meta'), bytes: (await w.j.read('meta', 0, 1)).size }
    })
    expect(got.merged).toMatchObject({
      chunkCount: 1,
      meta: { routeUrl: '/r', partSize: 8, upload: { uploadId: 'u1', parts: { 1: 'etag-1' } } },
    })
    expect(got.replaced).toMatchObject({ chunkCount: 1, bytes: 1, meta: { routeUrl: '/r2' } })
    expect(got.replaced.meta.upload).toBeUndefined()
    expect(got.bytes).toBe(1)
  })

  it('remove deletes one session, meta and chunks, and nothing of another; list shows both before', async () => {
    const got = await page.evaluate(async () => {
      const w = window as any
      const j = await w.J.openJournal({ dbName: 'journal-remove' })
      for (const id of ['keep', 'drop']) {
        await j.begin(id, { id })
        for (let seq = 0; seq < 5; seq++) await j.append(id, seq, w.chunkBytes(seq, 100 + seq))
      }
      const before = (await j.list()).map((r: any) => `${r.sessionId}:${r.chunkCount}:${r.bytes}`).sort()
      await j.remove('drop')
      const after = (await j.list()).map((r: any) => r.sessionId)
      // Count what is left in the stores directly, with a second connection.
      const db: IDBDatabase = await new Promise((resolve, reject) => {
        const r = indexedDB.open('journal-remove')
        r.onsuccess = () => resolve(r.result)
        r.onerror = () => reject(r.error)
      })
      const count = (id: string) =>
        new Promise<number>((resolve) => {
          const r = db
            .transaction('chunks')
            .objectStore('chunks')
            .count(IDBKeyRange.bound([id, -Infinity], [id, Infinity]))
          r.onsuccess = () => resolve(r.result)
        })
      const left = { keep: await count('keep'), drop: await count('drop') }
      db.close()
      const kept = await w.sameBytes(await j.read('keep', 0, 510), w.concatChunks([100, 101, 102, 103, 104]))
      const dropped = await j.get('drop')
      await j.remove('never-existed')
      j.close()
      return { before, after, left, kept, dropped }
    })
    expect(got.before).toEqual(['drop:5:510', 'keep:5:510'])
    expect(got.after).toEqual(['keep'])
    expect(got.left).toEqual({ keep: 5, drop: 0 })
    expect(got.kept).toBe('same')
    expect(got.dropped).toBeNull()
  })
})

describe('journal: durability in Chromium', () => {
  it("opens every write transaction with durability 'strict'", async () => {
    const context = await browser.newContext()
    const page = await journalPage(context)
    const got = await page.evaluate(async () => {
      const w = window as any
      const seen: string[] = []
      const transaction = IDBDatabase.prototype.transaction
      IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: any[]) {
        const tx = (transaction as any).apply(this, args)
        seen.push(`${tx.mode}:${tx.durability}`)
        return tx
      }
      const j = await w.J.openJournal({ dbName: 'journal-durability' })
      await j.begin('d', {})
      await j.append('d', 0, new Uint8Array(10))
      await j.setMeta('d', { status: 'recording' })
      await j.read('d', 0, 10)
      await j.remove('d')
      j.close()
      IDBDatabase.prototype.transaction = transaction
      return { durability: j.durability, seen }
    })
    await context.close()
    expect(got.durability).toBe('strict')
    const writes = got.seen.filter((t) => t.startsWith('readwrite'))
    // openJournal's probe (does this browser store Blobs here? one write, aborted), then the four calls.
    expect(writes).toEqual(Array(5).fill('readwrite:strict'))
    expect(got.seen.filter((t) => t.startsWith('readonly'))).toEqual(['readonly:default'])
  })

  it('a journal survives a page reload', async () => {
    const context = await browser.newContext()
    const page = await journalPage(context)
    const sizes = SIZES.slice(0, 40)
    await appendAll(page, 'journal-reload', 'rec', sizes)
    await page.reload()
    await importJournal(page)
    const got = await readBack(page, 'journal-reload', 'rec', sizes)
    await context.close()
    expect(got.bytes).toBe('same')
    expect(got.record).toMatchObject({ chunkCount: 40, bytes: sizes.reduce((a, b) => a + b, 0) })
  })

  it('a journal survives a renderer crash (CDP Page.crash) and a browser restart on the same profile', async () => {
    const profile = tmpProfile()
    let context = await persistentContext(profile)
    const sizes = SIZES.slice(0, 80)
    const page = await journalPage(context)
    await appendAll(page, 'journal-crash', 'rec', sizes)
    const crashed = new Promise((resolve) => page.once('crash', resolve))
    const cdp = await context.newCDPSession(page)
    // Page.crash never answers: the renderer is gone.
    cdp.send('Page.crash').catch(() => {})
    await crashed
    const after = await readBack(await journalPage(context), 'journal-crash', 'rec', sizes)
    expect(after.bytes).toBe('same')
    expect(after.record).toMatchObject({ chunkCount: 80, bytes: sizes.reduce((a, b) => a + b, 0) })
    await context.close()
    context = await persistentContext(profile)
    const restarted = await readBack(await journalPage(context), 'journal-crash', 'rec', sizes)
    await context.close()
    expect(restarted.bytes).toBe('same')
    expect(restarted.record).toMatchObject({ chunkCount: 80 })
  })
})

describe('journal: a full quota in Chromium', () => {
  it('is journal_quota_exceeded; earlier chunks stay intact, nothing is half-written, and remove frees it', async () => {
    // A persistent profile: Chromium applies Storage.overrideQuotaForOrigin to on-disk storage only
    // (an incognito context's in-memory IndexedDB took 5 MB under a 200 kB override).
    const context = await persistentContext(tmpProfile(), ['--js-flags=--expose-gc'])
    const page = await journalPage(context)
    const cdp = await context.newCDPSession(page)
    const { usage } = await cdp.send('Storage.getUsageAndQuota', { origin })
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 300_000 })
    const got = await page.evaluate(async () => {
      const w = window as any
      const j = await w.J.openJournal({ dbName: 'journal-quota' })
      await j.begin('full', { mimeType: 'audio/webm' })
      let seq = 0
      let error: any = 'no error after 200 chunks'
      for (; seq < 200; seq++) {
        error = await w.journalError(j.append('full', seq, w.chunkBytes(seq, 20_000)))
        if (error !== 'resolved') break
      }
      const record = await j.get('full')
      const sizes = Array.from({ length: seq }, () => 20_000)
      const intact = await w.sameBytes(await j.read('full', 0, seq * 20_000), w.concatChunks(sizes))
      const chunks = await new Promise<number>((resolve, reject) => {
        const r = indexedDB.open('journal-quota')
        r.onerror = () => reject(r.error)
        r.onsuccess = () => {
          const c = r.result.transaction('chunks').objectStore('chunks').count()
          c.onsuccess = () => {
            resolve(c.result)
            r.result.close()
          }
        }
      })
      // Clearing the journal makes room again, once the page lets go of the Blobs `read` handed out:
      // Chromium keeps a deleted chunk's file, and counts it, while a Blob of it is alive.
      await j.remove('full')
      let afterRemove: any = 'not tried'
      for (let attempt = 0; attempt < 50 && afterRemove !== 'resolved'; attempt++) {
        w.gc()
        await new Promise((resolve) => setTimeout(resolve, 200))
        afterRemove = await w.journalError(
          j.begin('after', {}, { replace: true }).then(() => j.append('after', 0, w.chunkBytes(0, 20_000))),
        )
      }
      j.close()
      return { seq, error, record, intact, chunks, afterRemove }
    })
    await cdp.send('Storage.overrideQuotaForOrigin', { origin })
    await context.close()
    expect(got.seq).toBeGreaterThan(2)
    expect(got.seq).toBeLessThan(200)
    expect(got.error).toMatchObject({
      name: 'JournalError',
      code: 'journal_quota_exceeded',
      cause: 'QuotaExceededError',
      message: expect.stringContaining('discardSessionUpload'),
    })
    expect(got.record).toMatchObject({ chunkCount: got.seq, bytes: got.seq * 20_000 })
    expect(got.chunks).toBe(got.seq)
    expect(got.intact).toBe('same')
    expect(got.afterRemove).toBe('resolved')
  })
})

describe('journal: unavailable and closed', () => {
  let context: BrowserContext
  beforeAll(async () => {
    context = await browser.newContext()
  })
  afterAll(() => context?.close())

  it('a page without indexedDB is journal_unavailable', async () => {
    const page = await journalPage(context)
    const got = await page.evaluate(async () => {
      const w = window as any
      delete w.indexedDB
      return { gone: w.indexedDB === undefined, error: await w.journalError(w.J.openJournal()) }
    })
    expect(got.gone).toBe(true)
    expect(got.error).toMatchObject({ name: 'JournalError', code: 'journal_unavailable' })
    await page.close()
  })

  it('an opaque-origin frame (sandboxed, storage denied) is journal_unavailable', async () => {
    const page = await journalPage(context)
    const got = await page.evaluate(async (origin) => {
      const frame = document.createElement('iframe')
      frame.sandbox.add('allow-scripts')
      frame.srcdoc = `<script type="module">
        const { openJournal } = await import('${origin}/client/recorder/journal.mjs')
        try { await openJournal(); parent.postMessage('opened', '*') }
        catch (e) { parent.postMessage({ name: e.name, code: e.code, message: e.message }, '*') }
      </script>`
      const answer = new Promise((resolve) => addEventListener('message', (e) => resolve(e.data), { once: true }))
      document.body.append(frame)
      return answer
    }, origin)
    expect(got).toMatchObject({ name: 'JournalError', code: 'journal_unavailable' })
    await page.close()
  })

  // [what another page does, how, what the closed journal says, what reopening it answers]
  const VERSIONCHANGES: [string, 'upgrade' | 'delete', string, string][] = [
    // A newer app in another tab: the database is then at version 2, which this journal refuses to guess at.
    ['opens it with a higher version', 'upgrade', 'newer version', 'journal_unavailable'],
    ['deletes it', 'delete', 'deleted', 'opened'],
  ]
  it.each(VERSIONCHANGES)(
    'another page that %s (versionchange) closes the journal: later calls are journal_closed',
    async (_name, action, says, reopened) => {
      const page = await journalPage(context)
      const dbName = `journal-versionchange-${action}`
      const got = await page.evaluate(
        async ({ dbName, action }) => {
          const w = window as any
          let notified: any = null
          const j = await w.J.openJournal({ dbName, onClose: (e: any) => (notified = e.code) })
          await j.begin('v', {})
          await j.append('v', 0, new Uint8Array(4))
          const done = await new Promise<string>((resolve) => {
            const r = action === 'upgrade' ? indexedDB.open(dbName, 2) : indexedDB.deleteDatabase(dbName)
            r.onblocked = () => resolve('blocked')
            r.onsuccess = () => {
              if (action === 'upgrade') (r.result as IDBDatabase).close()
              resolve('done')
            }
            r.onerror = () => resolve('error ' + r.error?.name)
          })
          const reopen = await w.journalError(w.J.openJournal({ dbName }).then((again: any) => again.close()))
          return {
            done,
            notified,
            append: await w.journalError(j.append('v', 1, new Uint8Array(4))),
            get: await w.journalError(j.get('v')),
            list: await w.journalError(j.list()),
            reopen: reopen === 'resolved' ? 'opened' : reopen.code,
          }
        },
        { dbName, action },
      )
      expect(got.done).toBe('done')
      expect(got.notified).toBe('journal_closed')
      for (const call of [got.append, got.get, got.list])
        expect(call).toMatchObject({ code: 'journal_closed', message: expect.stringContaining(says) })
      expect(got.reopen).toBe(reopened)
      await page.close()
    },
  )

  it('site data cleared under the journal (CDP Storage.clearDataForOrigin) makes later calls journal_closed', async () => {
    const page = await journalPage(context)
    await page.evaluate(async () => {
      const w = window as any
      w.notified = null
      w.j = await w.J.openJournal({ dbName: 'journal-cleared', onClose: (e: any) => (w.notified = e.code) })
      await w.j.begin('c', {})
    })
    const cdp = await context.newCDPSession(page)
    await cdp.send('Storage.clearDataForOrigin', { origin, storageTypes: 'indexeddb' })
    const got = await page.evaluate(async () => {
      const w = window as any
      return { append: await w.journalError(w.j.append('c', 0, new Uint8Array(1))), notified: w.notified }
    })
    expect(got.append).toMatchObject({ code: 'journal_closed' })
    expect(got.notified).toBe('journal_closed')
    await page.close()
  })

  it('every call after close() is journal_closed, including appends already queued', async () => {
    const page = await journalPage(context)
    const got = await page.evaluate(async () => {
      const w = window as any
      let notified = false
      const j = await w.J.openJournal({ dbName: 'journal-close', onClose: () => (notified = true) })
      await j.begin('x', {})
      const first = j.append('x', 0, new Uint8Array(1))
      const queued = j.append('x', 1, new Uint8Array(1))
      j.close()
      return {
        first: await w.journalError(first),
        queued: await w.journalError(queued),
        begin: await w.journalError(j.begin('y', {})),
        read: await w.journalError(j.read('x', 0, 0)),
        estimate: await w.journalError(j.estimate()),
        notified,
      }
    })
    // `first` opened its transaction before close(): IndexedDB lets it commit.
    expect(got.first).toBe('resolved')
    for (const call of [got.queued, got.begin, got.read, got.estimate])
      expect(call).toMatchObject({ code: 'journal_closed' })
    expect(got.notified).toBe(false)
    await page.close()
  })

  it('estimate reports usage and quota; persist answers a boolean', async () => {
    const page = await journalPage(context)
    const got = await page.evaluate(async () => {
      const w = window as any
      const j = await w.J.openJournal({ dbName: 'journal-estimate' })
      const estimate = await j.estimate()
      const persisted = await j.persist()
      j.close()
      return { estimate, persisted: typeof persisted }
    })
    expect(got.estimate.quota).toBeGreaterThan(0)
    expect(got.estimate.usage).toBeGreaterThanOrEqual(0)
    expect(got.persisted).toBe('boolean')
    await page.close()
  })
})
