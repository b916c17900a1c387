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
  const response = credential.response;
  const json = {
    id: credential.id,
    rawId: b64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: b64url(response.clientDataJSON),
      attestationObject: b64url(response.attestationObject),
    },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
  if (typeof response.getTransports === "function") json.response.transports = response.getTransports();
  if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
  return {json, credentialId: b64url(credential.rawId)};
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
  const response = credential.response;
  const json = {
    id: credential.id,
    rawId: b64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: b64url(response.clientDataJSON),
      authenticatorData: b64url(response.authenticatorData),
      signature: b64url(response.signature),
    },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
  if (response.userHandle && response.userHandle.byteLength) json.response.userHandle = b64url(response.userHandle);
  if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
  return json;
}
