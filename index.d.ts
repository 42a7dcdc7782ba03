/**
 * Options for the handlers. Each one overrides the environment variable named in its comment;
 * unset options fall back to that variable, then to the default.
 */
export interface AudioOptions {
  /** Convex deployment URL. Env `NEXT_PUBLIC_CONVEX_URL`. Required. */
  convexUrl?: string
  /** Clerk secret key (JWKS and JWT-template tokens). Env `CLERK_SECRET_KEY`. Required. */
  clerkSecretKey?: string
  /** PEM public key for networkless session-token verification. Env `CLERK_JWT_KEY`. */
  clerkJwtKey?: string
  /** Clerk Backend API. Env `CLERK_API_URL`. Default `https://api.clerk.com`. */
  clerkApiUrl?: string
  /** When set, a session token's `azp` must be one of these. Env `CLERK_AUTHORIZED_PARTIES` (comma list). */
  authorizedParties?: string[]
  /** Vercel Blob read-write token (private blob reads, uploads). Env `BLOB_READ_WRITE_TOKEN`. */
  blobReadWriteToken?: string
  /** Vercel Blob API base. Env `VERCEL_BLOB_API_URL`. Default `https://vercel.com/api/blob`. */
  blobApiUrl?: string
  /** Sentry DSN. Env `SENTRY_DSN`. */
  sentryDsn?: string
  /**
   * Host patterns audio URLs may point at (`host`, `*.domain`, optionally `:port`).
   * Env `SESSION_AUDIO_TRUSTED_HOSTS` (comma list).
   * Default `*.public.blob.vercel-storage.com, *.private.blob.vercel-storage.com`.
   */
  trustedHosts?: string[]
  /** Clerk JWT template whose token Convex accepts. Env `SESSION_AUDIO_CONVEX_TEMPLATE`. Default `convex`. */
  convexTemplate?: string
  /** Convex query returning `{ _id, userId, status, audioUrl, audioContentType? } | null`. Env `SESSION_AUDIO_GET_QUERY`. Default `listeningSessions:getForAudio`. */
  getSessionQuery?: string
  /**
   * Tests and local development only: allow `http://127.0.0.1:PORT` / `http://localhost:PORT` audio
   * URLs whose `host:port` is in `trustedHosts`. Env `SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM=1`. Default off.
   */
  allowLoopbackUpstream?: boolean
  /** `max-age` (seconds) added to `Cache-Control: private, no-transform`. Env `SESSION_AUDIO_CACHE_MAX_AGE`. Default 0 (none). */
  cacheMaxAge?: number
  /** How long a session lookup is reused for the same user (ms). Env `SESSION_AUDIO_LOOKUP_TTL_MS`. Default 5000. */
  lookupTtlMs?: number
  /** Time allowed for the audio storage's response headers and between chunks (ms). Env `SESSION_AUDIO_UPSTREAM_TIMEOUT_MS`. Default 15000. */
  upstreamTimeoutMs?: number
  /** Convex mutation moving a session `recording` → `transcribing`. Env `SESSION_AUDIO_ATTACH_MUTATION`. Default `listeningSessions:attachAudio`. */
  attachMutation?: string
  /** Convex query returning `{ canRecord, maxRecordingMs?, maxUploadBytes? }`. Env `SESSION_AUDIO_ENTITLEMENTS_QUERY`. Default `entitlements:getForCurrentUser`. */
  entitlementsQuery?: string
  /** Largest accepted upload in bytes. Env `SESSION_AUDIO_MAX_UPLOAD_BYTES`. Default 104857600 (100 MiB). */
  maxUploadBytes?: number
  /** Longest accepted `x-duration-ms`. Env `SESSION_AUDIO_MAX_DURATION_MS`. Default 14400000 (4 h). */
  maxDurationMs?: number
  /**
   * Accepted audio types. Env `SESSION_AUDIO_ALLOWED_TYPES` (comma list).
   * Default `audio/webm, audio/ogg, audio/mpeg, audio/mp4, audio/aac, audio/wav, audio/flac` (common aliases accepted).
   */
  allowedTypes?: string[]
  /** `x-vercel-blob-access` of stored uploads. Env `SESSION_AUDIO_BLOB_ACCESS`. Default `private`. */
  blobAccess?: 'private' | 'public'
  /**
   * Level of the JSON log line written to stderr per finished request. Process-wide: the first
   * handler created decides. Env `SESSION_AUDIO_LOG`. Default `info`; `off` disables.
   */
  logLevel?: 'off' | 'error' | 'warn' | 'info' | 'debug'
  /** Send `Server-Timing` with the phase durations. Env `SESSION_AUDIO_SERVER_TIMING=0` disables. Default on. */
  serverTiming?: boolean
  /** Sentry environment. Env `SENTRY_ENVIRONMENT`, else `VERCEL_ENV`. */
  sentryEnvironment?: string
  /** Called with each finished request's record (after a streamed body ends), for your own logger. */
  onRequest?: (record: RequestRecord) => void
}

/** One finished request. Never contains tokens, cookies or the user id itself. */
export interface RequestRecord {
  requestId: string
  method: string
  route: 'get' | 'post'
  sessionId?: string
  /** First 16 hex digits of SHA-256 of the Clerk user id. */
  userHash?: string
  status: number
  errorCode?: string
  /** Bytes sent (GET) or received (POST). */
  bytes: number
  durationMs: number
  /** Milliseconds per phase: auth, token, lookup, upstream, transfer, entitlements, storage, mutation. */
  phases: Record<string, number>
}

/** The JSON body of a successful upload (`201`). */
export interface AudioUploadResult {
  sessionId: string
  status: 'transcribing'
  audioUrl: string
  pathname: string
  contentType: string
  sizeBytes: number
  durationMs: number
}

/** The second argument Next.js passes to a route handler. */
export interface RouteContext {
  params: Promise<Record<string, string | string[]>> | Record<string, string | string[]>
}

export type RouteHandler = (request: Request, context: RouteContext) => Promise<Response>

/** Stream a listening session's audio to its owner (GET and HEAD), with Range support. */
export declare function handleAudioGet(
  request: Request,
  context: RouteContext,
  options?: AudioOptions,
): Promise<Response>

/**
 * Upload a listening session's audio: the raw body streamed to Vercel Blob, then the session moved
 * `recording` → `transcribing`. Requires `x-duration-ms` and `x-content-type` headers. `201` with
 * an `AudioUploadResult` body.
 */
export declare function handleAudioPost(
  request: Request,
  context: RouteContext,
  options?: AudioOptions,
): Promise<Response>

/** Route handlers bound to `options`. */
export declare function createAudioHandlers(options?: AudioOptions): {
  GET: RouteHandler
  HEAD: RouteHandler
  POST: RouteHandler
}

/** The JSON body of every refusal. */
export interface AudioErrorBody {
  error: { code: string; message: string }
}
