import type { AudioUploadResult } from './index'

/** Upload progress: bytes Blob confirmed (or, in browsers, sent) of `total`. */
export interface UploadProgress {
  loaded: number
  total: number
  percentage: number
}

export interface UploadSessionAudioOptions {
  /** The recording's length in ms (checked against the limits, and attached with the audio). */
  durationMs: number
  /** Defaults to `blob.type` (MediaRecorder sets it, e.g. `audio/webm;codecs=opus`). */
  contentType?: string
  onProgress?: (progress: UploadProgress) => void
  /** Cancels the upload. */
  signal?: AbortSignal
  /** Extra headers for the route (an `Authorization: Bearer` token; cookies go anyway). */
  headers?: Record<string, string>
  /** File name hint inside the session's folder; the store adds a random suffix. Default `recording`. */
  name?: string
  /** The audio route. Default `/api/listening-sessions/{sessionId}/audio`. */
  routeUrl?: string
  /** Upload in 8 MiB parts. Default: from 16 MiB up. */
  multipart?: boolean
  /** Vercel Blob's API. Default: as `@vercel/blob` finds it (`NEXT_PUBLIC_VERCEL_BLOB_API_URL`, else Vercel's). */
  blobApiUrl?: string
  /** Each request to Blob: attempts, and the backoff between them. Default 8 attempts, 0.5 s doubling up to 30 s. */
  retry?: { attempts?: number; baseMs?: number; maxMs?: number }
}

/** A refusal, with the route's error code (`session_not_found`, `content_mismatch`, …). */
export declare class SessionAudioUploadError extends Error {
  readonly status: number
  readonly code: string
  /**
   * The route's word on the refusal, when it gave one: `true` refused for good (the recording's
   * bytes, type, size or duration, the user's limits, or the session moved on), `false` trying
   * again may succeed (an outage, a sign-in, a session this user cannot see). Undefined from older
   * routes and for the client's own errors.
   */
  readonly final?: boolean
  /** The route's `Retry-After`, in ms, when it sent one. */
  readonly retryAfterMs?: number
}

/**
 * Upload a recording of any length straight to Vercel Blob, then have the route verify and attach
 * it (`201`). Requests to Blob are retried, wait while offline, and re-mint the grant before it expires.
 * The completion is retried through outages (network errors, `5xx`, `408`, `429`), and when the route
 * cannot use what was stored (`upload_expired`, `upload_not_found`) `blob` is uploaded once more.
 */
export declare function uploadSessionAudio(
  sessionId: string,
  blob: Blob,
  options: UploadSessionAudioOptions,
): Promise<AudioUploadResult>

/** What `WebmFinaliser.finish()` returns. */
export interface WebmFinal {
  /** The final header region: exactly `headerLength` bytes, to replace the output's first bytes. */
  header: Uint8Array
  /** The Cues element, to append after the last byte `push()` returned. */
  tail: Uint8Array
  /** The recording's length: the last block's time plus its Opus packet (or the block step). */
  durationMs: number
  /** CuePoints written (one per Cluster with a Timecode). */
  clusters: number
  /** Where the first Cluster starts in the input (the output has it at `headerLength`). */
  inputDataStart: number
  /** The input already had a Duration and Cues (`finaliseWebm` then returns it unchanged). */
  alreadyFinal: boolean
}

/** An incremental WebM finaliser: keeps cluster offsets and timecodes, never the audio. */
export interface WebmFinaliser {
  /**
   * Feed the recording's next bytes, in order. Returns the bytes to write out: empty until the
   * header region is complete, then the provisional header region (`headerLength` bytes, a reserved
   * Void in it) and the recording from its first Cluster; after that each chunk as it is.
   */
  push(chunk: Uint8Array | ArrayBuffer): Uint8Array
  /** The header region's length in the output, once the first Cluster was seen (else null). */
  readonly headerLength: number | null
  readonly bytesIn: number
  readonly bytesOut: number
  /**
   * The longest prefix of the input that `finish()` accepts: where the last whole element ends (null
   * before the first Cluster). MediaRecorder cuts chunks on its timer, not between blocks, so a
   * recording a crash ended is finalised by a fresh finaliser fed exactly these bytes.
   */
  readonly completeBytes: number | null
  /** The final header region (same length) and the Cues to append. Throws `WebmFinaliseError`. */
  finish(): WebmFinal
}

/** Why a recording could not be finalised. */
export declare class WebmFinaliseError extends Error {
  readonly code: 'not_webm' | 'malformed' | 'truncated' | 'no_audio' | 'too_large' | 'state'
}

export declare function createWebmFinaliser(): WebmFinaliser

/**
 * A seekable copy of a MediaRecorder WebM: known Segment size, Duration, SeekHead and Cues. Reads
 * the blob in 1 MiB slices. Returns `blob` itself when it is not WebM, already has Duration and Cues,
 * or cannot be followed (malformed, truncated, no audio). `uploadSessionAudio` calls it for WebM.
 */
