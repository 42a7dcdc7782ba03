// The three browser engines the client is tested in, behind one small page interface, so one spec
// body runs in each: Debian's Chromium (playwright-core), Firefox ESR (puppeteer-core over WebDriver
// BiDi) and WebKitGTK (WebKitWebDriver driving MiniBrowser under Xvfb, in an ephemeral session, as
// Safari's private browsing). No driver downloads a browser: each uses the Debian package.
// Every engine gets a fake microphone granted without a prompt and media that may autoplay.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { chromium } from 'playwright-core'
import { AUTOPLAY_ARG, CHROMIUM, FAKE_MEDIA_ARGS, QUIET_ARGS, requireChromium } from '../../stack/chromium.mjs'

export type EngineName = 'chromium' | 'firefox' | 'webkit'
export const ENGINES: EngineName[] = ['chromium', 'firefox', 'webkit']

export const FIREFOX = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr'
export const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER_PATH || '/usr/bin/WebKitWebDriver'
export const MINIBROWSER = process.env.MINIBROWSER_PATH || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser'

/** A function run in the page: it gets `arg` (JSON) and may return a promise of JSON. */
type PageFn<A, T> = (arg: A) => T | Promise<T>

export interface EnginePage {
  readonly engine: EngineName
  goto(url: string): Promise<void>
  reload(): Promise<void>
  evaluate<T, A = undefined>(fn: PageFn<A, T>, arg?: A): Promise<T>
  /** Poll `fn` in the page until it returns something truthy (every 100 ms), or throw after `timeout`. */
  waitFor<A = undefined>(fn: PageFn<A, unknown>, arg?: A, timeout?: number): Promise<void>
  /** Uncaught errors and unhandled rejections the page reported so far (this document and earlier ones). */
  errors(): Promise<string[]>
  close(): Promise<void>
}

export interface Engine {
  readonly name: EngineName
  /** The browser's own version string. */
  readonly version: string
  /** A page in this engine's one profile (IndexedDB is shared by its pages and survives reloads). */
  newPage(): Promise<EnginePage>
  /** Set a cookie for `url`'s origin (before the first navigation there). */
  setCookie(url: string, name: string, value: string): Promise<void>
  close(): Promise<void>
}

/** Whether this machine has the engine's browser (the specs skip with a reason otherwise, never silently). */
export function engineAvailable(name: EngineName): boolean {
  if (name === 'chromium') return fs.existsSync(CHROMIUM)
  if (name === 'firefox') return fs.existsSync(FIREFOX)
  return fs.existsSync(WEBKIT_DRIVER) && fs.existsSync(MINIBROWSER) && hasXvfb()
}

