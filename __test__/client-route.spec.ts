// `session-audio/client` knows the audio route in one place (client/route.mjs): where a session's
// recording is stored (one extension per type), the grants, the access the deployment stores with,
// and the completion with its one retry rule. Both of its ways in are driven here against the real
// route and the Blob emulator: `uploadSessionAudio` (a whole file) and the recorder (in Node, with
// a stand-in MediaRecorder that hands over a real recording when it stops, and an in-memory
// journal).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRouteServer } from '../stack/route-server.mjs'
import { createAudioHandlers, type AudioOptions } from '../index.js'
import { createSessionRecorder, SessionAudioUploadError, uploadSessionAudio } from '../client.mjs'
import { EXTENSIONS } from '../client/route.mjs'
import { fixture, StandInMediaRecorder, startStack, type Stack } from './helpers'

let s: Stack
let alice: string

/**
 * A deployment: a route server whose completions can be refused on purpose (`refuse(n, answer)`:
 * the next `n` `session-audio.complete-upload` events get `answer` without reaching the route),
 * counting the completion events per session.
 */
async function deployment(kind: 'client-token' | 'presigned', extra: AudioOptions = {}) {
  const handlers: Record<string, any> = {}
  const completions = new Map<string, number>()
  let refusals = 0
  let refusal: () => Response = () => new Response(null, { status: 503 })
  const front = {
    POST: async (req: Request, ctx: { params: Promise<{ sessionId: string }> }) => {
      if (req.headers.get('content-type')?.startsWith('application/json')) {
        const { type } = await req.clone().json()
        if (type === 'session-audio.complete-upload') {
          const { sessionId } = await ctx.params
          completions.set(sessionId, (completions.get(sessionId) ?? 0) + 1)
          if (refusals > 0) {
            refusals--
            return refusal()
          }
        }
      }
      return handlers.POST(req, ctx)
    },
    GET: (req: Request, ctx: unknown) => handlers.GET(req, ctx),
  }
  const route = await startRouteServer({
    handlers: front as never,
    requestHeaders: () => (kind === 'presigned' ? { 'x-vercel-oidc-token': s.blob.oidcToken() } : {}),
  })
  const options = kind === 'presigned' ? s.oidcOptions : s.options
  Object.assign(handlers, createAudioHandlers(options({ blobCallbackUrl: route.url, ...extra })))
  return {
    route,
    completions,
    routeUrl: (id: string) => `${route.url}/api/listening-sessions/${id}/audio`,
    refuse(n: number, answer: () => Response) {
      refusals = n
      refusal = answer
    },
  }
}
type Deployment = Awaited<ReturnType<typeof deployment>>
const deployments: Deployment[] = []

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  for (const k of ['VERCEL_OIDC_TOKEN', 'BLOB_STORE_ID', 'BLOB_READ_WRITE_TOKEN', 'VERCEL_BLOB_API_URL'])
    delete process.env[k]
})
afterAll(async () => {
  for (const d of deployments) await d.route.close()
  await s?.close()
})

const deploy = async (kind: 'client-token' | 'presigned', extra: AudioOptions = {}) => {
  const d = await deployment(kind, extra)
  deployments.push(d)
  return d
}
const recording = () => s.session('user_alice', null, { status: 'recording' })
const headers = () => ({ authorization: `Bearer ${alice}` })

/** The recorder's whole life in Node: start, the recording handed over at stop, uploaded and completed. */
async function record(d: Deployment, id: string, bytes: Buffer, mimeType: string) {
  const saved = (globalThis as any).MediaRecorder
  ;(globalThis as any).MediaRecorder = StandInMediaRecorder
  try {
    const recorder = createSessionRecorder(id, {
      stream: { bytes, getTracks: () => [] } as never,
      mimeType,
      journal: 'memory',
      routeUrl: d.routeUrl(id),
      headers: headers(),
      blobApiUrl: s.blob.apiUrl,
      userId: null,
      retry: { attempts: 2, baseMs: 10, maxMs: 20 },
    })
    await recorder.start()
    return await recorder.stop()
  } finally {
    ;(globalThis as any).MediaRecorder = saved
  }
}

const upload = (d: Deployment, id: string, bytes: Buffer, contentType: string) =>
  uploadSessionAudio(id, new Blob([bytes], { type: contentType }), {
    durationMs: 5000,
    routeUrl: d.routeUrl(id),
    headers: headers(),
    blobApiUrl: s.blob.apiUrl,
  })

/** Both ways in, each for a fresh recording session: what each resolved or rejected with. */
async function both(d: Deployment, bytes: Buffer, contentType: string) {
  const ids = { upload: await recording(), recorder: await recording() }
  const outcome = (p: Promise<any>) =>
    p.then(
      (result) => ({ result }),
      (error) => ({ error }),
    )
  return {
    ids,
    upload: await outcome(upload(d, ids.upload, bytes, contentType)),
    recorder: await outcome(record(d, ids.recorder, bytes, contentType)),
  }
}

