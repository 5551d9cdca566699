// A real OAuth client library (oauth4webapi 3, the base of openid-client 6) against the
// scopegate demo's authorization server and a real scopegate gateway: everything it learns,
// it learns from the API's URL. Run by tests/it/interop.rs, which starts both and passes:
//   API          the gateway's URL (also its RFC 9728 resource identifier)
//   CLIENT_ID    the mobile app's client id (a public client, PKCE)
//   REDIRECT_URI its registered redirect URI
//   OTP          the demo's one-time code for an MFA sign-in
// Each step prints one line `STEP <name> ok`; any failure throws (exit code 1).

import * as oauth from 'oauth4webapi'

const api = new URL(process.env.API)
const client = { client_id: process.env.CLIENT_ID }
const redirectUri = process.env.REDIRECT_URI
const insecure = { [oauth.allowInsecureRequests]: true } // loopback http only
const wellKnown = '/.well-known/oauth-protected-resource'

function step(name) {
  console.log(`STEP ${name} ok`)
}

function check(condition, what) {
  if (!condition) throw new Error(`failed: ${what}`)
}

/** The challenges of a refused call, parsed by the library. */
async function challengesOf(method, path, token, options = {}) {
  try {
    const response = await oauth.protectedResourceRequest(
      token, method, new URL(path, api), new Headers(), null, { ...insecure, ...options })
    return { response }
  } catch (err) {
    if (err instanceof oauth.WWWAuthenticateChallengeError) return { challenges: err.cause, response: err.response }
    throw err
  }
}

// 1. Discovery from the API's URL (RFC 9728 §5.1): a refused call names the metadata.
const refused = await challengesOf('PUT', '/approvals/7', 'not-a-token')
const bearer = refused.challenges.find((c) => c.scheme === 'bearer')
const metadataUrl = new URL(bearer.parameters.resource_metadata)
// Strict (RFC 9728 §3.3 as published): the identifier the location was built from is
// what the document must name, exactly; the URL called must lie under it.
const identifier = new URL(metadataUrl.href.replace(wellKnown, ''))
const rs = await oauth.processResourceDiscoveryResponse(
  identifier, await oauth.resourceDiscoveryRequest(identifier, insecure))
check(new URL('/approvals/7', api).href.startsWith(identifier.href.replace(/\/$/, '')), 'the URL called lies under the resource')
step('strict-resource-discovery')
// Prefix (the MCP SDKs): same origin, the document's resource a path prefix of the URL
// called; and it is the one resource (and audience) for every route.
const followed = await (await fetch(metadataUrl)).json()
const resource = new URL(followed.resource)
const called = new URL('/approvals/7', api)
check(resource.origin === called.origin && called.pathname.startsWith(resource.pathname), 'prefix rule')
check(followed.resource === rs.resource, 'one resource on every route')
// The document the challenge named passes the strict check against its identifier too.
await oauth.processResourceDiscoveryResponse(identifier, await fetch(metadataUrl))
step('prefix-resource-discovery')
check(rs.dpop_signing_alg_values_supported.includes('Ed25519'), 'Ed25519 advertised')

// 2. The authorization server, from the metadata (OpenID Connect Discovery).
const issuer = new URL(rs.authorization_servers[0])
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure))
check(as.code_challenge_methods_supported.includes('S256'), 'S256')
step('authorization-server-discovery')

// 3. Authorization Code + PKCE, the login form filled in as the user would.
async function signIn(user, scope, { acr, dpop, opaque } = {}) {
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    username: user,
    password: user,
  })
  if (acr) {
    params.set('acr_values', acr)
    params.set('otp', process.env.OTP)
  }
  const login = await fetch(as.authorization_endpoint, { method: 'POST', body: params, redirect: 'manual' })
  check(login.status === 303, `the login answers 303, not ${login.status}`)
  const callback = oauth.validateAuthResponse(as, client, new URL(login.headers.get('location')), state)
  const extra = opaque ? { additionalParameters: { token_format: 'opaque' } } : {}
  const exchange = () => oauth.authorizationCodeGrantRequest(
    as, client, oauth.None(), callback, redirectUri, verifier, { ...insecure, ...extra, DPoP: dpop })
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, await exchange())
  return tokens
}

// 4. DPoP with an Ed25519 key: oauth4webapi signs its proofs `alg: Ed25519` (RFC 9864).
const keyPair = await oauth.generateKeyPair('Ed25519')
const dpop = oauth.DPoP(client, keyPair)
const alice = await signIn('alice', 'read:timesheets', { dpop })
check(alice.token_type.toLowerCase() === 'dpop', 'a DPoP-bound token')
step('pkce-sign-in')
// The gateway wants a server nonce (RFC 9449 §8): the first call is refused with one, the
// library keeps it, and the retry carries it.
let nonceRetries = 0
async function withNonceRetry(call) {
  try {
    return await call()
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err
    nonceRetries += 1
    return await call()
  }
}
const listed = await withNonceRetry(() => oauth.protectedResourceRequest(
  alice.access_token, 'GET', new URL('/timesheets', api), new Headers(), null, { ...insecure, DPoP: dpop }))
check(listed.status === 200, `GET /timesheets with a DPoP proof: ${listed.status}`)
check(nonceRetries === 1, 'one nonce retry')
step('dpop-nonce-retry')
step('ed25519-proof')

// 5. Step-up (RFC 9470): the challenge says what sign-in the route wants.
const bob = await signIn('bob', 'read:timesheets approve:timesheets')
const stepUp = await challengesOf('PUT', '/approvals/7', bob.access_token)
const asked = stepUp.challenges.find((c) => c.scheme === 'bearer').parameters
check(asked.error === 'insufficient_user_authentication', `step-up asked: ${JSON.stringify(asked)}`)
check(asked.acr_values === 'mfa' && asked.max_age === '900', 'acr_values and max_age')
const stronger = await signIn('bob', 'read:timesheets approve:timesheets', { acr: asked.acr_values })
const approved = await challengesOf('PUT', '/approvals/7', stronger.access_token)
check(approved.response.status === 200, `approved after the step-up: ${approved.response.status}`)
step('step-up')

// 6. Revocation (RFC 7009) of an opaque token: the gateway asks the server about it on a
// route with `introspect: always`, so the revocation bites on the next call.
const opaque = await signIn('alice', 'read:timesheets', { opaque: true })
check(opaque.access_token.split('.').length !== 3, 'an opaque token')
const before = await challengesOf('GET', '/timesheets/7', opaque.access_token)
check(before.response.status === 200, `the opaque token passes: ${before.response.status}`)
await oauth.processRevocationResponse(
  await oauth.revocationRequest(as, client, oauth.None(), opaque.access_token, insecure))
const after = await challengesOf('GET', '/timesheets/7', opaque.access_token)
check(after.response.status === 401, `refused once revoked: ${after.response.status}`)
check(after.challenges.find((c) => c.scheme === 'bearer').parameters.error === 'invalid_token', 'invalid_token')
step('revocation')
