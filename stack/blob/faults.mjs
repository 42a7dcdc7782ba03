// Failure injection: the knobs tests turn on `blob.state`.
//   fail             see takeFailure in http-util.mjs; kind `put`, `signed-token`, `mpu-create`, `mpu-part`,
//                    `mpu-complete` or `head` (only when named), plus the Blob error `code` to answer with. A failed PUT or
//                    part stores nothing.
//   resetAfterBytes  destroys the next PUT's (or multipart part's) connection after that many body bytes.
//   latencyMs        added before the first byte of every blob read (benchmarks).
//   partLatencyMs    added before answering every multipart part (slow uploads).
//   holdWebhooks     queue completion webhooks until `releaseWebhooks()` (webhook.mjs).
//   misbehave        `{ kind: 'put' | 'mpu-part' | 'delete' | 'head', mode: 'hang' | 'huge', sticky? }`: the next
//                    such exchange never answers (`hang`: the request is read, nothing is stored or
//                    deleted, no answer), or answers 500 with an 8 MiB error body (`huge`);
//                    `{ kind: 'read', mode: 'short', sticky? }`: the next blob read answers 200 with
//                    only the first half of the blob (a cut read, routes.mjs);
//                    `{ kind: 'head', mode: 'answer', answer, sticky? }`: the next head answers 200 with
//                    `answer` as its JSON, whatever blob was asked for (a store answering for another).

export const initialState = () => ({
  fail: null,
  resetAfterBytes: null,
  latencyMs: 0,
  partLatencyMs: 0,
  holdWebhooks: false,
  misbehave: null,
})

/** Carry out `state.misbehave` for this exchange; true when it took the answer over. */
export function misbehaving(state, kind, res) {
  const m = state.misbehave
  if (!m || m.kind !== kind) return false
  if (!m.sticky) state.misbehave = null
  if (m.mode === 'answer') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(m.answer))
  }
  if (m.mode === 'huge') {
    const message = 'x'.repeat(8 << 20)
    res.writeHead(500, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code: 'unknown_error', message } }))
  }
  return true
}
