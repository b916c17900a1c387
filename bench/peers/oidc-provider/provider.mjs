// node-oidc-provider (pinned in package.json) as the benches' peer: one process, NODE_ENV=production.
//
//   node provider.mjs --port PORT [--mongo 'mongodb://127.0.0.1:P/oidc_peer?retryWrites=false']
//
// Started and stopped (by PID) by bench/peers/oidc_provider.py; prints "listening <issuer>" when ready.
//
// Clients (fixed, so benches need no registration step):
// - bench-cc / bench-cc-secret: client_credentials, client_secret_basic, scope "api"; its access tokens are
//   JWTs signed ES256 for the resource urn:harbour-bench:api (as Harbour ID's are ES256 JWTs), not stored.
// - bench-code / bench-code-secret: authorization code + PKCE S256 (required), client_secret_basic, redirect
//   http://127.0.0.1:8765/callback, scope "openid". Logins complete with no UI: the interaction URL
//   (/interaction/<uid>) finishes the login prompt at once for the account named by login_hint (else
//   "bench-citizen"), and loadExistingGrant grants a first-party client what it asked (the documented way to
//   skip consent), so GET /auth → /interaction/<uid> → /auth/<uid> → redirect_uri?code=… then POST /token.
//   Follow the redirects with a cookie jar that keeps cookies for 127.0.0.1.
//
// Storage: oidc-provider's in-memory adapter by default; with --mongo, the adapter below (the shape of
// oidc-provider's example MongoDB adapter: one collection per model, documents {_id, payload, expiresAt},
// a TTL index on expiresAt) through the official `mongodb` driver.
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    mongo: { type: 'string' },
  },
});
if (!args.port) {
  console.error('usage: node provider.mjs --port PORT [--mongo URI]');
  process.exit(2);
}
const issuer = `http://${args.host}:${args.port}`;
const API = 'urn:harbour-bench:api';
const REDIRECT = 'http://127.0.0.1:8765/callback';

const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });

// -- MongoDB adapter -------------------------------------------------------------------------------------------

let adapter;
let mongoClient;
if (args.mongo) {
  const { MongoClient } = await import('mongodb');
  mongoClient = new MongoClient(args.mongo);
  await mongoClient.connect();
  const db = mongoClient.db();
  const grantable = new Set(['access_token', 'authorization_code', 'refresh_token', 'device_code', 'backchannel_authentication_request']);
  const prepared = new Map();
  const snake = (name) => name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();

  // Indexes are made once per collection, before its first use (as the example does at construction).
  async function collection(name) {
    if (!prepared.has(name)) {
      prepared.set(name, db.collection(name).createIndexes([
        ...(grantable.has(name) ? [{ key: { 'payload.grantId': 1 } }] : []),
        ...(name === 'device_code' ? [{ key: { 'payload.userCode': 1 }, unique: true }] : []),
        ...(name === 'session' ? [{ key: { 'payload.uid': 1 }, unique: true }] : []),
        { key: { expiresAt: 1 }, expireAfterSeconds: 0 },
      ]));
    }
    await prepared.get(name);
    return db.collection(name);
  }

  adapter = class MongoAdapter {
    constructor(name) {
      this.name = snake(name);
    }

    async upsert(_id, payload, expiresIn) {
      const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : undefined;
      await (await collection(this.name)).updateOne(
        { _id },
        { $set: { payload, ...(expiresAt ? { expiresAt } : undefined) } },
        { upsert: true },
      );
    }

    async find(_id) {
      const found = await (await collection(this.name)).findOne({ _id }, { projection: { payload: 1 } });
      return found?.payload;
    }

    async findByUserCode(userCode) {
      const found = await (await collection(this.name)).findOne({ 'payload.userCode': userCode }, { projection: { payload: 1 } });
      return found?.payload;
    }

    async findByUid(uid) {
      const found = await (await collection(this.name)).findOne({ 'payload.uid': uid }, { projection: { payload: 1 } });
      return found?.payload;
    }

    async destroy(_id) {
      await (await collection(this.name)).deleteOne({ _id });
    }

    async revokeByGrantId(grantId) {
      await (await collection(this.name)).deleteMany({ 'payload.grantId': grantId });
    }

    async consume(_id) {
      await (await collection(this.name)).findOneAndUpdate(
        { _id },
        { $set: { 'payload.consumed': Math.floor(Date.now() / 1000) } },
      );
    }
  };
}

// -- the provider ----------------------------------------------------------------------------------------------

const configuration = {
  ...(adapter ? { adapter } : {}),
  clients: [
    {
      client_id: 'bench-cc',
      client_secret: 'bench-cc-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'api',
    },
    {
      client_id: 'bench-code',
      client_secret: 'bench-code-secret',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid',
    },
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
  jwks: { keys: [{ ...signingKey, kid: 'bench-es256', use: 'sig', alg: 'ES256' }] },
  cookies: { keys: ['harbour-bench-peer-cookie-key-0001'] },
  pkce: { required: () => true },
  scopes: ['openid', 'api'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Only the client_credentials client gets API tokens (JWT); the code flow's access token is oidc-provider's
      // default opaque token for userinfo.
      defaultResource: (ctx, client) => (client?.grantTypeAllowed('client_credentials') ? API : undefined),
      useGrantedResource: () => false,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator !== API) throw new Error('unknown resource');
        return { scope: 'api', audience: API, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
      },
    },
  },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  // The interaction URL is this process's own: it finishes the login at once (see the middleware below).
  interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
  // A first-party client: grant what it asked, no consent prompt (oidc-provider's documented recipe).
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid');
    await grant.save();
    return grant;
  },
};

const provider = new Provider(issuer, configuration);

// The scripted login: GET /interaction/<uid> completes the login prompt for login_hint's account.
provider.use(async (ctx, next) => {
  const match = ctx.method === 'GET' && /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.prompt.name !== 'login') {
    ctx.status = 400;
    ctx.body = { error: `unexpected prompt ${details.prompt.name}` };
    return undefined;
  }
  const accountId = details.params.login_hint || 'bench-citizen';
  const to = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId } }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(to);
  return undefined;
});

const server = provider.listen(Number(args.port), args.host, () => {
  console.log(`listening ${issuer} (${adapter ? 'MongoDB adapter' : 'in-memory adapter'}, node ${process.version}, NODE_ENV=${process.env.NODE_ENV})`);
});

function stop() {
  server.close();
  server.closeAllConnections?.();
  Promise.resolve(mongoClient?.close()).finally(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
