// The player's source: GET and HEAD of a session's audio from a Pages Router API route, so that
// the answer keeps its Content-Length. Uploads stay on the App Router route
// (app/api/listening-sessions/[sessionId]/audio/route.ts, which `npx session-audio init` writes).
//
// Why not the App Router route: Next (16.4) removes `Content-Length` from every route handler's
// Response (`FORBIDDEN_HEADERS` in next/dist/server/send-response.js) and streams the body chunked;
// middleware cannot put it back (next/dist/server/lib/router-utils/resolve-routes.js drops it too).
// Without a length WebKit (measured in WebKitGTK) takes the answer for a live stream, does not buffer
// it, reads the fragmented MP4 its recorder makes pushed, and every seek lands back where playback
// was (session-audio's docs/mp4-finalise.md, "WebKit"). A Pages API route's answer is sent as written.
import { createPagesAudioHandler } from 'session-audio'

// No body to parse, and an answer of any size is expected (a recording), not a slow API reply.
export const config = { api: { bodyParser: false, responseLimit: false } }

export default createPagesAudioHandler()