export declare function finaliseWebm(blob: Blob, options?: { sliceBytes?: number }): Promise<Blob>

/** What `Mp4Finaliser.finish()` returns. */
export interface Mp4Final {
  /** The final header region: exactly `headerLength` bytes (durations written, the sidx in the reserve). */
  header: Uint8Array
  /** Empty: the index is in the header region. */
  tail: Uint8Array
  /** The recording's length: the last fragment's tfdt plus its samples, less the first fragment's tfdt. */
  durationMs: number
  /** Fragments (moof+mdat) read. */
  fragments: number
  /** sidx references written (at most 1024; a longer recording gets references of several fragments). */
  references: number
  /** Where the first moof starts in the input (the output has it at `headerLength`). */
  inputDataStart: number
  /** The input already had a sidx and a duration (`finaliseMp4` then returns it unchanged). */
  alreadyFinal: boolean
}

/** An incremental fragmented-MP4 finaliser: keeps at most 2048 fragment positions, never the audio. */
export interface Mp4Finaliser {
  /**
   * Feed the recording's next bytes, in order. Returns the bytes to write out: empty until the
   * first moof, then the provisional header region (`headerLength` bytes: ftyp, moov and a reserved
   * `free` box) and the recording from its first moof; after that each chunk as it is.
   */
  push(chunk: Uint8Array | ArrayBuffer): Uint8Array
  /** The header region's length in the output, once the first moof was seen (else null). */
  readonly headerLength: number | null
  /** Where the input can be cut (after a whole fragment) and still finish, or null. */
  readonly cleanEnd: number | null
  readonly bytesIn: number
  readonly bytesOut: number
  /** The final header region (same length). Throws `Mp4FinaliseError`. */
  finish(): Mp4Final
}

/** Why a recording could not be finalised (`unsupported`: not fragmented, or absolute data offsets). */
export declare class Mp4FinaliseError extends Error {
  readonly code: 'not_mp4' | 'unsupported' | 'malformed' | 'truncated' | 'no_audio' | 'too_large' | 'state'
}

export declare function createMp4Finaliser(): Mp4Finaliser

/**
 * A seekable copy of a MediaRecorder fragmented MP4 (Chromium's `audio/mp4`, Safari's): durations in
 * mvhd/tkhd/mdhd and a sidx before the first fragment. Reads the blob in 1 MiB slices. Returns `blob`
 * itself when it is not a fragmented MP4, already has a sidx and a duration, or cannot be followed.
 * `uploadSessionAudio` calls it for `audio/mp4`.
 */
export declare function finaliseMp4(blob: Blob, options?: { sliceBytes?: number }): Promise<Blob>

/** Where a recorder is: `stop()` moves it through `stopping` and `uploading` to `done` or `failed`. */
export type RecorderState =
  'idle' | 'starting' | 'recording' | 'paused' | 'stopping' | 'uploading' | 'done' | 'failed' | 'cancelled'

export interface RecorderProgress {
  /** Audio recorded so far (pauses excluded). */
  recordedMs: number
  /** Bytes stored in Blob so far. */
  uploadedBytes: number
  /** Bytes safe in the journal (IndexedDB) so far. */
  journaledBytes: number
}

/** The journal could not be used: `journal_unavailable` (no IndexedDB, e.g. some private modes),
 * `journal_quota_exceeded` (storage full), `journal_closed`, `journal_failed`. */
export declare class JournalError extends Error {
  readonly code: 'journal_unavailable' | 'journal_quota_exceeded' | 'journal_closed' | 'journal_failed'
  /**
   * Set on the error `onError` gets when the journal stopped taking writes mid-recording: the
   * recording goes on in memory (`stats.journal` is `'memory'`), parts still upload while it
   * records, and a reload or a crash loses what is not uploaded yet.
   */
  readonly recordingContinues?: true
}

