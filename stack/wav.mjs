// Real audio for tests and the demo: PCM WAV sine tones, generated (no fixtures needed for size).
import fs from 'node:fs'

/** The 44-byte header of a 16-bit PCM WAV whose data chunk holds `dataBytes`. */
export function wavHeader(dataBytes, sampleRate, channels) {
  const h = Buffer.alloc(44)
  h.write('RIFF', 0)
  h.writeUInt32LE(36 + dataBytes, 4)
  h.write('WAVE', 8)
  h.write('fmt ', 12)
  h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20) // PCM
  h.writeUInt16LE(channels, 22)
  h.writeUInt32LE(sampleRate, 24)
  h.writeUInt32LE(sampleRate * channels * 2, 28)
  h.writeUInt16LE(channels * 2, 32)
  h.writeUInt16LE(16, 34)
  h.write('data', 36)
  h.writeUInt32LE(dataBytes, 40)
  return h
}

function samples(count, startSample, sampleRate, freq) {
  const pcm = Buffer.alloc(count * 2)
  for (let i = 0; i < count; i++) {
    const t = (startSample + i) / sampleRate
    pcm.writeInt16LE(Math.round(Math.sin(2 * Math.PI * freq * t) * 12000), i * 2)
  }
  return pcm
}

/** A mono 16-bit WAV of `seconds` of a `freq` Hz tone. */
export function sineWav(seconds, { sampleRate = 16000, freq = 440 } = {}) {
  const n = Math.round(seconds * sampleRate)
  return Buffer.concat([wavHeader(n * 2, sampleRate, 1), samples(n, 0, sampleRate, freq)])
}

/** Write a WAV of about `bytes` bytes to `file` in chunks (for the large-file tests). */
export function writeLargeWav(file, bytes, { sampleRate = 48000, freq = 440 } = {}) {
  const n = Math.floor((bytes - 44) / 2)
  const fd = fs.openSync(file, 'w')
  fs.writeSync(fd, wavHeader(n * 2, sampleRate, 1))
  const chunk = 1 << 20
  for (let done = 0; done < n; done += chunk)
    fs.writeSync(fd, samples(Math.min(chunk, n - done), done, sampleRate, freq))
  fs.closeSync(fd)
}
