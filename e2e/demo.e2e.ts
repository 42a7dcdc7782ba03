// The demo in a real browser: Debian's Chromium driven by playwright-core (no browser download),
// the example Next.js app from `next build` + `next start` (scripts/prepare-example.sh built it
// from the npm pack tarball), against the local stack. Fake microphone, real MediaRecorder.
// The demo runs as `npm run demo` runs it: Blob over OIDC, as a Vercel project set up today (direct
// uploads presigned). The read-write mode (client tokens) runs the upload paths once more.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startLocalStack } from '../stack/local.mjs'
import { startExampleApp } from '../stack/app.mjs'
import { sineWav } from '../stack/wav.mjs'
import { AUTOPLAY_ARG, CHROMIUM, FAKE_MEDIA_ARGS, QUIET_ARGS, requireChromium } from '../stack/chromium.mjs'

const artifacts = path.resolve('e2e-artifacts')
type BlobAuth = 'oidc' | 'read-write'
let browser: Browser
let aliceSession = ''
/** The stack and the app of the suite that is running (one mode at a time: files run in sequence). */
let stack: Awaited<ReturnType<typeof startLocalStack>>
let app: Awaited<ReturnType<typeof startExampleApp>>

/** Start the stack in `blobAuth` mode and the example app on it. */
async function startDemo(blobAuth: BlobAuth, portOffset: number) {
  stack = await startLocalStack({ dir: fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-e2e-')), blobAuth })
  app = await startExampleApp({
    env: stack.env,
    port: 3100 + (process.pid % 500) + portOffset,
    inherit: !!process.env.E2E_ECHO,
  })
}
async function stopDemo() {
  await app?.close()
  await stack?.close()
}

beforeAll(async () => {
  requireChromium()
  fs.mkdirSync(artifacts, { recursive: true })
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', ...QUIET_ARGS, ...FAKE_MEDIA_ARGS, AUTOPLAY_ARG],
  })
})

afterAll(async () => {
  await browser?.close()
})

/** In the page: the recorder's recorded time, as `#recorded` shows it. */
declare function recordedMs(): number
/** Pages get `recordedMs()` (page functions cannot close over test code). */
async function newPage() {
  const page = await browser.newPage()
  await page.addInitScript(() => {
    ;(globalThis as any).recordedMs = () => Number(document.querySelector('#recorded')?.getAttribute('data-ms') ?? 0)
  })
  return page
}

async function signIn(page: Page, user: 'Alice' | 'Bob') {
  await page.goto(app.url)
  await page.click('#sign-in')
  await page.click(`text=Sign in as ${user}`)
  await page.waitForSelector('#user')
}

const status = (page: Page, url: string) => page.evaluate(async (u) => (await fetch(u)).status, url)

/** Seek `#player` to each target, play, and expect playback to resume there and advance. */
async function expectSeeksResume(page: Page, targets: number[]) {
  for (const target of targets) {
    const reached = await page.evaluate(async (t) => {
      const a = document.querySelector('#player') as HTMLAudioElement
      a.pause()
      a.currentTime = t
      await new Promise((r) => a.addEventListener('seeked', r, { once: true }))
      const from = a.currentTime
      await a.play()
      const t0 = performance.now()
      while (a.currentTime < from + 0.3 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50))
      a.pause()
      return { from, now: a.currentTime }
    }, target)
    expect(reached.from, `seek to ${target}`).toBeCloseTo(target, 0)
    expect(reached.now, `playing on from ${target}`).toBeGreaterThan(reached.from + 0.2)
  }
}

