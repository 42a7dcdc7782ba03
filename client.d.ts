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
