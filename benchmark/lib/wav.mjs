// The upload scenarios' audio: a real 16 kHz mono 16-bit PCM WAV header for a body of `total`
// bytes, and the duration those bytes hold, declared as the route requires (it measures the WAV
// and refuses a declaration more than 2 % off, or a WAV it cannot measure).
import { wavHeader } from '../../stack/wav.mjs'

const SAMPLE_RATE = 16000
const BYTES_PER_SECOND = SAMPLE_RATE * 2

export function benchWav(total) {
  return {
    header: wavHeader(total - 44, SAMPLE_RATE, 1),
    durationMs: Math.round(((total - 44) / BYTES_PER_SECOND) * 1000),
  }
}