export interface SessionRecorderOptions {
  /** Record this stream instead of asking for the microphone (`getUserMedia({ audio: true })`). */
  stream?: MediaStream
  /** Default: the first the browser records of WebM/Opus, then MP4/AAC (Safari). */
  mimeType?: string
  /** MediaRecorder's bitrate. Default: the browser's. */
  audioBitsPerSecond?: number
  /** How often a chunk is journaled, at most 1000 ms: a crash loses at most this much. Default 1000. */
  timesliceMs?: number
  /** Stop by itself after this much audio. */
  maxDurationMs?: number
  /** Each request to Blob: attempts, and the backoff between them. Default 8 attempts, 0.5 s doubling up to 30 s. */
  retry?: { attempts?: number; baseMs?: number; maxMs?: number }
  /** Blob multipart part size; every non-final part is exactly this (Vercel Blob: at least 5 MiB). Default 5 MiB (Vercel Blob's minimum: after Stop at most one part is left to send). */
  partSizeBytes?: number
  /** The audio route. Default `/api/listening-sessions/{sessionId}/audio`. */
  routeUrl?: string
  /**
   * Extra headers for the route (cookies go anyway). A function is called for every request to the
   * route: use it for a short-lived `Authorization: Bearer` token (Clerk's last 60 s).
   */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>)
  /** Vercel Blob's API. Default: as `@vercel/blob` finds it (`NEXT_PUBLIC_VERCEL_BLOB_API_URL`, else Vercel's). */
  blobApiUrl?: string
  /**
   * `'memory'`: keep chunks in memory instead of IndexedDB (the fallback when `start()` rejects
   * with `journal_unavailable`): nothing survives a reload or a crash.
   */
  journal?: 'memory'
  /**
   * The IndexedDB database of journals. Default `session-audio`. On a browser several users share,
   * give each user their own (e.g. `session-audio-${userId}`), and pass the same to
   * `resumeSessionUploads`, `pendingSessionUploads` and `discardSessionUpload`.
   */
  dbName?: string
  /**
   * Whose recording this is: only this user's `resumeSessionUploads()` and `pendingSessionUploads()`
   * see its journal. Default: the `sub` of the Clerk session token in `headers`' `Authorization:
   * Bearer`, else in the `__session` cookie (decoded, not verified: a key, never a permission); `null`:
   * no user (every page sees it). docs/recorder.md, "Shared browsers".
   */
  userId?: string | null
  onStateChange?: (state: RecorderState) => void
  onProgress?: (progress: RecorderProgress) => void
  /**
   * An upload or journal failure while recording. A journal write failure (a full quota, a closed
   * database) never stops the recording: it goes on in memory, and the error has `recordingContinues`.
   */
  onError?: (error: Error) => void
}

export interface SessionRecorder {
  readonly state: RecorderState
  readonly mimeType: string | null
  /** What stopped the recording or an upload, if anything did. */
  readonly error: Error | null
  /**
   * Measured: the most audio bytes held in memory at once, the parts sent before `stop()`, and where
   * chunks are kept (after `start()`): in IndexedDB as Blobs (`'blob'`), as ArrayBuffers where the
   * browser refuses Blobs there (`'arraybuffer'`: WebKit's ephemeral sessions, as Safari's private
   * browsing), or in memory (`'memory'`: asked for, or the journal stopped taking writes).
   */
  readonly stats: {
    maxHeldBytes: number
    partsBeforeStop: number
    journal: 'blob' | 'arraybuffer' | 'memory' | null
  }
  start(): Promise<void>
  pause(): void
  resume(): void
  /** Stop, send what is left and complete: the route's answer, as `uploadSessionAudio` resolves. */
  stop(): Promise<import('./index').AudioUploadResult>
  /** Stop without uploading and drop the journal. */
  cancel(): Promise<void>
}

/** Record a session's audio: journaled to IndexedDB, uploaded while recording, seekable when stored. */
export declare function createSessionRecorder(sessionId: string, options?: SessionRecorderOptions): SessionRecorder

export interface PendingSessionUpload {
  sessionId: string
  bytes: number
  chunkCount: number
  recordedMs: number
  startedAt: number
  /** `recording`, `stopped`, `completing`, or `refused` (the route refused it for good: see `refusal`). */
  status: string
  /** Whose recording it is, when the recorder knew. */
  userId?: string
  refusal?: { status: number; code: string; message: string; final?: boolean }
}

/** Which user's journals: `userId`, else the one `headers`' bearer token or the `__session` cookie names. */
export interface JournalUserOptions {
  /** The signed-in user; `null`: only journals recorded without a user. */
  userId?: string | null
  /** Headers the app passes to the route: an `Authorization: Bearer` token names the user. */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>)
}

/**
 * Recordings this browser journaled for this user and did not finish (not those this page is
 * recording); journals recorded without a user are everyone's.
 */
export declare function pendingSessionUploads(
  options?: { dbName?: string } & JournalUserOptions,
): Promise<PendingSessionUpload[]>

/** Drop one journaled recording, whoever recorded it: its audio is gone from this browser. Rejects (`code:
 * 'recording_in_progress'`) while a tab is recording it. */
export declare function discardSessionUpload(sessionId: string, options?: { dbName?: string }): Promise<void>

export type ResumeOutcome =
  | { sessionId: string; result: import('./index').AudioUploadResult; error?: undefined }
  | { sessionId: string; error: Error; result?: undefined }

/**
 * On page load: finish every recording this browser journaled for this user and did not finish
 * (finalised from the journal up to its last chunk, the parts already stored reused). Another
 * user's journals are left as they are. A `409` (the session moved on) ends that journal and is
 * reported as its error; a refusal that is not final leaves it pending for the next call.
 */
export declare function resumeSessionUploads(options?: {
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>)
  /** The signed-in user (default: from `headers` or the `__session` cookie; see `SessionRecorderOptions.userId`). */
  userId?: string | null
  onError?: (error: Error) => void
  dbName?: string
  onProgress?: (progress: { sessionId: string; uploadedBytes: number; journaledBytes: number }) => void
}): Promise<ResumeOutcome[]>
