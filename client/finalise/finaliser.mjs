// Which finaliser a recording gets, by its type: the one place `uploadSessionAudio` (client.mjs) and
// the recorder (client/recorder/) ask. MediaRecorder's WebM has no Duration and no Cues
// (client/finalise/webm.mjs), its MP4 no duration and no index (client/finalise/mp4.mjs); other
// types go up as they are. The plumbing both finalisers share is client/finalise/base.mjs.
import { essence } from '../route.mjs'
import { createMp4Finaliser, finaliseMp4 } from './mp4.mjs'
import { createWebmFinaliser, finaliseWebm } from './webm.mjs'

const FINALISERS = {
  'audio/webm': { create: createWebmFinaliser, whole: finaliseWebm },
  'audio/mp4': { create: createMp4Finaliser, whole: finaliseMp4 },
}

/** Whether recordings of `contentType` are finalised before they are stored. */
export const finalisable = (contentType) => essence(contentType) in FINALISERS

/** A new incremental finaliser for `contentType`, or null when that type is not finalised. */
export const createFinaliser = (contentType) => FINALISERS[essence(contentType)]?.create() ?? null

/** `blob` finalised whole (a new Blob), or `blob` itself when its type is not finalised or cannot be followed. */
export async function finaliseRecording(blob, contentType) {
  const f = FINALISERS[essence(contentType)]
  return f ? f.whole(blob) : blob
}
