// Runs oidc-provider (OpenID Certified) as a real authorization server for the interop tests.
//
//   node launcher.mjs CONFIG.json [--port N]        (or env OIDC_PROVIDER_PORT; 0 picks a free port)
//
// Binds 127.0.0.1 only. The issuer is http://127.0.0.1:<port>. Once it serves requests it prints
// one line on stdout:
//
//   OIDC_PROVIDER_READY {"issuer": "...", "port": N, "admin_token": "...", "kids": [...]}
//
// Everything else (oidc-provider's own notices and warnings included) goes to stderr.
//
// CONFIG.json (every key optional):
//   clients             oidc-provider client metadata, passed through as is (client_id, client_secret,
//                       redirect_uris, post_logout_redirect_uris, grant_types, response_types,
//                       token_endpoint_auth_method, scope, ...)
//   features            switches merged over the harness defaults: name -> true | false | {options}
//   scopes              extra scopes the server knows besides openid, offline_access, profile, email;
//                       without resource indicators these are what client_credentials tokens can carry
//   resource_servers    {"<resource URI>": {"scope": "a b", "audience"?, "accessTokenFormat"?:
//                       "opaque"|"jwt", "accessTokenTTL"?}} for RFC 8707 resource indicators
//   default_resource    resource URI used when a request names none (default: none)
//   ttl                 {"AccessToken": s, "ClientCredentials": s, "IdToken": s, "RefreshToken": s,
//                       "AuthorizationCode": s, "Session": s, "Grant": s, "Interaction": s,
//                       "DeviceCode": s (device_code / user_code lifetime, default 600)}
//   issue_refresh_token "offline_access" (default: only when the grant has offline_access, which
//                       oidc-provider keeps only with prompt=consent) or "always" (whenever the client
//                       may use the refresh_token grant)
//   rotate_refresh_token  true (default): every refresh returns a new refresh token and the old one
//                       becomes single-use-spent (reuse revokes the whole grant)
//   pkce_required       true (default): PKCE with S256 for every client
//   accounts            {"<sub>": {claims...}} extra/override claims per user (defaults derive from sub)
//   signing_algs        key types to generate, by algorithm: ["RS256"] (default); "ES256", "EdDSA" also
//   http_post_methods   true: also accept POST at the authorization and end-session endpoints (off by
//                       default: oidc-provider then needs SameSite=None cookies, which it sets)
//   admin_token         secret for the admin endpoints (default: random, printed in the ready line)
//
// Options for the features beyond the code flow (oidc-provider 9 has DPoP and PAR on by default,
// private_key_jwt / client_secret_jwt are always accepted for clients registered with them):
//   dpop                {"require_nonce": true | [route, ...], "allow_replay": false}: DPoP with server
//                       nonces (features.dPoP.nonceSecret, random per launcher). Without this option
//                       DPoP still works, but without nonces. require_nonce true makes every DPoP
//                       proof need a nonce; a list limits that to the named oidc-provider routes
//                       ("token", "userinfo", "pushed_authorization_request", "introspection",
//                       "revocation", ...). A proof without the (current) nonce is answered
//                       use_dpop_nonce with a DPoP-Nonce header: 400 at the token and PAR endpoints,
//                       401 + WWW-Authenticate: DPoP error="use_dpop_nonce" at userinfo. With a
//                       nonce secret every DPoP answer also carries a fresh DPoP-Nonce header.
//   par                 {"required": true, "allow_unregistered_redirect_uris": false}: pushed
//                       authorization requests (on by default) required of every client
//                       (per client: metadata require_pushed_authorization_requests: true)
//   device_flow         true | {"interval": s, "slow_down": true, "slow_down_increment": 5}: switches
//                       features.deviceFlow on (clients need the grant type
//                       urn:ietf:params:oauth:grant-type:device_code). oidc-provider itself sends no
//                       `interval` and never answers slow_down; with "interval" the harness adds it
//                       to the device authorization response, and with "slow_down" the harness
//                       answers a poll of the same device_code sooner than the interval after the
//                       previous one with 400 {"error": "slow_down"} and raises that code's interval
//                       by slow_down_increment seconds (RFC 8628 §3.5). These two are emulated by the
//                       harness, in front of oidc-provider's token endpoint.
//   fetch_loopback      true: let oidc-provider fetch client URLs (jwks_uri) on 127.0.0.1 / localhost.
//                       By default its SSRF protection drops connections to special-use addresses,
//                       loopback included ("client JSON Web Key Set failed to be refreshed").
//                       http:// jwks_uri are accepted either way (only https-only metadata such as
//                       sector_identifier_uri is checked for the scheme).
//
// Errors the provider shows the user agent (a bad redirect_uri, an unknown client) are rendered as
// JSON ({"error", "error_description"}) rather than HTML, so that tests can read them.
//
// Admin endpoints (POST, "Authorization: Bearer <admin_token>", JSON body, on the same server):
//   /_harness/rotate-keys   {"keep_previous": true} -> new signing keys first in the JWKS; the previous
//                           generation stays published (for verification) unless keep_previous is false
//   /_harness/clients       {client metadata} -> adds or replaces (by client_id) a client
// Each builds a fresh Provider over the same storage and cookie keys and swaps it in, so sessions,
// grants and tokens issued before survive (oidc-provider reads its configuration, keys included,
// only at construction).

