// `PUT {api}/?pathname=P`: one upload in one body, streamed to a scratch file and moved into place
// only once the whole body arrived (an aborted body stores nothing). Headers as `put()` sends them:
// x-vercel-blob-access, x-content-type, x-add-random-suffix, x-allow-overwrite,
// x-cache-control-max-age.
import crypto from 'node:crypto'
import fs from 'node:fs'
import { json, retryAfter, takeFailure } from '../http-util.mjs'
import { misbehaving } from './faults.mjs'
import { apiError, tooLarge } from './reply.mjs'
import { finalPathname, mayOverwrite } from './tokens.mjs'

/** Pathnames the service refuses (and ones that would reach outside the store or its API). */
const invalidPathname = (pathname) =>
  !pathname ||
  pathname.length > 950 ||
  pathname.includes('//') ||
  pathname.startsWith('api/') ||
  pathname.startsWith('.')

/** Until `out` drains or closes; both listeners go (one per wait would pile up on a long upload). */
const drained = (out) =>
  new Promise((resolve) => {
    const done = () => {
      out.off('drain', done)
      out.off('close', done)
      resolve()
    }
    out.once('drain', done)
    out.once('close', done)
  })

export function putHandler({ store, calls, puts, state, tokens, webhooks }) {
  return async function put(req, res, url) {
    calls.put++
    const record = {
      pathname: url.searchParams.get('pathname'),
      stored: false,
      bytes: 0,
      headers: req.headers,
      kind: null,
    }
    puts.push(record)
    const who = tokens.uploader(req, res, url, record.pathname)
    if (!who) return
    record.kind = who.kind
    const max = who.constraints?.maximumSizeInBytes ?? Infinity
    let pathname = record.pathname
    if (invalidPathname(pathname)) return apiError(res, 400, 'bad_request', 'Invalid pathname')
    const access = req.headers['x-vercel-blob-access']
    if (access !== 'public' && access !== 'private')
      return apiError(res, 400, 'bad_request', 'access must be "public" or "private"')
    const injected = takeFailure(state, 'put')
    if (injected) {
      return apiError(res, injected.status, injected.code ?? 'unknown_error', 'injected failure', {
        connection: 'close',
        ...retryAfter(injected),
      })
    }
    pathname = finalPathname(req, pathname, who.constraints)
    if (store.meta.has(pathname) && !mayOverwrite(req, who.constraints)) {
      return apiError(
        res,
        400,
        'bad_request',
        'This blob already exists, use `allowOverwrite: true` if you want to overwrite it.',
      )
    }
    const tmp = store.tmpFile()
    const out = fs.createWriteStream(tmp)
    out.on('error', () => {}) // destroyed on purpose when the upload fails
    const hash = crypto.createHash('md5')
    const resetAt = state.resetAfterBytes
    state.resetAfterBytes = null
    let failed = false
    const fail = () => {
      if (failed) return
      failed = true
      out.destroy()
      fs.rm(tmp, { force: true }, () => {})
    }
    req.on('aborted', fail)
    req.on('error', fail)
    req.on('close', () => {
      if (!req.complete) fail()
    })
    try {
      for await (const chunk of req) {
        if (failed) break
        record.bytes += chunk.length
        if (record.bytes > max) {
          fail()
          return apiError(res, 400, 'bad_request', tooLarge(max), { connection: 'close' })
        }
        hash.update(chunk)
        if (!out.write(chunk)) await drained(out)
        if (resetAt !== null && record.bytes >= resetAt) {
          fail()
          req.socket.destroy()
          return
        }
      }
    } catch {
      // The uploader went away mid-body ("aborted"): nothing is stored.
      return fail()
    }
    if (failed || !req.complete) return fail()
    if (misbehaving(state, 'put', res)) return fail()
    await new Promise((r) => out.end(r))
    const etag = `"${hash.digest('hex')}"`
    const stored = store.commit(req, tmp, pathname, access, record.bytes, etag, who.constraints?.cacheControlMaxAge)
    record.stored = true
    record.pathname = pathname
    json(res, 200, stored)
    webhooks.send(who.constraints, stored)
  }
}
