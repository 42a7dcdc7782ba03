import type { AudioOptions as NativeAudioOptions, RequestRecord } from './binding'

/**
 * Options for the handlers: everything in `NativeAudioOptions` (declared once, in Rust, with each
 * option's environment variable and default), plus the `onRequest` callback. Each option overrides
 * the environment variable named in its comment; unset options fall back to that variable, then to
 * the default.
 */
export interface AudioOptions extends NativeAudioOptions {
  /** Called with each finished request's record (after a streamed body ends), for your own logger. */
  onRequest?: (record: RequestRecord) => void
}

/** One finished request (declared once, in Rust: `src/record.rs`). */
export type { RequestRecord } from './binding'

/** The JSON body of a successful upload (`201`). */
export interface AudioUploadResult {
  sessionId: string
  status: 'transcribing'
  audioUrl: string
  pathname: string
  contentType: string
  sizeBytes: number
  /** Measured from the container; the declared value only where the container does not say. */
  durationMs: number
  durationSource: 'measured' | 'declared'
}

export type { SweepReport } from './binding'

/**
 * Delete the blobs under `listening-sessions/` that no session references and that are older than
 * `olderThanMs` (with `dryRun`, only list them). Needs `NEXT_PUBLIC_CONVEX_URL`,
 * `BLOB_READ_WRITE_TOKEN` and `SESSION_AUDIO_SWEEP_SECRET` (the same value set in the Convex
 * deployment, checked by the template query `attachedAudio`). Also `npx session-audio sweep`.
 */
export declare function sweepOrphanAudio(
  options: AudioOptions & { olderThanMs: number; dryRun?: boolean },
): Promise<import('./binding').SweepReport>

/** The second argument Next.js passes to a route handler. */
export interface RouteContext {
  params: Promise<Record<string, string | string[]>> | Record<string, string | string[]>
}

export type RouteHandler = (request: Request, context: RouteContext) => Promise<Response>

/**
 * Stream a listening session's audio to its owner (GET and HEAD), with Range support.
 *
 * The one-off form of `createAudioHandlers(options).GET`. The handler (its caches and connection
 * pools) is built on the first call with a given `options` object, from those options and the
 * environment as it is at that moment, and reused by every later call with the same object; calls
 * without options share one handler. A changed `process.env` is not picked up afterwards, and
 * neither is a change to the options object: restart the process, or pass a new object. Keep the
 * options object at module scope: one created per request builds a handler per request.
 */
export declare function handleAudioGet(
  request: Request,
  context: RouteContext,
  options?: AudioOptions,
): Promise<Response>

/**
 * Upload a listening session's audio: the raw body streamed to Vercel Blob, then the session moved
 * `recording` → `transcribing`. Requires `x-duration-ms` and `x-content-type` headers. `201` with
 * an `AudioUploadResult` body.
 *
 * The one-off form of `createAudioHandlers(options).POST`; it binds its handler as `handleAudioGet`
 * does (and shares it: the same `options` object, or none, is the same handler).
 */
export declare function handleAudioPost(
  request: Request,
  context: RouteContext,
  options?: AudioOptions,
): Promise<Response>

/**
 * Route handlers bound to `options`. The native handler is built here, once: the options are
 * checked (an unknown name or a wrong type throws a `TypeError` now), the environment variables
 * they fall back to are read now, and every request goes straight to it. A changed `process.env`
 * takes effect in handlers created after the change (in practice: after a restart).
 */
export declare function createAudioHandlers(options?: AudioOptions): {
  GET: RouteHandler
  HEAD: RouteHandler
  POST: RouteHandler
}

/**
 * GET and HEAD of a session's audio from a Pages Router API route (`pages/api/…/[sessionId]/….ts`),
 * for a player that must seek in WebKit: Next drops `Content-Length` from App Router responses and
 * WebKit does not seek in an answer without it; a Pages API route's answer keeps it. Same checks,
 * options and answers as `createAudioHandlers(options).GET`; other methods get `405`. The session id
 * is `req.query.sessionId` (or `req.query.id`: the route's dynamic segment). Export it as the route's default, with
 * `export const config = { api: { bodyParser: false, responseLimit: false } }`.
 */
export declare function createPagesAudioHandler(
  options?: AudioOptions,
): (req: PagesRequest, res: PagesResponse) => Promise<void>

/** What `createPagesAudioHandler` reads of the request: Node's `IncomingMessage` (`NextApiRequest`). */
export interface PagesRequest {
  method?: string
  url?: string
  headers: Record<string, string | string[] | undefined>
  query?: Partial<Record<string, string | string[]>>
}

/** What `createPagesAudioHandler` uses of the response: Node's `ServerResponse` (`NextApiResponse`). */
export interface PagesResponse {
  statusCode: number
  appendHeader(name: string, value: string): unknown
  write(chunk: Uint8Array): boolean
  end(chunk?: Uint8Array): unknown
  destroy(): unknown
  on(event: 'close' | 'drain', listener: () => void): unknown
  off(event: 'close' | 'drain', listener: () => void): unknown
}

/** The JSON body of every refusal. */
export interface AudioErrorBody {
  error: { code: string; message: string }
}
