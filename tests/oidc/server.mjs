// A small OpenID Connect authorization server for scopegate's end-to-end tests.
//
//   node server.mjs [PORT]        (or PORT=... node server.mjs; 0 or nothing = any free port)
//
// Prints exactly one line, `READY <issuer>`, on stdout once it is listening.
// Exits on SIGTERM/SIGINT, and also when its stdin pipe closes, so a test
// process that dies without cleaning up does not leave it running.
//
// See README.md for the request sequence a client has to replay.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { fstatSync } from 'node:fs';

import Provider from 'oidc-provider';

const API = 'https://api.exampleco.com/timesheets';
const API_SCOPES = ['read:timesheets', 'create:timesheets', 'delete:timesheets', 'approve:timesheets'];
const OIDC_SCOPES = ['openid', 'offline_access'];

// `jwt` (default): access tokens the gateway verifies itself; `opaque`: reference tokens
// it must introspect (ACCESS_TOKEN_FORMAT=opaque).
const ACCESS_TOKEN_FORMAT = process.env.ACCESS_TOKEN_FORMAT ?? 'jwt';
if (!['jwt', 'opaque'].includes(ACCESS_TOKEN_FORMAT)) {
  console.error(`invalid ACCESS_TOKEN_FORMAT: ${ACCESS_TOKEN_FORMAT}`);
  process.exit(2);
}

// The gateway, a resource server: it only introspects (RFC 7662).
const GATEWAY_CLIENT = { id: 'scopegate', secret: 'scopegate-introspection-secret' };

// Which API scopes each role may be granted, whatever the client asks for.
const ROLE_SCOPES = {
  Employee: ['read:timesheets', 'create:timesheets', 'delete:timesheets'],
  Manager: API_SCOPES,
};

// Test users. The user name is the account id, and so the tokens' `sub`.
const USERS = {
  alice: { password: 'alice-pw', role: 'Employee' },
  bob: { password: 'bob-pw', role: 'Manager' },
};

