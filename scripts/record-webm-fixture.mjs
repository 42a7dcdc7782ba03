// Record the MediaRecorder fixtures in __test__/fixtures/audio: Debian's Chromium with its fake
// microphone (a beep every second), `MediaRecorder(stream, { mimeType: 'audio/webm;codecs=opus' })`
// started with a timeslice, every `dataavailable` chunk kept in order and written as one file, plus
// `<file>.json` beside it: the chunk sizes (tests replay the recorder's own chunking) and the length
// Chromium's decoder (`decodeAudioData`) finds, the tests' ground truth.
//   node scripts/record-webm-fixture.mjs <out.webm> <seconds> [audioBitsPerSecond] [timesliceMs]
import { recordFixture } from './lib/record-fixture.mjs'

await recordFixture({
  mimeType: 'audio/webm;codecs=opus',
  usage: 'usage: record-webm-fixture.mjs <out.webm> <seconds> [audioBitsPerSecond] [timesliceMs]',
})
