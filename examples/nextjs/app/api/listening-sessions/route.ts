// Create and list the caller's listening sessions (the demo page's only other API). This is the
// plain SDK way: Clerk's `auth()` for the user and a `convex` template token, ConvexHttpClient
// for the call.
import { auth } from '@clerk/nextjs/server'
import { ConvexHttpClient } from 'convex/browser'
import { makeFunctionReference } from 'convex/server'

export const runtime = 'nodejs'

type Session = { _id: string; status: string; createdAt: number; durationMs?: number; contentType?: string }
const create = makeFunctionReference<'mutation', Record<string, never>, string>('listeningSessions:create')
const listMine = makeFunctionReference<'query', Record<string, never>, Session[]>('listeningSessions:listMine')

async function convexForCaller(): Promise<ConvexHttpClient | null> {
  const { userId, getToken } = await auth()
  if (!userId) return null
  const token = await getToken({ template: 'convex' })
  if (!token) return null
  const client = new ConvexHttpClient(process.env.NEXT_PUBLIC_CONVEX_URL!)
  client.setAuth(token)
  return client
}

const signedOut = () => Response.json({ error: { code: 'unauthenticated', message: 'sign in first' } }, { status: 401 })

export async function POST() {
  const convex = await convexForCaller()
  if (!convex) return signedOut()
  const sessionId = await convex.mutation(create, {})
  return Response.json({ sessionId, status: 'recording' }, { status: 201 })
}

export async function GET() {
  const convex = await convexForCaller()
  if (!convex) return signedOut()
  return Response.json({ sessions: await convex.query(listMine, {}) })
}
