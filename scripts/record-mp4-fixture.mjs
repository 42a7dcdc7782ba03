// Record the MediaRecorder MP4 fixture in __test__/fixtures/audio: Debian's Chromium with its fake
// microphone (a beep every second), `MediaRecorder(stream, { mimeType: 'audio/mp4' })` (Chromium 156
// records Opus in fragmented MP4) started with a timeslice, every `dataavailable` chunk kept in
// order and written as one file, plus `<file>.json` beside it: the chunk sizes (tests replay the
// recorder's own chunking) and the length Chromium's decoder (`decodeAudioData`) finds.
//   node scripts/record-mp4-fixture.mjs <out.m4a> <seconds> [audioBitsPerSecond] [timesliceMs]
import { recordFixture } from './lib/record-fixture.mjs'

await recordFixture({
  mimeType: 'audio/mp4',
  usage: 'usage: record-mp4-fixture.mjs <out.m4a> <seconds> [audioBitsPerSecond] [timesliceMs]',
})
