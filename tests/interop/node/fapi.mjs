// Node's openid-client (v6) as a FAPI 2.0 Security Profile client of Harbour ID: PAR, PKCE S256, private_key_jwt,
// DPoP-bound tokens, then a protected API called through the gateway with the bound token. Driven by
// tests/e2e/test_fapi.py, which generates both P-256 keys (the client's signing key, whose public JWK it registered,
// and the DPoP key, so that it can make its own proofs for the same token afterwards) and passes them as JWK JSON.
//
//   node fapi.mjs start  ISSUER CLIENT_ID CLIENT_JWK DPOP_JWK REDIRECT_URI
//     -> {"url", "code_verifier", "state", "nonce"}        (the URL carries only client_id and the PAR request_uri)
//   node fapi.mjs finish ISSUER CLIENT_ID CLIENT_JWK DPOP_JWK CALLBACK_URL CODE_VERIFIER STATE NONCE
//     -> {"token_type", "access_token", "sub", "userinfo_sub", "request_id", "created_status", "status_status", "status"}
//
// Each phase prints one JSON line on stdout; on any error it prints the error on stderr and exits 1.
import * as client from 'openid-client';

const P256 = { name: 'ECDSA', namedCurve: 'P-256' };

async function keyPair(jwkJson) {
  const { kty, crv, x, y, d } = JSON.parse(jwkJson);
  return {
    privateKey: await crypto.subtle.importKey('jwk', { kty, crv, x, y, d }, P256, false, ['sign']),
    publicKey: await crypto.subtle.importKey('jwk', { kty, crv, x, y }, P256, true, ['verify']),
  };
}

async function configure(issuer, clientId, clientJwk, dpopJwk) {
  const { kid } = JSON.parse(clientJwk);
  const signing = await keyPair(clientJwk);
  const config = await client.discovery(
    new URL(issuer),
    clientId,
    { id_token_signed_response_alg: 'ES256' },
    client.PrivateKeyJwt({ key: signing.privateKey, kid }),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  );
  return { config, DPoP: client.getDPoPHandle(config, await keyPair(dpopJwk)) };
}

async function start([issuer, clientId, clientJwk, dpopJwk, redirectUri]) {
  const { config, DPoP } = await configure(issuer, clientId, clientJwk, dpopJwk);
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  // openid-client sends its DPoP proof with the PAR request too: Harbour ID binds the code to that key (dpop_jkt,
  // RFC 9449 §10), so the token request must prove the same key.
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri, scope: 'openid sign', state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  }, { DPoP });
  return { url: url.href, code_verifier: codeVerifier, state, nonce };
}

async function finish([issuer, clientId, clientJwk, dpopJwk, callbackUrl, codeVerifier, state, nonce]) {
  const { config, DPoP } = await configure(issuer, clientId, clientJwk, dpopJwk);
  const tokens = await client.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  }, undefined, { DPoP });
  const sub = tokens.claims().sub;
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub, { DPoP });

  // The protected API through the gateway: a signing request with the citizen's login token (scope `sign`). Signing
  // answers 409 + Retry-After until it has heard of this new client and citizen (docs/api.md): asked again then.
  const requests = new URL(`${issuer}/v1/signing/requests`);
  const body = JSON.stringify({ document_name: 'fapi-interop.txt', sha256: 'ab'.repeat(32) });
  let created;
  for (let attempt = 0; ; attempt++) {
    created = await client.fetchProtectedResource(config, tokens.access_token, requests, 'POST', body,
      new Headers({ 'content-type': 'application/json' }), { DPoP });
    if (created.status !== 409 || attempt >= 40) break;
    await new Promise((resolve) => setTimeout(resolve, 1000 * Math.min(Number(created.headers.get('retry-after')) || 1, 2)));
  }
  const request = await created.json();
  if (created.status !== 201) throw new Error(`signing request: ${created.status} ${JSON.stringify(request)}`);
  const status = await client.fetchProtectedResource(config, tokens.access_token,
    new URL(`${issuer}/v1/signing/requests/${request.request_id}`), 'GET', undefined, undefined, { DPoP });
  return {
    token_type: tokens.token_type, access_token: tokens.access_token, sub, userinfo_sub: userinfo.sub,
    request_id: request.request_id, created_status: created.status, status_status: status.status,
    status: await status.json(),
  };
}

const [phase, ...args] = process.argv.slice(2);
try {
  const phases = { start, finish };
  if (!Object.hasOwn(phases, phase ?? '')) throw new TypeError('usage: node fapi.mjs start|finish ...');
  process.stdout.write(JSON.stringify(await phases[phase](args)) + '\n');
} catch (error) {
  process.stderr.write(`fapi.mjs ${phase ?? ''} failed: ${error?.stack ?? error} ${JSON.stringify({ error: error?.error, cause: String(error?.cause) })}\n`);
  process.exit(1);
}
