// Node's openid-client (v6) logging in against Harbour ID, in two phases so a test can put the
// citizen's approval on the phone in between. Driven by tests/e2e/test_oidc_node.py.
//
//   node login.mjs start  ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
//     -> {"url", "code_verifier", "state", "nonce"}
//   node login.mjs finish ISSUER CLIENT_ID CLIENT_SECRET CALLBACK_URL CODE_VERIFIER STATE NONCE
//     -> {"sub", "id_token_claims", "userinfo", "refreshed"}
//
// Each phase prints one JSON line on stdout; on any error it prints the error on stderr and exits 1.
import * as client from 'openid-client';

const SCOPE = 'openid offline_access';

function usage() {
  throw new TypeError(
    'usage: node login.mjs start ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI\n' +
      '       node login.mjs finish ISSUER CLIENT_ID CLIENT_SECRET CALLBACK_URL CODE_VERIFIER STATE NONCE',
  );
}

// Discovery from ISSUER/.well-known/openid-configuration.
// - The client was registered with the provider's default, client_secret_basic, so that is how it
//   authenticates (openid-client's own default for a bare secret is client_secret_post, which the
//   provider rightly refuses for a client registered for basic).
// - ID tokens are expected signed with ES256, the provider's only algorithm.
// - The issuer is plain http on 127.0.0.1 in the tests, which openid-client v6 refuses unless told.
// - openid-client does not check the signature of an ID token from the token endpoint by default
//   (OIDC Core 3.1.3.7 lets TLS stand in for it). Over plain http nothing stands in, so the JWS
//   signature is checked against the provider's jwks_uri too (enableNonRepudiationChecks).
function discover(issuer, clientId, clientSecret) {
  return client.discovery(
    new URL(issuer),
    clientId,
    { client_secret: clientSecret, id_token_signed_response_alg: 'ES256' },
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  );
}

async function start([issuer, clientId, clientSecret, redirectUri, ...rest]) {
  if (!redirectUri || rest.length) usage();
  const config = await discover(issuer, clientId, clientSecret);
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: SCOPE,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  return { url: url.href, code_verifier: codeVerifier, state, nonce };
}

async function finish([issuer, clientId, clientSecret, callbackUrl, codeVerifier, state, nonce, ...rest]) {
  if (!nonce || rest.length) usage();
  const config = await discover(issuer, clientId, clientSecret);
  // Checks the callback (state, RFC 9207 iss), redeems the code with the PKCE verifier, and
  // validates the ID token: ES256 signature against the JWKS, iss, aud/azp, exp/iat, nonce.
  const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  if (!claims) throw new Error('no ID token claims after the authorization code grant');
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);

  let refreshed = false;
  if (tokens.refresh_token) {
    const renewed = await client.refreshTokenGrant(config, tokens.refresh_token);
    // OIDC Core 12.2: an ID token from a refresh names the same subject for the same client.
    const again = renewed.claims();
    if (again && (again.sub !== claims.sub || again.iss !== claims.iss || JSON.stringify(again.aud) !== JSON.stringify(claims.aud))) {
      throw new Error(`the refreshed ID token differs in sub/iss/aud: ${JSON.stringify(again)}`);
    }
    refreshed = typeof renewed.access_token === 'string' && renewed.access_token.length > 0;
  }
  return { sub: claims.sub, id_token_claims: claims, userinfo, refreshed };
}

function describe(error) {
  const seen = new Set();
  const plain = (e) => {
    if (!(e instanceof Error) || seen.has(e)) return e;
    seen.add(e);
    const out = { name: e.name, message: e.message };
    for (const key of ['code', 'error', 'error_description', 'status']) {
      if (e[key] !== undefined) out[key] = e[key];
    }
    if (e.cause !== undefined) out.cause = plain(e.cause);
    return out;
  };
  return plain(error);
}

const [phase, ...args] = process.argv.slice(2);
try {
  const phases = { start, finish };
  if (!Object.hasOwn(phases, phase ?? '')) usage();
  const result = await phases[phase](args);
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (error) {
  let text;
  try {
    text = JSON.stringify(describe(error), (_key, value) => (value instanceof Response ? `[Response ${value.status}]` : value));
  } catch {
    text = String(error);
  }
  process.stderr.write(`login.mjs ${phase ?? ''} failed: ${text}\n`);
  if (error instanceof Error && error.stack) process.stderr.write(error.stack + '\n');
  process.exit(1);
}