// oidc-provider prints notices with console.info: keep stdout for the ready line alone.
console.info = console.error;
console.log = console.error;

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { promisify } from 'node:util';

const HOST = '127.0.0.1';
const ADMIN_PREFIX = '/_harness/';

function die(message) {
  console.error(`launcher: ${message}`);
  process.exit(2);
}

// -- command line ------------------------------------------------------------------------------

const argv = process.argv.slice(2);
let configPath;
let port = process.env.OIDC_PROVIDER_PORT;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port') {
    port = argv[++i];
  } else if (argv[i].startsWith('--port=')) {
    port = argv[i].slice('--port='.length);
  } else if (!configPath) {
    configPath = argv[i];
  } else {
    die(`unexpected argument ${argv[i]}`);
  }
}
if (!configPath) die('usage: node launcher.mjs CONFIG.json [--port N]');

let config;
try {
  config = JSON.parse(readFileSync(configPath, 'utf8'));
} catch (error) {
  die(`cannot read config ${configPath}: ${error.message}`);
}
port = Number(port ?? config.port ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) die(`invalid port ${port}`);

const clients = new Map();
for (const client of config.clients ?? []) {
  if (!client.client_id) die('every client needs a client_id');
  clients.set(client.client_id, client);
}
const issueRefreshTokenMode = config.issue_refresh_token ?? 'offline_access';
if (!['offline_access', 'always'].includes(issueRefreshTokenMode)) {
  die('issue_refresh_token must be "offline_access" or "always"');
}
const adminToken = config.admin_token || crypto.randomBytes(24).toString('base64url');
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];
// The same nonce secret for every swapped-in Provider, so nonces handed out before a swap stay valid.
const dpopNonceSecret = crypto.randomBytes(32);
const deviceFlow = config.device_flow === true ? {} : config.device_flow;
if (deviceFlow !== undefined && deviceFlow !== false && (typeof deviceFlow !== 'object' || deviceFlow === null)) {
  die('device_flow must be true or an object');
}

// -- storage shared by every Provider instance -------------------------------------------------
// A plain Map with expiry, implementing oidc-provider's adapter interface. Each swapped-in
// Provider gets adapters over the same maps, so nothing issued before a swap is lost. Like
// oidc-provider's own memory adapter, entries are kept EXPIRY_GRACE seconds past their expiry, so
// that oidc-provider can tell expired from unknown (an expired device_code is expired_token, not
// invalid_grant); it checks expiry itself when it reads them.

const EXPIRY_GRACE = 15; // oidc-provider's default clockTolerance, as its memory adapter uses
const store = new Map(); // "Model:id" -> {payload, expiresAt}
const sessionUids = new Map(); // uid -> session id
const userCodes = new Map(); // user code -> device code id
const grants = new Map(); // grantId -> Set of "Model:id"
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

function live(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

class SharedAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, {
      payload,
      expiresAt: typeof expiresIn === 'number' ? Date.now() + (expiresIn + EXPIRY_GRACE) * 1000 : undefined,
    });
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, id);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grants.has(payload.grantId)) grants.set(payload.grantId, new Set());
      grants.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    return live(this.key(id));
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodes.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = live(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) store.delete(key);
    grants.delete(grantId);
  }
}

// -- signing keys ------------------------------------------------------------------------------

const KEY_SPECS = {
  RS256: ['rsa', { modulusLength: 2048 }],
  PS256: ['rsa', { modulusLength: 2048 }],
  ES256: ['ec', { namedCurve: 'P-256' }],
  EdDSA: ['ed25519', {}],
};
const signingAlgs = config.signing_algs ?? ['RS256'];
for (const alg of signingAlgs) {
  if (!KEY_SPECS[alg]) die(`unsupported signing alg ${alg} (one of ${Object.keys(KEY_SPECS).join(', ')})`);
}
let generation = 0;
const generateKeyPair = promisify(crypto.generateKeyPair);

