// Vercel OIDC tokens, as the platform hands them to a deployment's functions (the
// `x-vercel-oidc-token` header, or `VERCEL_OIDC_TOKEN` from `vercel env pull`): RS256 JWTs from
// `https://oidc.vercel.com/<team>` with `aud`, `sub` (`owner:<team>:project:<project>:environment:<env>`),
// `owner_id`, `project_id`, `environment`, `iat`, `nbf` and `exp`. The store issues them with a key of
// its own and accepts only those, unexpired: what Blob does with the real issuer's.
import crypto from 'node:crypto'

export function oidcIssuer({
  team = 'session-audio-local',
  project = 'session-audio',
  environment = 'development',
} = {}) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const issuer = `https://oidc.vercel.com/${team}`

  /** A token valid for `expiresInSec` (negative: already expired); `claims` override the defaults. */
  function issue({ expiresInSec = 12 * 3600, claims = {} } = {}) {
    const now = Math.floor(Date.now() / 1000)
    const header = { alg: 'RS256', typ: 'JWT', kid: 'session-audio-local' }
    const payload = {
      iss: issuer,
      aud: `https://vercel.com/${team}`,
      sub: `owner:${team}:project:${project}:environment:${environment}`,
      owner_id: `team_${team}`,
      project_id: `prj_${project}`,
      environment,
      iat: now,
      nbf: now,
      exp: now + expiresInSec,
      ...claims,
    }
    const input = `${b64(header)}.${b64(payload)}`
    return `${input}.${crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`
  }

  /** Why `jwt` is refused, or null when it is one of ours and unexpired. */
  function refusal(jwt) {
    const [header, payload, signature, extra] = String(jwt).split('.')
    if (!header || !payload || !signature || extra !== undefined) return 'Invalid OIDC token'
    const signed = crypto.verify(
      'sha256',
      Buffer.from(`${header}.${payload}`),
      publicKey,
      Buffer.from(signature, 'base64url'),
    )
    if (!signed) return 'Invalid OIDC token'
    let claims
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    } catch {
      return 'Invalid OIDC token'
    }
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return 'The OIDC token has expired'
    return null
  }

  return { issue, refusal }
}
