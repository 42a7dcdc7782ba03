// fix-webm-duration ships no types. It rewrites a MediaRecorder WebM's header with its duration:
// without it Chrome reports `audio.duration === Infinity` and the seek bar does not work.
declare module 'fix-webm-duration' {
  export default function fixWebmDuration(blob: Blob, durationMs: number, options?: { logger?: false }): Promise<Blob>
}