// Key generation runs on libuv's thread pool; each next generation is made ahead of time so that a
// rotation does not wait for an RSA prime search.
async function generateKeys() {
  generation += 1;
  const label = generation;
  const specs = new Map();
  for (const alg of signingAlgs) {
    const [type, options] = KEY_SPECS[alg];
    specs.set(`${type}:${JSON.stringify(options)}`, [type, options]); // RS256 and PS256 share one RSA key
  }
  return Promise.all(
    [...specs.values()].map(async ([type, options]) => {
      const { privateKey } = await generateKeyPair(type, options);
      const jwk = privateKey.export({ format: 'jwk' });
      jwk.kid = `g${label}-${type}-${crypto.randomBytes(4).toString('hex')}`;
      jwk.use = 'sig';
      return jwk;
    }),
  );
}

const firstKeys = generateKeys();
const { default: Provider, errors } = await import('oidc-provider');
let currentKeys = await firstKeys;
let previousKeys = [];
let nextKeys = generateKeys();
nextKeys.catch(() => {});

// -- the Provider ------------------------------------------------------------------------------

function defaultClaims(sub) {
  return {
    sub,
    name: `Test User ${sub}`,
    given_name: 'Test',
    family_name: `User ${sub}`,
    preferred_username: sub,
    email: `${sub}@example.test`,
    email_verified: true,
  };
}

function enabled(value) {
  if (typeof value === 'boolean') return { enabled: value };
  return { enabled: true, ...value };
}

function buildConfiguration() {
  const ttl = config.ttl ?? {};
  const resourceServers = config.resource_servers ?? {};
  const features = {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? config.default_resource ?? undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const info = resourceServers[resourceIndicator];
        if (!info) throw new errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
        return { audience: resourceIndicator, ...info };
      },
    },
  };
  if (config.dpop) {
    const requireNonce = config.dpop.require_nonce ?? false;
    features.dPoP = {
      enabled: true,
      nonceSecret: dpopNonceSecret,
      requireNonce: (ctx) => (Array.isArray(requireNonce) ? requireNonce.includes(ctx.oidc.route) : !!requireNonce),
      allowReplay: config.dpop.allow_replay ?? false,
    };
  }
  if (config.par) {
    features.pushedAuthorizationRequests = {
      enabled: true,
      requirePushedAuthorizationRequests: config.par.required ?? false,
      allowUnregisteredRedirectUris: config.par.allow_unregistered_redirect_uris ?? false,
    };
  }
  if (deviceFlow) features.deviceFlow = { enabled: true };
  for (const [name, value] of Object.entries(config.features ?? {})) {
    features[name] = { ...features[name], ...enabled(value) };
  }

  const ttlOrDefault = (name, fallback) => (ttl[name] !== undefined ? ttl[name] : fallback);

  const extra = {};
  if (config.fetch_loopback) {
    // Drop oidc-provider's SSRF-protected dispatcher (it refuses loopback addresses).
    extra.fetch = (url, { dispatcher: _dispatcher, ...options }) => globalThis.fetch(url, options);
  }

  return {
    ...extra,
    adapter: SharedAdapter,
    clients: [...clients.values()],
    jwks: { keys: [...currentKeys, ...previousKeys] },
    // POST at the authorization and end-session endpoints needs cookies a cross-site POST carries.
    enableHttpPostMethods: config.http_post_methods ?? false,
    cookies: config.http_post_methods
      ? { keys: cookieKeys, long: { sameSite: 'none' }, short: { sameSite: 'none' } }
      : { keys: cookieKeys },
    scopes: ['openid', 'offline_access', ...(config.scopes ?? [])],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ ...defaultClaims(sub), ...(config.accounts?.[sub] ?? {}), sub }),
    }),
    features,
    pkce: { required: () => config.pkce_required ?? true },
    rotateRefreshToken: config.rotate_refresh_token ?? true,
    issueRefreshToken: async (_ctx, client, code) => {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      return issueRefreshTokenMode === 'always' || code.scopes.has('offline_access');
    },
    ttl: {
      AccessToken: (_ctx, token) => ttlOrDefault('AccessToken', token.resourceServer?.accessTokenTTL ?? 3600),
      AuthorizationCode: ttlOrDefault('AuthorizationCode', 60),
      ClientCredentials: (_ctx, token) =>
        ttlOrDefault('ClientCredentials', token.resourceServer?.accessTokenTTL ?? 600),
      DeviceCode: ttlOrDefault('DeviceCode', 600),
      IdToken: ttlOrDefault('IdToken', 3600),
      RefreshToken: ttlOrDefault('RefreshToken', 14 * 24 * 3600),
      Interaction: ttlOrDefault('Interaction', 3600),
      Session: ttlOrDefault('Session', 14 * 24 * 3600),
      Grant: ttlOrDefault('Grant', 14 * 24 * 3600),
    },
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
}

let handler = null;