const storedPath = (audioUrl: string) => decodeURIComponent(new URL(audioUrl).pathname.slice(1))

describe('one route for uploadSessionAudio and the recorder', () => {
  it.each([
    ['audio/webm;codecs=opus', 'tone-5s-live.webm', 'webm'],
    ['audio/mp4', 'tone-5s-fragmented.m4a', 'm4a'],
    ['audio/ogg;codecs=opus', 'tone-5s.ogg', 'ogg'],
    ['audio/wav', 'tone-5s.wav', 'wav'],
    ['audio/mpeg', 'tone-5s.mp3', 'mp3'],
  ])(
    '%s, from %s: both store it as recording….%s under the session, the extension client/route.mjs names',
    async (type, file, ext) => {
      s.blob.state.holdWebhooks = true // the completion's own answer, not the webhook's
      const d = await deploy('client-token')
      const { ids, upload, recorder } = await both(d, fixture(file), type)
      expect(EXTENSIONS[type.split(';')[0]]).toBe(ext)
      for (const [way, outcome] of [
        ['upload', upload],
        ['recorder', recorder],
      ] as const) {
        expect(outcome, way).toMatchObject({ result: { status: 'transcribing' } })
        const pathname = storedPath((outcome as any).result.audioUrl)
        expect(pathname, way).toMatch(new RegExp(`^listening-sessions/${ids[way]}/recording[^/]*\\.${ext}$`))
      }
      s.blob.state.holdWebhooks = false
    },
  )

  it('both retry the completion by the same rule: through two 503s, and never after a final refusal', async () => {
    s.blob.state.holdWebhooks = true
    const d = await deploy('client-token')
    const wav = fixture('tone-5s.wav')
    // Two outages (Retry-After 0: the backoff's own 0.5 s, 1 s), then the route: the third attempt attaches.
    const outage = () => new Response(null, { status: 503, headers: { 'retry-after': '0' } })
    const transient = { upload: await recording(), recorder: await recording() }
    d.refuse(2, outage)
    const viaUpload = await upload(d, transient.upload, wav, 'audio/wav')
    d.refuse(2, outage)
    const viaRecorder = await record(d, transient.recorder, wav, 'audio/wav')
    expect(viaUpload).toMatchObject({ sessionId: transient.upload, status: 'transcribing' })
    expect(viaRecorder).toMatchObject({ sessionId: transient.recorder, status: 'transcribing' })
    expect([d.completions.get(transient.upload), d.completions.get(transient.recorder)]).toEqual([3, 3])
    // A refusal the route calls final is not retried by either.
    const final = () =>
      Response.json(
        { error: { code: 'session_not_recording', message: 'The session moved on.', final: true } },
        { status: 409 },
      )
    const refused = { upload: await recording(), recorder: await recording() }
    d.refuse(1, final)
    const e1 = await upload(d, refused.upload, wav, 'audio/wav').catch((e) => e)
    d.refuse(1, final)
    const e2 = await record(d, refused.recorder, wav, 'audio/wav').catch((e) => e)
    for (const e of [e1, e2]) {
      expect(e).toBeInstanceOf(SessionAudioUploadError)
      expect([e.status, e.code, e.final]).toEqual([409, 'session_not_recording', true])
    }
    expect([d.completions.get(refused.upload), d.completions.get(refused.recorder)]).toEqual([1, 1])
    s.blob.state.holdWebhooks = false
  })
})

describe('the access client uploads are stored with is the deployment’s', () => {
  it.each([
    ['client tokens', 'client-token'],
    ['presigned URLs', 'presigned'],
  ] as const)(
    '%s: blobAccess public stores public blobs (read without a token); the default private',
    async (_n, kind) => {
      s.blob.state.holdWebhooks = true
      const wav = fixture('tone-5s.wav')
      for (const [access, blobAccess, status] of [
        ['public', 'public', 200],
        ['private', undefined, 403],
      ] as const) {
        const d = await deploy(kind, blobAccess ? { blobAccess } : {})
        const { upload, recorder } = await both(d, wav, 'audio/wav')
        for (const [way, outcome] of [
          ['upload', upload],
          ['recorder', recorder],
        ] as const) {
          const { audioUrl } = (outcome as any).result
          // What the PUT declared, as the emulator recorded it, and what a reader without a token gets.
          expect(s.blob.meta.get(storedPath(audioUrl))?.access, `${access} ${way}`).toBe(access)
          expect((await fetch(audioUrl)).status, `${access} ${way}`).toBe(status)
        }
      }
      s.blob.state.holdWebhooks = false
    },
  )
})
