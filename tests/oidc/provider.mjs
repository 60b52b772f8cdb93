// A real OpenID Connect provider (panva's oidc-provider) on loopback, for the tests only.
//
// Configured from the environment:
//   OIDC_PORT          port to listen on (127.0.0.1 only)
//   OIDC_ISSUER        issuer identifier, default http://127.0.0.1:$OIDC_PORT
//   OIDC_CLIENTS       JSON array of client metadata (client_id, client_secret, redirect_uris, ...)
//   OIDC_API_AUDIENCE  audience of the JWT access tokens, default complaints-api
//   OIDC_API_RESOURCE  resource indicator (RFC 8707) that stands for the API; must be an
//                      absolute URI, default the audience itself when it is one, else
//                      urn:<audience>. It is the default resource of every authorisation,
//                      so clients need not send `resource`.
//   OIDC_WATCH_STDIN   "1": exit when stdin closes (the test process that started us died)
//
// Sign-in is the provider's built-in development interactions (devInteractions): any login
// name with any password is accepted and becomes the account's `sub`. Keys (RSA signing key,
// cookie keys) are made at start; nothing secret is on disk. Prints `READY <issuer>` on
// stdout once listening, and exits cleanly on SIGTERM or SIGINT.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import process from 'node:process';

import Provider, { errors } from 'oidc-provider';

// The dev interactions and the in-memory adapter are exactly what the tests want; the
// provider's start-up warnings about them are noise.
const warn = console.warn.bind(console);
const EXPECTED_WARNINGS = ['devInteractions', 'in-memory adapter'];
console.warn = (...args) => {
  if (EXPECTED_WARNINGS.some((w) => String(args[0]).includes(w))) return;
  warn(...args);
};

function fail(message) {
  console.error(`oidc provider: ${message}`);
  process.exit(2);
}

const port = Number.parseInt(process.env.OIDC_PORT ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('OIDC_PORT must be a port number');
const issuer = process.env.OIDC_ISSUER || `http://127.0.0.1:${port}`;
const audience = process.env.OIDC_API_AUDIENCE || 'complaints-api';
const resource = process.env.OIDC_API_RESOURCE
  || (URL.canParse(audience) ? audience : `urn:${audience}`);
if (!URL.canParse(resource)) fail('OIDC_API_RESOURCE must be an absolute URI');

let clients;
try {
  clients = JSON.parse(process.env.OIDC_CLIENTS || '[]');
} catch (err) {
  fail(`OIDC_CLIENTS is not JSON: ${err.message}`);
}
if (!Array.isArray(clients)) fail('OIDC_CLIENTS must be a JSON array');

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig',
};

const STAFF_DOMAIN = 'staff.example.test';
const ttl = (seconds) => () => seconds;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: `${id}@${STAFF_DOMAIN}`, email_verified: true, name: id,
        };
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Claims of the granted scopes go into the ID token too, not only to userinfo.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { required: () => true, methods: ['S256'] },
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: 'openid profile email',
          audience,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // Who signed in, also in the API's access token (the API cannot use userinfo with it).
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    return { email: `${token.accountId}@${STAFF_DOMAIN}`, name: token.accountId };
  },
  ttl: {
    AccessToken: ttl(3600),
    AuthorizationCode: ttl(60),
    IdToken: ttl(3600),
    RefreshToken: ttl(24 * 3600),
    Interaction: ttl(3600),
    Session: ttl(24 * 3600),
    Grant: ttl(24 * 3600),
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>oidc error</title><pre>${
      Object.entries(out).map(([k, v]) => `${k}: ${String(v).replace(/[<>&]/g, '')}`).join('\n')
    }</pre>`;
  },
});

provider.on('server_error', (_ctx, err) => console.error('oidc provider server_error:', err));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${port}: ${err.code || err.message}`));

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.OIDC_WATCH_STDIN === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
