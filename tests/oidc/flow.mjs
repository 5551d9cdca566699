// Self-check client: runs the authorization code + PKCE flow against a running
// server.mjs exactly as README.md describes it, with plain HTTP requests,
// manual redirects and a small cookie jar, then verifies and prints the access
// token.
//
//   node flow.mjs <issuer> <user> <password> [scope]
//
// Exit status: 0 token obtained, 3 login refused, 1 anything else.

import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';

const CLIENT_ID = 'timesheets-mobile';
const REDIRECT_URI = 'com.exampleco.timesheets://callback';
const DEFAULT_SCOPE = 'openid read:timesheets create:timesheets delete:timesheets approve:timesheets';

const [issuer, user, password, scope = DEFAULT_SCOPE] = process.argv.slice(2);
if (!issuer || !user || password === undefined) {
  console.error('usage: node flow.mjs <issuer> <user> <password> [scope]');
  process.exit(1);
}

// Cookies by name and path; sent on requests whose path is under the cookie's.
// Enough for one host on plain http.
const jar = new Map();

function storeCookies(res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = '/';
    let expired = value === '';
    for (const attr of attrs) {
      const [k, v = ''] = attr.split('=');
      switch (k.toLowerCase()) {
        case 'path': path = v; break;
        case 'expires': expired ||= Date.parse(v) <= Date.now(); break;
        case 'max-age': expired ||= Number(v) <= 0; break;
        default: break;
      }
    }
    const key = `${name};${path}`;
    if (expired) jar.delete(key);
    else jar.set(key, { name, value, path });
  }
}

function cookieHeader(url) {
  const { pathname } = new URL(url);
  return [...jar.values()]
    .filter(({ path }) => pathname === path || pathname.startsWith(path.endsWith('/') ? path : `${path}/`))
    .map(({ name, value }) => `${name}=${value}`)
    .join('; ');
}

async function request(method, url, form) {
  const headers = {};
  const cookie = cookieHeader(url);
  if (cookie) headers.cookie = cookie;
  let body;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const res = await fetch(url, { method, headers, body, redirect: 'manual' });
  storeCookies(res);
  const text = await res.text();
  const location = res.headers.get('location');
  console.error(`${method} ${url} -> ${res.status}${location ? ` ${location}` : ''}`);
  return { status: res.status, location: location && new URL(location, url).href, text };
}

function expect(cond, message) {
  if (!cond) {
    console.error(`FAIL: ${message}`);
    process.exit(1);
  }
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const verifier = b64url(randomBytes(32)); // 43 characters, the minimum allowed
const challenge = b64url(createHash('sha256').update(verifier).digest());
const state = b64url(randomBytes(16));

const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
expect(discovery.issuer === issuer, `discovery issuer ${discovery.issuer}`);

// 1. Authorization request: redirected to the interaction (login) page.
const authorize = new URL(discovery.authorization_endpoint);
authorize.search = new URLSearchParams({
  client_id: CLIENT_ID,
  response_type: 'code',
  redirect_uri: REDIRECT_URI,
  scope,
  state,
  code_challenge: challenge,
  code_challenge_method: 'S256',
  // oidc-provider drops offline_access (no refresh token) unless consent is prompted for.
  ...(scope.split(' ').includes('offline_access') ? { prompt: 'consent' } : {}),
}).toString();
let res = await request('GET', authorize.href);
expect(res.status === 303 && res.location, 'authorization request should redirect');

// 2. The login page; its form action is where the credentials go.
const loginPage = res.location;
res = await request('GET', loginPage);
expect(res.status === 200, 'login page should load');
const action = /<form[^>]*action="([^"]+)"/.exec(res.text)?.[1];
expect(action, 'login page should have a form');

// 3. Log in (consent is granted in the same step).
res = await request('POST', new URL(action, loginPage).href, { login: user, password });
if (res.status !== 303) {
  console.log(JSON.stringify({
    refused: true,
    status: res.status,
    message: /class="error">([^<]*)/.exec(res.text)?.[1],
    session: [...jar.values()].some(({ name }) => name === '_session'),
  }));
  process.exit(3);
}

// 4. Follow redirects back through /auth/<uid> until the redirect_uri.
for (let hops = 0; !res.location.startsWith(REDIRECT_URI); hops += 1) {
  expect(hops < 5 && res.status === 303, `unexpected response ${res.status}: ${res.text}`);
  res = await request('GET', res.location);
  expect(res.location, `expected a redirect, got ${res.status}: ${res.text}`);
}
const callback = new URL(res.location).searchParams;
expect(!callback.has('error'), `authorization error: ${callback.get('error')}: ${callback.get('error_description')}`);
expect(callback.get('state') === state, 'state must round-trip');
expect(callback.get('iss') === issuer, 'iss authorization response parameter');
const code = callback.get('code');
expect(code, 'callback should carry a code');

// 5. Token request.
res = await request('POST', discovery.token_endpoint, {
  grant_type: 'authorization_code',
  code,
  redirect_uri: REDIRECT_URI,
  client_id: CLIENT_ID,
  code_verifier: verifier,
});
expect(res.status === 200, `token request failed: ${res.text}`);
const tokens = JSON.parse(res.text);

// Verify the access token's RS256 signature with the published JWKS.
const [h, p, sig] = tokens.access_token.split('.');
const header = JSON.parse(Buffer.from(h, 'base64url'));
const payload = JSON.parse(Buffer.from(p, 'base64url'));
const { keys } = await (await fetch(discovery.jwks_uri)).json();
const jwk = keys.find((k) => k.kid === header.kid);
expect(jwk, `no JWKS key with kid ${header.kid}`);
expect(header.alg === 'RS256', 'alg');
expect(verify('sha256', Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(sig, 'base64url')), 'signature');

// With offline_access there is a refresh token: it must yield a new access
// token for the same API without a `resource` parameter.
let refreshed;
if (tokens.refresh_token) {
  res = await request('POST', discovery.token_endpoint, {
    grant_type: 'refresh_token',
    refresh_token: tokens.refresh_token,
    client_id: CLIENT_ID,
  });
  expect(res.status === 200, `refresh failed: ${res.text}`);
  const { aud, scope: refreshedScope, sub } = JSON.parse(Buffer.from(JSON.parse(res.text).access_token.split('.')[1], 'base64url'));
  refreshed = { aud, scope: refreshedScope, sub };
}

console.log(JSON.stringify({
  header,
  payload,
  token_type: tokens.token_type,
  scope: tokens.scope,
  refresh_token: Boolean(tokens.refresh_token),
  id_token: Boolean(tokens.id_token),
  refreshed,
}, null, 2));
