// The signed `blob.upload-completed` webhook, as Blob sends it to a client token's callbackUrl once
// that upload is stored: signed with the read-write token (`x-vercel-signature`), retried a few
// times on failure. While `state.holdWebhooks` is on they queue until `release()`, so a test can
// order the webhook against the browser's own completion event.
import { hmacHex } from './tokens.mjs'

export function webhookSender({ token, state }) {
  const sent = [] // { url, body, status } of every completion webhook sent
  const held = []
  /** Send (or hold) the webhook for `blob`, stored under a token with these constraints. */
  const send = async (constraints, blob) => {
    const callbackUrl = constraints?.onUploadCompleted?.callbackUrl
    if (!callbackUrl) return
    const body = JSON.stringify({
      type: 'blob.upload-completed',
      payload: { blob, tokenPayload: constraints.onUploadCompleted.tokenPayload ?? null },
    })
    const deliver = async () => {
      const record = { url: callbackUrl, body, status: 0 }
      sent.push(record)
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          const r = await fetch(callbackUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-vercel-signature': hmacHex(token, body) },
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
    }
    if (state.holdWebhooks) held.push(deliver)
    else deliver()
  }
  /** Send the webhooks held while `state.holdWebhooks` was on. */
  const release = () => Promise.all(held.splice(0).map((deliver) => deliver()))
  return { sent, send, release }
}
