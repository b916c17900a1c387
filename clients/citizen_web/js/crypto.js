// The device key and what it signs: WebCrypto ECDSA P-256, the private key never extractable.
// A WebCrypto ECDSA signature is IEEE P1363 (r || s), exactly the JWS ES256 signature (RFC 7518 §3.4).

export const utf8 = new TextEncoder();

export function b64url(data) {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function b64urlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const raw = atob(padded);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export function randomId(bytes = 16) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Canonical JSON as libs/approvals canonical_json makes it (Python json.dumps sort_keys, compact, ensure_ascii=False):
// keys sorted by code point, no spaces, strings escaped as JSON.stringify does (the same escapes for the text allowed).
export function canonicalJson(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isInteger(value)) throw new Error("non-integer numbers are not canonical here");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort(byCodePoint);
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalJson(value[k])).join(",") + "}";
}

function byCodePoint(a, b) {
  const x = Array.from(a), y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

// "2026-12-02T08:20:41.5+00:00" → "2026-12-02T08:20:41Z" (pydantic's JSON form of the UTC instant, whole seconds).
export function utcSeconds(text) {
  const when = new Date(text);
  if (Number.isNaN(when.getTime())) throw new Error("not a time");
  return new Date(Math.floor(when.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

// The prompt's digest as libs.approvals.ApprovalRequest.digest computes it: SHA-256 over the canonical JSON of the
// request with the model's fields (defaults filled in), base64url.
export async function approvalDigest(request) {
  const requester = request.requester || {};
  const content = {
    approval_id: request.approval_id,
    account_id: request.account_id,
    action: request.action,
    requester: {service: requester.service, client_id: requester.client_id, client_name: requester.client_name},
    purpose: request.purpose,
    details: request.details || {},
    matching_code: request.matching_code ?? null,
    expires_at: utcSeconds(request.expires_at),
  };
  return b64url(await sha256(utf8.encode(canonicalJson(content))));
}

export async function newDeviceKey() {
  // extractable: false — the private key can sign, never leave the browser; the public key is always exportable.
  return crypto.subtle.generateKey({name: "ECDSA", namedCurve: "P-256"}, false, ["sign"]);
}

export async function publicJwk(keyPair) {
  const jwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
  return {kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y};
}

function part(object) {
  return b64url(utf8.encode(JSON.stringify(object)));
}

export async function signJws(privateKey, header, claims) {
  const input = part({alg: "ES256", ...header}) + "." + part(claims);
  const signature = await crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, privateKey, utf8.encode(input));
  return input + "." + b64url(signature);
}

export function now() {
  return Math.floor(Date.now() / 1000);
}

// RFC 9449 proof for one call: htu = the issuer's URL of the path (query dropped), ath = the token's hash.
export async function dpopProof(keyPair, method, url, accessToken) {
  const claims = {jti: randomId(16), htm: method, htu: url.split("?")[0].split("#")[0], iat: now()};
  if (accessToken) claims.ath = b64url(await sha256(utf8.encode(accessToken)));
  return signJws(keyPair.privateKey, {typ: "dpop+jwt", jwk: await publicJwk(keyPair)}, claims);
}