function describe(error) {
  return error?.error_description ? `${error.message}: ${error.error_description}` : String(error?.message ?? error);
}

// -- device flow polling interval (emulated: oidc-provider has neither `interval` nor slow_down) ---

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const devicePolls = new Map(); // device_code -> {last: ms, interval: s}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function slowDown(ctx, next) {
  if (ctx.method !== 'POST' || ctx.path !== '/token' || !ctx.is('application/x-www-form-urlencoded')) {
    return next();
  }
  // Read the body here and hand it on: oidc-provider then uses ctx.req.body (it warns once on stderr).
  const body = await readBody(ctx.req);
  ctx.req.body = body.toString('utf8');
  const params = new URLSearchParams(ctx.req.body);
  const deviceCode = params.get('device_code');
  if (params.get('grant_type') !== DEVICE_CODE_GRANT || !deviceCode) return next();
  const now = Date.now();
  const poll = devicePolls.get(deviceCode);
  if (poll && now - poll.last < poll.interval * 1000) {
    poll.last = now;
    poll.interval += deviceFlow.slow_down_increment ?? 5;
    ctx.status = 400;
    ctx.set('cache-control', 'no-store');
    ctx.body = { error: 'slow_down', error_description: `polling too fast: wait at least ${poll.interval}s` };
    return undefined;
  }
  devicePolls.set(deviceCode, { last: now, interval: poll?.interval ?? deviceFlow.interval ?? 5 });
  return next();
}

async function swapProvider() {
  const provider = new Provider(issuer, buildConfiguration());
  provider.on('server_error', (_ctx, error) => console.error('oidc-provider server_error:', error));
  if (deviceFlow?.interval !== undefined) {
    provider.on('device_authorization.success', (_ctx, body) => {
      body.interval = deviceFlow.interval;
    });
  }
  if (deviceFlow?.slow_down) provider.use(slowDown);
  // oidc-provider checks static client metadata on first use: check it now, before swapping.
  for (const clientId of clients.keys()) await provider.Client.find(clientId);
  handler = provider.callback();
}

// -- admin endpoints ---------------------------------------------------------------------------

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch (error) {
        reject(error);
      }
    });
    req.on('error', reject);
  });
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

function authorized(req) {
  const expected = Buffer.from(`Bearer ${adminToken}`);
  const given = Buffer.from(req.headers.authorization ?? '');
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

const kids = () => [...currentKeys, ...previousKeys].map((key) => key.kid);

async function admin(req, res) {
  if (!authorized(req)) return reply(res, 401, { error: 'unauthorized' });
  if (req.method !== 'POST') return reply(res, 405, { error: 'use POST' });
  let body;
  try {
    body = await readJson(req);
  } catch {
    return reply(res, 400, { error: 'body must be JSON' });
  }
  const action = req.url.slice(ADMIN_PREFIX.length).split('?')[0];
  try {
    if (action === 'rotate-keys') {
      const keys = await nextKeys;
      nextKeys = generateKeys();
      nextKeys.catch(() => {});
      previousKeys = body.keep_previous === false ? [] : currentKeys;
      currentKeys = keys;
      await swapProvider();
      return reply(res, 200, { signing_kids: currentKeys.map((key) => key.kid), kids: kids() });
    }
    if (action === 'clients') {
      if (!body.client_id) return reply(res, 400, { error: 'client_id is required' });
      const before = clients.get(body.client_id);
      clients.set(body.client_id, body);
      try {
        await swapProvider();
      } catch (error) {
        if (before) clients.set(body.client_id, before);
        else clients.delete(body.client_id);
        throw error;
      }
      return reply(res, 200, { client_id: body.client_id });
    }
  } catch (error) {
    return reply(res, 400, { error: describe(error) });
  }
  return reply(res, 404, { error: `unknown admin action ${action}` });
}

// -- server ------------------------------------------------------------------------------------

const server = http.createServer((req, res) => {
  if (req.url.startsWith(ADMIN_PREFIX)) {
    admin(req, res).catch((error) => reply(res, 500, { error: String(error) }));
  } else if (handler) {
    handler(req, res);
  } else {
    reply(res, 503, { error: 'starting' });
  }
});

let issuer;
server.on('error', (error) => die(`cannot listen on ${HOST}:${port}: ${error.message}`));
server.listen(port, HOST, async () => {
  const actualPort = server.address().port;
  issuer = `http://${HOST}:${actualPort}`;
  try {
    await swapProvider();
  } catch (error) {
    die(`invalid provider configuration: ${describe(error)}\n${error.stack ?? ''}`);
  }
  process.stdout.write(
    `OIDC_PROVIDER_READY ${JSON.stringify({ issuer, port: actualPort, admin_token: adminToken, kids: kids() })}\n`,
  );
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
