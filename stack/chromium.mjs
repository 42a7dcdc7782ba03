// Debian's Chromium as every browser test, benchmark and fixture script launches it: one place for
// where it lives and the flags it runs with, so a flag added for one harness is added for all.
import fs from 'node:fs'

/** The Chromium binary: `CHROMIUM_PATH`, else Debian's package. */
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

/** Flags every launch needs in a container: no sandbox (no user namespaces), no GPU. */
export const BASE_ARGS = ['--no-sandbox', '--disable-gpu']

/**
 * BASE_ARGS plus no traffic of Chromium's own (QUIC, first-run, background fetches, component
 * updates, sync), so the loopback servers see only the page's requests.
 */
export const QUIET_ARGS = [
  ...BASE_ARGS,
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** The fake microphone (a beep every second), granted without a prompt. */
export const FAKE_MEDIA_ARGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']

/** Media may play (and an AudioContext run) without a user gesture. */
export const AUTOPLAY_ARG = '--autoplay-policy=no-user-gesture-required'

/** Throws the "install chromium" error when the binary is missing. */
export function requireChromium() {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`)
}
