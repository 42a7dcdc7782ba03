// The signed `blob.upload-completed` webhook, as Blob sends it to an upload's callbackUrl once
// that upload is stored, in compact JSON, retried a few times on failure. Its `x-vercel-signature`
// depends on how the upload was authorised: a client-token upload gets hex HMAC-SHA256 keyed by the
// read-write token (what `handleUpload` verifies); a presigned upload gets Ed25519 over the body's
// bytes as 128 hex characters, checked with the store's public key (`BLOB_WEBHOOK_PUBLIC_KEY`, what
// `handleUploadPresigned` verifies), since an OIDC-only project holds no shared secret. While
// `state.holdWebhooks` is on they queue until `release()`, so a test can order the webhook against
// the browser's own completion event.
import crypto from 'node:crypto'
import { hmacHex } from './tokens.mjs'

export function webhookSender({ token, state }) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519')
  // { url, body, signature, signedWith: 'hmac' | 'ed25519', status, done } of every webhook sent;
  // `done` once its last try has ended (answered, or out of tries).
  const sent = []
  const held = []
  /** `x-vercel-signature` for `body` under `constraints` (presigned: Ed25519, else HMAC). */
  const sign = (constraints, body) =>
    constraints.presigned ? crypto.sign(null, Buffer.from(body), privateKey).toString('hex') : hmacHex(token, body)
  /** Send (or hold) the webhook for `blob`, stored under a token with these constraints. */
  const send = async (constraints, blob) => {
    const callbackUrl = constraints?.onUploadCompleted?.callbackUrl
    if (!callbackUrl) return
    const body = JSON.stringify({
      type: 'blob.upload-completed',
      payload: { blob, tokenPayload: constraints.onUploadCompleted.tokenPayload ?? null },
    })
    const signature = sign(constraints, body)
    const deliver = async () => {
      const signedWith = constraints.presigned ? 'ed25519' : 'hmac'
      const record = { url: callbackUrl, body, signature, signedWith, status: 0, done: false }
      sent.push(record)
      try {
        for (let attempt = 0; attempt < 3; attempt++) {
          try {
            const r = await fetch(callbackUrl, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-vercel-signature': signature },
              body,
            })
            record.status = r.status
            await r.arrayBuffer()
            if (r.ok) return
          } catch {
            record.status = -1
          }
          await new Promise((r) => setTimeout(r, 200 * 2 ** attempt))
        }
      } finally {
        record.done = true
      }
    }
    if (state.holdWebhooks) held.push(deliver)
    else deliver()
  }
  /** Send the webhooks held while `state.holdWebhooks` was on. */
  const release = () => Promise.all(held.splice(0).map((deliver) => deliver()))
  /** The Ed25519 key presigned uploads' webhooks are signed with, as SPKI PEM (`BLOB_WEBHOOK_PUBLIC_KEY`). */
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' })
  return { sent, send, release, publicKeyPem }
}