const portArg = process.argv[2] ?? process.env.PORT ?? '0';
const port = Number(portArg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid port: ${portArg}`);
  process.exit(2);
}

// Signing key made fresh at every start, so no key material lives in the repo.
// Clients must fetch it from the JWKS endpoint of the running server.
function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

function configuration() {
  return {
    clients: [{
      client_id: 'timesheets-mobile',
      // A native (mobile) public client: 'native' is what allows the
      // private-use URI scheme redirect below; 'none' means no client secret.
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['com.exampleco.timesheets://callback'],
    }, {
      client_id: GATEWAY_CLIENT.id,
      client_secret: GATEWAY_CLIENT.secret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    }],
    responseTypes: ['code'],
    // oidc-provider only supports S256; this makes PKCE mandatory for every
    // client, not only for public ones (which is already the default).
    pkce: { required: () => true },
    // `scopes` is for the provider's own (OpenID) scopes only. The timesheets
    // scopes belong to the API and are declared by getResourceServerInfo below;
    // listed here, they would have to be granted twice (as OpenID scopes too).
    scopes: OIDC_SCOPES,
    jwks: { keys: [signingKey()] },
    // Random cookie signing keys; plain http on 127.0.0.1 works because the
    // cookies are only marked Secure when the request itself is https.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false }, // replaced by the routes below
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // An authorization request without `resource` is for the timesheets API ...
        defaultResource: () => API,
        getResourceServerInfo: () => ({
          scope: API_SCOPES.join(' '),
          audience: API,
          accessTokenFormat: ACCESS_TOKEN_FORMAT,
          ...(ACCESS_TOKEN_FORMAT === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
        }),
        // ... and so is a token request without `resource`: it gets a JWT
        // access token for the API rather than an opaque userinfo token.
        useGrantedResource: () => true,
      },
    },
    // The roles claim an Auth0 rule adds for the Authorization Extension, namespaced as
    // there: the policy's approval routes read it.
    async extraTokenClaims(_ctx, token) {
      const user = token.accountId && USERS[token.accountId];
      return user ? { 'https://api.exampleco.com/roles': [user.role] } : undefined;
    },
    async findAccount(_ctx, id) {
      if (!Object.hasOwn(USERS, id)) return undefined;
      return { accountId: id, claims: () => ({ sub: id }) };
    },
    // Surface provider errors as plain text: the only consumers are tests.
    async renderError(ctx, out) {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('\n');
    },
  };
}

// Records the user's consent: the requested OpenID scopes, plus the requested
// API scopes that the user's role permits. Requested API scopes the role does
// not permit are explicitly rejected, so the provider does not ask again and
// leaves them out of the access token.
async function consent(provider, details, accountId) {
  const { grantId, params } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });

  const requested = String(params.scope ?? '').split(' ').filter(Boolean);
  const resource = typeof params.resource === 'string' ? params.resource : API;
  const allowed = new Set(ROLE_SCOPES[USERS[accountId].role]);

  const oidc = requested.filter((s) => OIDC_SCOPES.includes(s));
  const api = requested.filter((s) => API_SCOPES.includes(s));
  const granted = api.filter((s) => allowed.has(s));
  const refused = api.filter((s) => !allowed.has(s));

  if (oidc.length) grant.addOIDCScope(oidc.join(' '));
  if (granted.length) grant.addResourceScope(resource, granted.join(' '));
  if (refused.length) grant.rejectResourceScope(resource, refused.join(' '));

  return grant.save();
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, status, error) {
  const body = `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
${error ? `<p class="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
  <label>User name <input name="login" autocomplete="username" autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"></label>
  <button type="submit">Sign in</button>
</form>
</body></html>
`;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16 * 1024) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

// The interaction routes that replace oidc-provider's development ones:
//   GET  /interaction/<uid>        login form, or (consent prompt) grants and redirects
//   POST /interaction/<uid>/login  checks the password, logs in and consents at once
async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  // The cookie names the interaction; the URL must agree with it.
  if (details.uid !== uid) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('interaction mismatch\n');
    return;
  }
  const { prompt } = details;

  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') {
      loginPage(res, uid, 200);
      return;
    }
    // Consent for an already logged-in user (e.g. prompt=consent, or a second
    // authorization with the same session): granted without a page.
    const accountId = details.session.accountId;
    const grantId = await consent(provider, details, accountId);
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const user = Object.hasOwn(USERS, login) ? USERS[login] : undefined;
    if (!user || user.password !== form.get('password')) {
      loginPage(res, uid, 401, 'Invalid user name or password.');
      return;
    }
    // Consent is given in the same step, so the client only makes one POST.
    const grantId = await consent(provider, details, login);
    await provider.interactionFinished(req, res, {
      login: { accountId: login },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    return;
  }

  res.writeHead(405, { 'content-type': 'text/plain' }).end('method not allowed\n');
}

const server = createServer();
server.on('error', (err) => {
  console.error(`cannot listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  const callback = provider.callback();

  server.on('request', (req, res) => {
    const match = /^\/interaction\/([\w-]+)(?:\/(\w+))?\/?$/.exec(req.url.split('?')[0]);
    if (!match) {
      callback(req, res);
      return;
    }
    interaction(provider, req, res, match[1], match[2]).catch((err) => {
      // SessionNotFound etc.: missing/expired interaction cookie.
      if (!res.headersSent) {
        res.writeHead(err.statusCode ?? 500, { 'content-type': 'text/plain' });
      }
      res.end(`${err.error ?? 'server_error'}: ${err.error_description ?? err.message}\n`);
    });
  });

  process.stdout.write(`READY ${issuer}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  // Never hang on shutdown.
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

// Exit when the parent closes our stdin (or dies). Only when stdin is a pipe
// or socket: a terminal, a file or /dev/null says nothing about the parent.
const stdin = fstatSync(0);
if (stdin.isFIFO() || stdin.isSocket()) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
