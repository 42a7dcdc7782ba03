// A Vercel Blob-compatible store on 127.0.0.1: the API `@vercel/blob` speaks
// (docs/protocols.md §B, docs/client-uploads.md, docs/presigned-uploads.md) and the blob URLs
// themselves, on disk under `root`.
//   PUT  {api}/?pathname=P      store the raw body (x-vercel-blob-access, x-content-type,
//                               x-add-random-suffix, x-allow-overwrite); an aborted body stores nothing
//   POST {api}/mpu?pathname=P   multipart: x-mpu-action create | upload | complete
//   GET  {api}?url=U            head          GET {api}?prefix=&limit=   list
//   POST {api}/delete           {"urls": [...]}
//   POST {api}/signed-token     {pathname?, operations?, validUntil?, maximumSizeInBytes?,
//                               allowedContentTypes?} → {delegationToken, clientSigningToken, validUntil}
//   GET  /<pathname>            the blob, with Range/conditional semantics (`send`); private blobs
//                               need `Authorization: Bearer <token>`, as on Vercel
// where {api} = <url>/api/blob (set VERCEL_BLOB_API_URL to it). Every call accepts the read-write
// token, or a Vercel OIDC token the store issued (`oidcToken()`: an RS256 JWT) sent with
// `x-vercel-blob-store-id: <storeId>`, as `@vercel/blob` sends it with OIDC + BLOB_STORE_ID; an
// expired token or another store id is refused `403 forbidden`. Uploads also accept
// a client token (`vercel_blob_client_…`, as `handleUpload` mints it), whose constraints are
// enforced as the service does, or no credential but a presigned query (`vercel-blob-delegation`,
// `vercel-blob-signature` and the signed `vercel-blob-*` limits, as `presign()` makes it) on
// `PUT /` and on every `/mpu` step; a signed token is refused to a client token
// (`client_token_not_allowed`). An upload that lands sends the `blob.upload-completed` webhook
// to its callbackUrl: HMAC-signed with the read-write token for a client token, Ed25519-signed for a
// presigned upload (`webhookPublicKey`, SPKI PEM, is what `BLOB_WEBHOOK_PUBLIC_KEY` holds). The
// API answers CORS, for browsers.
//
// One file per concern under blob/: store.mjs (files and metadata on disk), routes.mjs (the API
// and blob URLs), put.mjs and multipart.mjs (the two upload paths), tokens.mjs (client tokens and
// their constraints; who may call at all), presigned.mjs (signed tokens and presigned requests),
// oidc.mjs (the OIDC tokens), webhook.mjs (the completion webhook), faults.mjs (failure injection,
// `state`), reply.mjs (error shape, CORS). This file wires them and is what the tests import.
import { listen } from './http-util.mjs'
import { initialState } from './blob/faults.mjs'
import { blobRoutes } from './blob/routes.mjs'
import { openStore } from './blob/store.mjs'
import { oidcIssuer } from './blob/oidc.mjs'
import { presignAuthority } from './blob/presigned.mjs'
import { tokenChecks } from './blob/tokens.mjs'
import { webhookSender } from './blob/webhook.mjs'

export const LOCAL_BLOB_TOKEN = 'vercel_blob_rw_localstore_sessionaudiodevtoken000000'

export async function startBlob({ root, port = 0, token = LOCAL_BLOB_TOKEN } = {}) {
  const store = openStore(root)
  const calls = { put: 0, delete: 0, head: 0, list: 0, read: 0 } // `mpu` appears with the first multipart call
  const puts = [] // { pathname, stored: boolean, bytes, headers, kind } of every PUT
  const state = initialState() // failure injection and latency: see blob/faults.mjs
  const webhooks = webhookSender({ token, state })
  const oidc = oidcIssuer()
  const auth = [] // { op, kind, storeId } of every call let through on a store-wide credential or presigned
  const signedTokens = [] // { body, kind, storeId, scope } of every signed token issued
  const multipart = [] // one entry per multipart upload: see blob/multipart.mjs
  const presign = presignAuthority(token.split('_')[3])
  const tokens = tokenChecks(token, oidc, auth, presign)
  const routes = blobRoutes({ store, calls, puts, state, tokens, webhooks, presign, signedTokens, log: multipart })
  const peer = await listen(routes, port)
  store.base = peer.url

  return {
    url: peer.url,
    apiUrl: `${peer.url}/api/blob`,
    host: `127.0.0.1:${peer.port}`,
    port: peer.port,
    token,
    /** The store's id, as API calls name it (`x-vercel-blob-store-id`) and its read-write token holds it. */
    storeId: tokens.storeId,
    /** `BLOB_STORE_ID` as Vercel sets it (`vercel env pull` writes the `store_` prefix). */
    blobStoreIdEnv: `store_${tokens.storeId}`,
    /** A Vercel OIDC token this store accepts: `{ expiresInSec = 12 h, claims }` (negative: expired). */
    oidcToken: (options) => oidc.issue(options),
    /**
     * `{ op, kind: 'read-write' | 'oidc' | 'presigned', storeId }` of every call let through on a
     * store-wide credential or a presigned query (`op`: put, mpu, head, list, delete, read, signed-token).
     */
    auth,
    calls,
    /** `{ pathname, stored, bytes, headers, kind: 'read-write' | 'oidc' | 'client-token' | 'presigned' | null }` of every PUT. */
    puts,
    /**
     * `{ body, kind: 'read-write' | 'oidc', storeId, scope }` of every signed token issued: the request's
     * JSON body, the credential it came with, and the delegation's scope (defaults filled in).
     */
    signedTokens,
    /**
     * One entry per multipart upload: `{ uploadId, pathname, key, kind, createdAt, partCalls,
     * parts: [{ partNumber, size, etag, kind, startedAt, receivedAt }], completedAt, stored,
     * refusals }` (blob/multipart.mjs): which parts arrived, how big, and when.
     */
    multipart,
    /** The Ed25519 public key presigned uploads' webhooks are signed with: SPKI PEM, for `BLOB_WEBHOOK_PUBLIC_KEY`. */
    webhookPublicKey: webhooks.publicKeyPem,
    /** `{ url, body, signature, signedWith: 'hmac' | 'ed25519', status }` of every completion webhook sent. */
    webhooks: webhooks.sent,
    state,
    /** Send the webhooks held while `state.holdWebhooks` was on. */
    releaseWebhooks: webhooks.release,
    meta: store.meta,
    /** Pathnames currently stored. */
    list: store.list,
    read: store.read,
    get connections() {
      return peer.connections
    },
    close: () => peer.close(),
  }
}