/** The demo's suite with Blob over `blobAuth`; `all`: every test, else the paths that upload. */
function demoSuite(blobAuth: BlobAuth, all: boolean, portOffset: number) {
  describe(`the demo in Chromium, Blob over ${blobAuth}`, () => {
    beforeAll(() => startDemo(blobAuth, portOffset))
    afterAll(stopDemo)
    if (all) {
      it('a signed-out page sees the sign-in link, and the audio route answers 401', async () => {
        const page = await browser.newPage()
        await page.goto(app.url)
        expect(await page.isVisible('#sign-in')).toBe(true)
        expect(await status(page, '/api/listening-sessions/000000000010000listeningSessions/audio')).toBe(401)
        expect(await status(page, '/api/listening-sessions')).toBe(401)
        await page.close()
      })
    }
    it('records ~5 s from the fake microphone, uploads it, and the session moves to transcribing', async () => {
      const page = await newPage()
      await signIn(page, 'Alice')
      expect(await page.textContent('#user')).toBe('user_alice')
      await page.click('#new-session')
      await page.waitForSelector('#record')
      aliceSession = (await page.textContent('#session-id')) ?? ''
      expect(aliceSession).toMatch(/listeningSessions$/)
      await page.click('#record')
      // The recorder's own state and progress, while it records: time advances, chunks are journaled.
      await page.waitForFunction(() => document.querySelector('#recorder-state')?.textContent === 'recording')
      await page.waitForFunction(() => recordedMs() >= 1000, null, { timeout: 10_000 })
      const early = await page.evaluate(() => recordedMs())
      await page.waitForTimeout(4_000)
      expect(await page.textContent('#recorder-state')).toBe('recording')
      const later = await page.evaluate(() => recordedMs())
      expect(later).toBeGreaterThan(early + 2_500)
      expect(Number(await page.textContent('#journaled'))).toBeGreaterThan(0)
      await page.click('#stop')
      await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'transcribing', null, {
        timeout: 30_000,
      })
      const message = (await page.textContent('#message')) ?? ''
      expect(message).toMatch(/uploaded \d+ bytes \(audio\/webm/)
      // What the recorder says it uploaded is what the route attached.
      expect(await page.textContent('#recorder-state')).toBe('done')
      expect(await page.textContent('#uploaded')).toBe(/uploaded (\d+) bytes/.exec(message)?.[1])
      // The page's list, read back from Convex, shows it too (it refreshes after the upload).
      await page.waitForSelector(`#sessions li:has-text("${aliceSession}"):has-text("transcribing")`)

      // Play it back through the GET route: a finite, right duration, seekable, and seeks resume there.
      const player = page.locator('#player')
      await player.waitFor()
      const meta = await page.evaluate(async () => {
        const a = document.querySelector('#player') as HTMLAudioElement
        if (a.readyState < 1) await new Promise((r) => a.addEventListener('loadedmetadata', r, { once: true }))
        return { duration: a.duration, seekEnd: a.seekable.length ? a.seekable.end(a.seekable.length - 1) : 0 }
      })
      expect(Number.isFinite(meta.duration)).toBe(true)
      expect(meta.duration).toBeGreaterThan(4)
      expect(meta.duration).toBeLessThan(7)
      expect(meta.seekEnd).toBeGreaterThanOrEqual(meta.duration - 0.1)
      await expectSeeksResume(page, [3.5, 1.0, 2.5])
      await page.screenshot({ path: path.join(artifacts, `demo-after-playback-${blobAuth}.png`), fullPage: true })

      const gets = app.records().filter((r) => (r.fields?.method ?? r.method) === 'GET')
      const statuses = gets.map((r) => Number(r.fields?.status ?? r.status))
      expect(statuses.filter((s) => s === 206).length).toBeGreaterThan(0)
      await page.close()
    })
    it('a reload mid-recording: the next load resumes the journaled recording, and the session reaches transcribing', async () => {
      const page = await newPage()
      await signIn(page, 'Alice')
      // A fresh browser context: nothing journaled yet.
      await page.waitForFunction(() => document.querySelector('#resume')?.textContent === 'nothing to resume')
      await page.click('#new-session')
      await page.waitForSelector('#record')
      const id = (await page.textContent('#session-id')) ?? ''
      await page.click('#record')
      await page.waitForFunction(() => recordedMs() >= 6_000, null, { timeout: 15_000 })
      const journaledMs = await page.evaluate(() => recordedMs())
      await page.reload()
      await page.waitForFunction(() => /^resumed /.test(document.querySelector('#resume')?.textContent ?? ''), null, {
        timeout: 30_000,
      })
      expect(await page.textContent('#resume')).toBe(`resumed 1 recording: ${id} → transcribing`)
      // The page shows the resumed session; the route's list (from Convex) has it with its audio.
      expect(await page.textContent('#session-id')).toBe(id)
      expect(await page.textContent('#status')).toBe('transcribing')
      const listed = await page.evaluate(async () => (await (await fetch('/api/listening-sessions')).json()).sessions)
      const session = listed.find((x: { _id: string }) => x._id === id)
      expect(session?.status).toBe('transcribing')
      // At most the last timeslice (1 s) is lost, plus the chunk in flight at the reload.
      expect(session?.durationMs).toBeGreaterThanOrEqual(Math.max(3_000, journaledMs - 2_000))
      expect(session?.durationMs).toBeLessThan(journaledMs + 2_000)
      const duration = await page.evaluate(async () => {
        const a = document.querySelector('#player') as HTMLAudioElement
        if (a.readyState < 1) await new Promise((r) => a.addEventListener('loadedmetadata', r, { once: true }))
        return a.duration
      })
      expect(Number.isFinite(duration)).toBe(true)
      expect(Math.abs(duration * 1000 - session.durationMs)).toBeLessThan(200)
      await page.screenshot({ path: path.join(artifacts, `demo-resumed-${blobAuth}.png`), fullPage: true })
      // Another load finds nothing left: the journal ended when the route attached the audio.
      await page.reload()
      await page.waitForFunction(() => document.querySelector('#resume')?.textContent === 'nothing to resume')
      await page.close()
    })
    if (all) {
      it('without IndexedDB (blocked, as in some private modes): the page says so, records in memory, and the upload still lands', async () => {
        const page = await newPage()
        await page.addInitScript(() => {
          Object.defineProperty(globalThis, 'indexedDB', {
            get: () => {
              throw new DOMException('storage is blocked', 'SecurityError')
            },
          })
        })
        await signIn(page, 'Alice')
        await page.waitForFunction(() => /^could not resume/.test(document.querySelector('#resume')?.textContent ?? ''))
        expect(await page.textContent('#resume')).toMatch(/^could not resume: journal_unavailable: /)
        await page.click('#new-session')
        await page.waitForSelector('#record')
        await page.click('#record')
        await page.waitForSelector('#journal-note')
        expect(await page.textContent('#journal-note')).toMatch(/^journal_unavailable: .*a reload .* loses it/)
        await page.waitForFunction(() => recordedMs() >= 2_000, null, { timeout: 10_000 })
        expect(await page.textContent('#recorder-state')).toBe('recording')
        await page.click('#stop')
        await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'transcribing', null, {
          timeout: 30_000,
        })
        expect(await page.textContent('#message')).toMatch(/uploaded \d+ bytes \(audio\/webm[^,]*, \d+ ms\)/)
        await page.close()
      })

      it('uploads a picked file (60 s MP3) and seeks across it', async () => {
        const page = await browser.newPage()
        await signIn(page, 'Alice')
        await page.click('#new-session')
        await page.waitForSelector('#file')
        await page.setInputFiles('#file', path.resolve(__dirname, '../__test__/fixtures/audio/sweep-60s.mp3'))
        await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'transcribing', null, {
          timeout: 30_000,
        })
        expect(await page.textContent('#message')).toMatch(/uploaded \d+ bytes \(audio\/mpeg, (59|60)\d{3} ms\)/)
        const duration = await page.evaluate(async () => {
          const a = document.querySelector('#player') as HTMLAudioElement
          if (a.readyState < 1) await new Promise((r) => a.addEventListener('loadedmetadata', r, { once: true }))
          return a.duration
        })
        expect(duration).toBeGreaterThan(59)
        expect(duration).toBeLessThan(61)
        await expectSeeksResume(page, [45, 5, 30])
        await page.close()
      })
    }
    it('a recording over 4.5 MB: the function-body cap refuses it, the page uploads it straight to Blob with a progress bar', async () => {
      const wav = path.join(artifacts, 'long-170s.wav')
      fs.writeFileSync(wav, sineWav(170)) // 5.4 MB of 16 kHz PCM
      expect(fs.statSync(wav).size).toBeGreaterThan(4.5e6)
      const page = await browser.newPage()
      await signIn(page, 'Alice')
      await page.click('#new-session')
      await page.waitForSelector('#file')
      const id = (await page.textContent('#session-id')) ?? ''
      // As on Vercel: the streamed POST of that body never reaches the route.
      const streamed = await page.evaluate(
        async ([u, size]) =>
          (
            await fetch(u, {
              method: 'POST',
              headers: { 'x-duration-ms': '170000', 'x-content-type': 'audio/wav' },
              body: new Uint8Array(size),
            })
          ).status,
        [`/api/listening-sessions/${id}/audio`, 5_000_000] as const,
      )
      expect(streamed).toBe(413)
      // The page's own upload goes straight to Blob, with progress.
      const seen = page.evaluate(
        () =>
          new Promise<number[]>((resolve) => {
            const values: number[] = []
            const watch = new MutationObserver(() => {
              const p = document.querySelector('#progress') as HTMLProgressElement | null
              if (p && values.at(-1) !== p.value) values.push(p.value)
              if (p && p.value >= 100) resolve(values)
            })
            watch.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true })
          }),
      )
      const puts = stack.blob.puts.length
      await page.setInputFiles('#file', wav)
      expect((await seen).at(-1)).toBe(100)
      await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'transcribing', null, {
        timeout: 60_000,
      })
      expect(await page.textContent('#percent')).toBe('100 %')
      // The grant this deployment gives: presigned over OIDC, a client token with a read-write token.
      const stored = stack.blob.puts.slice(puts).filter((p: { stored: boolean }) => p.stored)
      expect(stored.map((p: { kind: string }) => p.kind)).toEqual([blobAuth === 'oidc' ? 'presigned' : 'client-token'])
      expect(await page.textContent('#message')).toMatch(/uploaded 5440044 bytes \(audio\/wav, 170\d{3} ms\)/)
      const duration = await page.evaluate(async () => {
        const a = document.querySelector('#player') as HTMLAudioElement
        if (a.readyState < 1) await new Promise((r) => a.addEventListener('loadedmetadata', r, { once: true }))
        return a.duration
      })
      expect(duration).toBeGreaterThan(169)
      expect(duration).toBeLessThan(171)
      await expectSeeksResume(page, [150, 20, 90])
      await page.screenshot({ path: path.join(artifacts, `demo-long-upload-${blobAuth}.png`), fullPage: true })
      await page.close()
    })
    if (all) {
      it("a second user cannot play the first user's session (404)", async () => {
        expect(aliceSession).not.toBe('')
        const context = await browser.newContext()
        const page = await context.newPage()
        await signIn(page, 'Bob')
        expect(await page.textContent('#user')).toBe('user_bob')
        expect(await status(page, `/api/listening-sessions/${aliceSession}/audio`)).toBe(404)
        await context.close()
      })
    }
  })
}

