// How the Blob API answers: its error shape, and the CORS headers browsers need for client uploads.
import { json } from '../http-util.mjs'

/** `{error: {code, message}}`, as the Blob API refuses. */
export const apiError = (res, status, code, message, headers) =>
  json(res, status, { error: { code, message } }, headers)

/** On every `/api/blob` answer: browsers upload straight to the store with a client token. */
export const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, PUT, POST, DELETE, OPTIONS',
  'access-control-max-age': '600',
}

/** The refusal for a body over a token's `maximumSizeInBytes`, in the service's words. */
export const tooLarge = (max) => `File size exceeds the limit: the file length cannot be greater than ${max} bytes`