function hasXvfb() {
  try {
    execFileSync('sh', ['-c', 'command -v Xvfb'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Throws the "install it" error when the engine's browser is missing. */
export function requireEngine(name: EngineName) {
  if (name === 'chromium') return requireChromium()
  if (!engineAvailable(name))
    throw new Error(
      name === 'firefox'
        ? `${FIREFOX} not found: apt-get install firefox-esr (or set FIREFOX_PATH)`
        : `WebKitGTK not found: apt-get install webkit2gtk-driver xvfb gstreamer1.0-plugins-bad gstreamer1.0-libav`,
    )
}

export async function launchEngine(name: EngineName): Promise<Engine> {
  requireEngine(name)
  if (name === 'chromium') return launchChromium()
  if (name === 'firefox') return launchFirefox()
  return launchWebKit()
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Source of a call of `fn` with `arg`, for the engines that take a string. */
const callSource = (fn: PageFn<any, any>, arg: unknown) => `(${fn.toString()})(${JSON.stringify(arg ?? null)})`

/** The collector of uncaught errors the WebKit page installs after each navigation (no event stream). */
const ERROR_COLLECTOR = `(() => {
  if (window.__engineErrors) return
  window.__engineErrors = []
  window.addEventListener('error', (e) => window.__engineErrors.push('error: ' + (e.error?.stack || e.message)))
  window.addEventListener('unhandledrejection', (e) => window.__engineErrors.push('unhandledrejection: ' + (e.reason?.stack || e.reason)))
})()`

/** Poll `check` until truthy; a throw (the page navigating meanwhile) counts as not yet. */
async function waitLoop(check: () => Promise<unknown>, timeout: number, what: string) {
  const until = Date.now() + timeout
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > until) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await sleep(100)
  }
}

async function launchChromium(): Promise<Engine> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-chromium-'))
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    args: [...QUIET_ARGS, ...FAKE_MEDIA_ARGS, AUTOPLAY_ARG],
    headless: true,
  })
  const version = context.browser()?.version() ?? execFileSync(CHROMIUM, ['--version']).toString().trim()
  return {
    name: 'chromium',
    version,
    async newPage() {
      const page = await context.newPage()
      const errors: string[] = []
      page.on('pageerror', (e) => errors.push(`error: ${e.stack ?? e.message}`))
      return {
        engine: 'chromium',
        goto: async (url) => void (await page.goto(url)),
        reload: async () => void (await page.reload()),
        evaluate: (fn, arg) => page.evaluate(callSource(fn, arg)),
        waitFor: (fn, arg, timeout = 30_000) =>
          waitLoop(() => page.evaluate(callSource(fn, arg)), timeout, fn.toString()),
        errors: async () => [...errors],
        close: () => page.close(),
      }
    },
    setCookie: (url, name, value) => context.addCookies([{ name, value, url }]),
    async close() {
      await context.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function launchFirefox(): Promise<Engine> {
  const puppeteer = (await import('puppeteer-core')).default
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-firefox-'))
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    userDataDir: dir,
    extraPrefsFirefox: {
      // The fake microphone, granted without a prompt.
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.autoplay.default': 0,
      'media.autoplay.block-webaudio': false,
      // No sound device here: without the mock backend an AudioContext stays suspended.
      'media.cubeb.force_mock_context': true,
    },
  })
  const version = await browser.version()
  return {
    name: 'firefox',
    version,
    async newPage() {
      const page = await browser.newPage()
      const errors: string[] = []
      page.on('pageerror', (e: unknown) => errors.push(`error: ${(e as Error)?.stack ?? e}`))
      const evaluate = (fn: PageFn<any, any>, arg?: unknown) => page.evaluate(callSource(fn, arg))
      return {
        engine: 'firefox',
        goto: async (url) => void (await page.goto(url)),
        reload: async () => void (await page.reload()),
        evaluate: evaluate as EnginePage['evaluate'],
        waitFor: (fn, arg, timeout = 30_000) => waitLoop(() => evaluate(fn, arg), timeout, fn.toString()),
        errors: async () => [...errors],
        close: () => page.close(),
      }
    },
    setCookie: async (url, name, value) => {
      await browser.setCookie({ name, value, domain: new URL(url).hostname, path: '/' })
    },
    async close() {
      await browser.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

/** Xvfb on the first free display from :90; resolves once its socket exists. */
async function startXvfb(): Promise<{ display: string; child: ChildProcess }> {
  for (let n = 90 + (process.pid % 50); ; n++) {
    if (fs.existsSync(`/tmp/.X11-unix/X${n}`) || fs.existsSync(`/tmp/.X${n}-lock`)) continue
    const child = spawn('Xvfb', [`:${n}`, '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], { stdio: 'ignore' })
    let exited = false
    child.once('exit', () => (exited = true))
    const until = Date.now() + 10_000
    while (!exited && !fs.existsSync(`/tmp/.X11-unix/X${n}`) && Date.now() < until) await sleep(50)
    if (!exited && fs.existsSync(`/tmp/.X11-unix/X${n}`)) return { display: `:${n}`, child }
    child.kill()
  }
}

async function launchWebKit(): Promise<Engine> {
  const { Builder } = await import('selenium-webdriver')
  const xvfb = await startXvfb()
  const port = await freePort()
  const driverProcess = spawn(WEBKIT_DRIVER, [`--port=${port}`], {
    env: { ...process.env, DISPLAY: xvfb.display },
    stdio: 'ignore',
  })
  await waitLoop(
    () =>
      fetch(`http://127.0.0.1:${port}/status`).then(
        (r) => r.ok,
        () => false,
      ),
    10_000,
    'WebKitWebDriver',
  )
  const driver = await new Builder()
    .usingServer(`http://127.0.0.1:${port}`)
    .withCapabilities({
      browserName: 'MiniBrowser',
      'webkitgtk:browserOptions': {
        binary: MINIBROWSER,
        // The mock microphone ("Mock audio device 1", no prompt) and media that may autoplay.
        args: ['--automation', '--enable-mock-capture-devices=true', '--autoplay-policy=allow'],
      },
    })
    .build()
  await driver.manage().setTimeouts({ script: 60_000, pageLoad: 60_000 })
  const caps = await driver.getCapabilities()
  const version = `WebKitGTK ${caps.get('browserVersion') ?? '?'}`
  let open = false
  const evaluate = async (fn: PageFn<any, any>, arg?: unknown) => {
    const answer = (await driver.executeAsyncScript(
      `${ERROR_COLLECTOR};
       const done = arguments[arguments.length - 1];
       Promise.resolve().then(() => ${callSource(fn, arg)}).then(
         (value) => done({ value: value === undefined ? null : value }),
         (e) => done({ error: String(e && e.stack ? e.message + '\\n' + e.stack : e) }))`,
    )) as { value?: unknown; error?: string }
    if (answer.error !== undefined) throw new Error(`in WebKit: ${answer.error}`)
    return answer.value
  }
  const errors: string[] = []
  /** Keep what the page collected before it goes away (classic WebDriver has no event stream). */
  const harvest = async () => {
    const got = (await driver.executeScript('return window.__engineErrors || []').catch(() => [])) as string[]
    errors.push(...got)
    await driver.executeScript('if (window.__engineErrors) window.__engineErrors.length = 0').catch(() => {})
  }
  const collect = () => driver.executeScript(ERROR_COLLECTOR)
  return {
    name: 'webkit',
    version,
    async newPage() {
      // One window per session: MiniBrowser's automation session is the profile.
      if (open) throw new Error('WebKit: one page at a time')
      open = true
      return {
        engine: 'webkit',
        async goto(url) {
          await harvest()
          await driver.get(url)
          await collect()
        },
        async reload() {
          await harvest()
          await driver.navigate().refresh()
          await collect()
        },
        evaluate: evaluate as EnginePage['evaluate'],
        waitFor: (fn, arg, timeout = 30_000) => waitLoop(() => evaluate(fn, arg), timeout, fn.toString()),
        async errors() {
          await harvest()
          return [...errors]
        },
        async close() {
          await harvest()
          await driver.get('about:blank').catch(() => {})
          open = false
        },
      }
    },
    async setCookie(url, name, value) {
      // WebDriver sets cookies for the current document's origin.
      const current = await driver.getCurrentUrl().catch(() => '')
      if (!current.startsWith(new URL(url).origin)) await driver.get(url)
      await driver.manage().addCookie({ name, value, path: '/' })
    },
    async close() {
      await driver.quit().catch(() => {})
      driverProcess.kill()
      xvfb.child.kill()
    },
  }
}
