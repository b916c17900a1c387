// Node's openid-client (v6) with DPoP (RFC 9449) against Harbour ID: its own proofs, its own handling of
// use_dpop_nonce. Driven by tests/e2e/test_dpop.py.
//
//   node dpop.mjs start  ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
//     -> {"url", "code_verifier", "state", "nonce"}
//   node dpop.mjs finish ISSUER CLIENT_ID CLIENT_SECRET CALLBACK_URL CODE_VERIFIER STATE NONCE
//     -> {"token_type", "access_token", "userinfo", "refreshed_token_type", "other_key_refresh"}
//   node dpop.mjs agency ISSUER CLIENT_ID CLIENT_SECRET
//     -> {"token_type", "access_token", "templates_status", "templates"}
//
// Each phase prints one JSON line on stdout; on any error it prints the error on stderr and exits 1.
import * as client from 'openid-client';

function discover(issuer, clientId, clientSecret) {
  // As in login.mjs: client_secret_basic, ES256 ID tokens, plain http on 127.0.0.1, ID token signatures checked.
  return client.discovery(
    new URL(issuer),
    clientId,
    { client_secret: clientSecret, id_token_signed_response_alg: 'ES256' },
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  );
}

async function start([issuer, clientId, clientSecret, redirectUri]) {
  const config = await discover(issuer, clientId, clientSecret);
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid offline_access', state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  return { url: url.href, code_verifier: codeVerifier, state, nonce };
}

async function finish([issuer, clientId, clientSecret, callbackUrl, codeVerifier, state, nonce]) {
  const config = await discover(issuer, clientId, clientSecret);
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  }, undefined, { DPoP });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
  // Another key cannot refresh the token: invalid_grant.
  let otherKeyRefresh = 'accepted';
  try {
    const other = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
    await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: other });
  } catch (error) {
    otherKeyRefresh = error.error ?? error.cause?.error ?? String(error);
  }
  const renewed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  return {
    token_type: tokens.token_type, access_token: tokens.access_token, userinfo,
    refreshed_token_type: renewed.token_type, other_key_refresh: otherKeyRefresh,
  };
}

async function agency([issuer, clientId, clientSecret]) {
  const config = await discover(issuer, clientId, clientSecret);
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const tokens = await client.clientCredentialsGrant(config, { scope: 'notify' }, { DPoP });
  const response = await client.fetchProtectedResource(config, tokens.access_token, new URL(`${issuer}/v1/templates`), 'GET',
    undefined, undefined, { DPoP });
  return { token_type: tokens.token_type, access_token: tokens.access_token, templates_status: response.status,
           templates: await response.json() };
}

const [phase, ...args] = process.argv.slice(2);
try {
  const phases = { start, finish, agency };
  if (!Object.hasOwn(phases, phase ?? '')) throw new TypeError('usage: node dpop.mjs start|finish|agency ...');
  process.stdout.write(JSON.stringify(await phases[phase](args)) + '\n');
} catch (error) {
  process.stderr.write(`dpop.mjs ${phase ?? ''} failed: ${error?.stack ?? error} ${JSON.stringify({ error: error?.error, cause: String(error?.cause) })}\n`);
  process.exit(1);
}
