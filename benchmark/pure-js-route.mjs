// The route users would write without session-audio, with the official SDKs, the straightforward
// way: no caching beyond what the SDKs do themselves (@clerk/backend caches the JWKS for 5 min).
//   GET:  verifyToken → sessions.getToken(sid, 'convex') → ConvexHttpClient.query → fetch(blob URL,
//         Range) piped into new Response
//   POST: verifyToken → getToken → query (state) → @vercel/blob put(request.body) → mutation
import crypto from 'node:crypto'
import { createClerkClient, verifyToken } from '@clerk/backend'
import { ConvexHttpClient } from 'convex/browser'
import { put } from '@vercel/blob'

const env = process.env
const clerk = createClerkClient({ secretKey: env.CLERK_SECRET_KEY, apiUrl: env.CLERK_API_URL })

const json = (status, code) =>
  new Response(JSON.stringify({ error: { code } }), { status, headers: { 'content-type': 'application/json' } })

async function identity(request) {
  const header = request.headers.get('authorization') || ''
  const token = header.startsWith('Bearer ') ? header.slice(7) : null
  if (!token) return null
  try {
    const claims = await verifyToken(token, { secretKey: env.CLERK_SECRET_KEY, apiUrl: env.CLERK_API_URL })
    return { userId: claims.sub, sessionId: claims.sid }
  } catch {
    return null
  }
}

/** The caller, their Convex client and their session, or the refusal to return. */
async function ownedSession(request, params) {
  const { sessionId } = await params
  const who = await identity(request)
  if (!who) return { refusal: json(401, 'unauthenticated') }
  const convex = await convexFor(who)
  const doc = await convex.query('listeningSessions:getForAudio', { sessionId })
  if (!doc || doc.userId !== who.userId) return { refusal: json(404, 'session_not_found') }
  return { sessionId, convex, doc }
}

async function convexFor(who) {
  const { jwt } = await clerk.sessions.getToken(who.sessionId, 'convex')
  const convex = new ConvexHttpClient(env.NEXT_PUBLIC_CONVEX_URL, { logger: false })
  convex.setAuth(jwt)
  return convex
}

export async function GET(request, { params }) {
  const { refusal, doc } = await ownedSession(request, params)
  if (refusal) return refusal
  if (!doc.audioUrl) return json(404, 'audio_not_found')
  const headers = {}
  const range = request.headers.get('range')
  if (range) headers.range = range
  const upstream = await fetch(doc.audioUrl, { headers })
  const out = new Headers()
  for (const h of ['content-type', 'content-length', 'content-range', 'accept-ranges', 'etag', 'last-modified']) {
    const v = upstream.headers.get(h)
    if (v) out.set(h, v)
  }
  return new Response(upstream.body, { status: upstream.status, headers: out })
}

export async function POST(request, { params }) {
  const { refusal, sessionId, convex, doc } = await ownedSession(request, params)
  if (refusal) return refusal
  if (doc.status !== 'recording') return json(409, 'invalid_session_state')
  const contentType = request.headers.get('x-content-type')
  const durationMs = Number(request.headers.get('x-duration-ms'))
  const blob = await put(`listening-sessions/${sessionId}/audio.wav`, request.body, {
    access: 'public',
    contentType,
    addRandomSuffix: true,
    token: env.BLOB_READ_WRITE_TOKEN,
  })
  await convex.mutation(
    'listeningSessions:attachAudio',
    signed({
      sessionId,
      audioUrl: blob.url,
      pathname: blob.pathname,
      contentType,
      sizeBytes: Number(request.headers.get('content-length') || 0),
      durationMs,
    }),
  )
  return new Response(JSON.stringify({ status: 'transcribing', audioUrl: blob.url }), { status: 201 })
}

export const HEAD = GET

/** The template's attachAudio takes only signed arguments (examples/convex/listeningSessions.ts). */
function signed(args) {
  const all = { ...args, expiresAt: Date.now() + 5 * 60 * 1000 }
  const fields = ['sessionId', 'audioUrl', 'pathname', 'contentType', 'sizeBytes', 'durationMs', 'expiresAt']
  const message = fields.reduce(
    (m, f) => `${m}\n${f}=${Buffer.byteLength(String(all[f]))}:${all[f]}`,
    'session-audio:attachAudio:v1',
  )
  const signature = crypto.createHmac('sha256', env.SESSION_AUDIO_CONVEX_SECRET).update(message).digest('hex')
  return { ...all, signature }
}