demoSuite('oidc', true, 0)
demoSuite('read-write', false, 1)

describe('npm run demo', () => {
  it('prints one URL that serves the demo page, keeps its data folder, and stops cleanly on Ctrl-C', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-demo-'))
    const port = 3700 + (process.pid % 200)
    const child = spawn(process.execPath, ['scripts/demo.mjs'], {
      env: { ...process.env, PORT: String(port), SESSION_AUDIO_DIR: dir, SESSION_AUDIO_STACK_PORT: String(port + 300) },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d
        const m = /open (http:\/\/\S+)/.exec(out)
        if (m) resolve(m[1])
      })
      child.on('exit', (code) => reject(new Error(`demo exited ${code}: ${out}`)))
    })
    expect(url).toBe(`http://localhost:${port}`)
    expect(out.match(/https?:\/\/\S+/g)).toEqual([url])
    const page = await browser.newPage()
    await page.goto(url)
    expect(await page.isVisible('#sign-in')).toBe(true)
    await page.close()
    child.kill('SIGINT')
    expect(await new Promise((r) => child.once('exit', r))).toBe(0)
    expect(fs.existsSync(path.join(dir, 'blob'))).toBe(true)
    // Everything it started is gone: the app's port refuses connections.
    await expect(fetch(url)).rejects.toThrow()
  })
})
