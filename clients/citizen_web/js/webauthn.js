// The passkey (WebAuthn, user verification required): made at binding, asked for to unlock the app (each device
// token) and at every approval. The responses are sent as the JSON py_webauthn's parse_*_credential_json reads
// (base64url strings). One ceremony at a time: a browser refuses a second while one is pending.

import {b64url, b64urlDecode, utf8} from "./crypto.js";

export function available() {
  return Boolean(window.PublicKeyCredential && navigator.credentials);
}

// At binding: the challenge is the UTF-8 bytes of the server's nonce (the same nonce the device key's proof signs).
export async function createPasskey({nonce, rpId, deviceName}) {
  const credential = await navigator.credentials.create({
    publicKey: {
      challenge: utf8.encode(nonce),
      rp: {id: rpId, name: "Harbour ID"},
      user: {id: crypto.getRandomValues(new Uint8Array(16)), name: deviceName, displayName: deviceName},
      pubKeyCredParams: [{type: "public-key", alg: -7}],
      authenticatorSelection: {userVerification: "required", residentKey: "discouraged"},
      attestation: "none",
      timeout: 120000,
    },
  });
  const json = credentialJson(credential, ["clientDataJSON", "attestationObject"]);
  if (typeof credential.response.getTransports === "function") json.response.transports = credential.response.getTransports();
  return {json, credentialId: b64url(credential.rawId)};
}

// A PublicKeyCredential as the JSON auth reads (the shape PublicKeyCredential.toJSON() gives, which not every
// browser has yet): the id, the response's binary `fields` in base64url, the extension results, the attachment.
function credentialJson(credential, fields) {
  const response = {};
  for (const field of fields) response[field] = b64url(credential.response[field]);
  const json = {
    id: credential.id,
    rawId: b64url(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
  if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
  return json;
}

let ceremonies = Promise.resolve();

function oneAtATime(ceremony) {
  const run = ceremonies.then(ceremony, ceremony);
  ceremonies = run.catch(() => {});
  return run;
}

// At an approval: the challenge is the prompt's digest (its bytes), so the assertion is over exactly this prompt. To
// unlock the app: `challenge` (bytes) is the SHA-256 of the device token's assertion, so it unlocks that one request.
export function assertPasskey({digest, challenge, rpId, credentialId}) {
  return oneAtATime(() => assertion({challenge: challenge || b64urlDecode(digest), rpId, credentialId}));
}

async function assertion({challenge, rpId, credentialId}) {
  const credential = await navigator.credentials.get({
    publicKey: {
      challenge,
      rpId,
      allowCredentials: [{type: "public-key", id: b64urlDecode(credentialId)}],
      userVerification: "required",
      timeout: 120000,
    },
  });
  const json = credentialJson(credential, ["clientDataJSON", "authenticatorData", "signature"]);
  const userHandle = credential.response.userHandle;
  if (userHandle && userHandle.byteLength) json.response.userHandle = b64url(userHandle);
  return json;
}
