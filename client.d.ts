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
}

/** A refusal, with the route's error code (`session_not_found`, `content_mismatch`, …). */
export declare class SessionAudioUploadError extends Error {
  readonly status: number
  readonly code: string
}

/**
 * Upload a recording of any length straight to Vercel Blob, then have the route verify and attach
 * it (`201`). Requests to Blob are retried, wait while offline, and re-mint the grant before it expires.
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
