// Next 16's `proxy.ts` (formerly `middleware.ts`). Clerk runs on every page and API route except
// the two audio routes (`audio`, uploads and GET; `playback`, the player's GET): behind a
// proxy/middleware Next buffers the request body and silently cuts it at 10 MB
// (`proxyClientMaxBodySize`), which would truncate uploads. session-audio verifies the Clerk
// session itself, so those routes need no middleware (and a truncated body would be refused anyway).
import { clerkMiddleware } from '@clerk/nextjs/server'

export default clerkMiddleware()

export const config = {
  matcher: ['/((?!_next|favicon\\.ico|api/listening-sessions/[^/]+/(?:audio|playback)).*)'],
}
