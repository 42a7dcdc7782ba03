// The signatures doctor makes with SESSION_AUDIO_CONVEX_SECRET, byte for byte as the route makes
// them (crates/core/src/upload/attach_sign.rs) and the Convex template checks them
// (examples/convex/listeningSessions.ts): a version line, then per field, in order,
// `\n{name}={UTF-8 byte length}:{value}`, signed with HMAC-SHA256, lowercase hex.
// __test__/cli-doctor.spec.ts holds this to the known-answer vectors in
// __test__/fixtures/attach-signature.json and to the template's own check.
import crypto from 'node:crypto'

/** The fields of attachAudio's arguments, in the order they are signed. */
const ATTACH_FIELDS = ['sessionId', 'audioUrl', 'pathname', 'contentType', 'sizeBytes', 'durationMs', 'expiresAt']

function message(version, fields) {
  let text = version
  for (const [name, value] of fields) text += `\n${name}=${Buffer.byteLength(String(value))}:${value}`
  return text
}

/** What the route signs for attachAudio. */
export const attachMessage = (args) =>
  message(
    'session-audio:attachAudio:v1',
    ATTACH_FIELDS.map((name) => [name, args[name]]),
  )

/**
 * What doctor signs for the template's `checkAttachSetup`: its own version line, so a probe's
 * signature is never an attach's.
 */
export const probeMessage = (blobOrigin) => message('session-audio:attachSecretProbe:v1', [['blobOrigin', blobOrigin]])

/** HMAC-SHA256 of `text` under `secret`, lowercase hex. */
export const sign = (secret, text) => crypto.createHmac('sha256', secret).update(text).digest('hex')
