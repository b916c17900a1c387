// The platform's API, through the gateway at this origin. Every call for the citizen carries a device token (obtained
// with a device-signed assertion, kept in memory only) as `Authorization: DPoP` with a fresh proof by the device key.
// `aud` and `htu` are always the ISSUER's URLs (the issuer may be another host name than this page's origin).
// The app is unlocked with its passkey: each device token request carries a passkey assertion (user verification)
// whose challenge is the SHA-256 of the device-signed assertion. Until the citizen is verified the app is locked.

import {dpopProof, now, randomId, sha256, signJws, utf8} from "./crypto.js";
import * as store from "./store.js";
import {assertPasskey} from "./webauthn.js";

const TOKEN_MARGIN_S = 60;

export class ApiError extends Error {
  constructor(status, problem, retryAfterS = null) {
    super(`${status} ${(problem && (problem.title || problem.detail)) || ""}`);
    this.status = status;
    this.problem = problem || {};
    this.retryAfterS = retryAfterS; // the answer's Retry-After in seconds, when it sent one
  }

  // The problem's slug: ".../problems/invalid-activation" → "invalid-activation".
  get slug() {
    const type = this.problem.type || "";
    return type.slice(type.lastIndexOf("/") + 1) || this.problem.error || "";
  }
}

// The network is not there (offline, or the gateway unreachable).
export class Offline extends Error {}

// The device is revoked (or the account no longer active): the app can do nothing more.
export class DeviceRevoked extends Error {}

// The citizen was not verified by the passkey (cancelled, the fingerprint failed, refused by the platform): the app
// can do nothing until it is unlocked (`unlock()`); nothing is wiped. `cause`: the error.
export class Locked extends DeviceRevoked {
  constructor(cause) {
    super("locked");
    this.cause = cause;
  }
}

let config = null;
let device = null; // {keys, deviceId, accountId, credentialId, name}
let token = null; // {value, until (ms)}
let unlocking = null; // the token request in flight (one passkey check for every call waiting on it)
let locked = null; // the Locked error while the app is locked

export async function loadConfig() {
  if (config) return config;
  let answer;
  try {
    answer = await fetch("/app/config.json", {headers: {Accept: "application/json"}});
  } catch {
    throw new Offline("config");
  }
  if (answer.ok) {
    config = await answer.json();
  } else {
    // Without the app's config the issuer's discovery document names the issuer; the RP ID is then this host.
    const discovery = await fetch("/.well-known/openid-configuration").then((r) => r.json());
    config = {issuer: discovery.issuer, rp_id: location.hostname, origin: location.origin, languages: ["en", "zh-HK", "zh-CN"]};
  }
  config.issuer = config.issuer.replace(/\/+$/, "");
  return config;
}

export function issuer() {
  return config.issuer;
}

export async function loadDevice() {
  const [keys, deviceId, accountId, credentialId, name] = await Promise.all(
    ["keys", "device_id", "account_id", "credential_id", "device_name"].map((k) => store.get(k)));
  device = keys && deviceId ? {keys, deviceId, accountId, credentialId, name} : null;
  return device;
}

export function currentDevice() {
  return device;
}

export function forget() {
  device = null;
  token = null;
  locked = null;
}

export function isLocked() {
  return Boolean(locked);
}

// The citizen asks to unlock (the locked screen's button): the passkey is asked for again.
export async function unlock() {
  locked = null;
  await deviceToken();
}

async function send(method, path, {json, headers = {}} = {}) {
  const init = {method, headers: {Accept: "application/json", ...headers}, cache: "no-store"};
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  let answer;
  try {
    answer = await fetch(path, init);
  } catch {
    network(false);
    throw new Offline(path);
  }
  network(true);
  return answer;
}

// Whether the platform answered the last call: the page shows "Offline" while it does not.
function network(reachable) {
  document.dispatchEvent(new CustomEvent("harbour:network", {detail: reachable}));
}

async function read(answer) {
  if (answer.status === 204) return null;
  const text = await answer.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = {detail: text.slice(0, 200)};
  }
  if (!answer.ok) {
    const retryAfter = Number.parseFloat(answer.headers.get("Retry-After"));
    throw new ApiError(answer.status, body && typeof body === "object" ? body : {detail: String(body)},
      Number.isFinite(retryAfter) ? Math.min(Math.max(retryAfter, 0), 60) : null);
  }
  if (answer.headers.get("X-Harbour-Cached")) Object.defineProperty(body, "cachedAt", {value: answer.headers.get("X-Harbour-Cached")});
  return body;
}

// A call without credentials (binding: challenges, the device itself).
export async function publicCall(method, path, json) {
  return read(await send(method, path, {json}));
}

// A device token with at least `leftMs` to live. A passkey device's request is unlocked by the citizen (one passkey
// check shared by the calls waiting); while the app is locked, nothing is asked until unlock().
export async function deviceToken(leftMs = 0) {
  if (token && Date.now() + leftMs < token.until) return token.value;
  if (locked) throw locked;
  if (!unlocking) unlocking = newToken().finally(() => { unlocking = null; });
  return unlocking;
}

async function newToken() {
  if (!device) throw new DeviceRevoked("no device");
  const iat = now();
  const assertion = await signJws(device.keys.privateKey, {kid: device.deviceId, typ: "JWT"}, {
    iss: device.deviceId, sub: device.accountId, aud: `${config.issuer}/v1/devices/token`,
    iat, exp: iat + 60, jti: randomId(16),
  });
  const body = {assertion};
  if (device.credentialId) {
    try {
      body.passkey = await assertPasskey({challenge: await sha256(utf8.encode(assertion)), rpId: config.rp_id,
        credentialId: device.credentialId});
    } catch (error) {
      locked = new Locked(error);
      throw locked;
    }
  }
  const started = Date.now();
  try {
    const answer = await publicCall("POST", "/v1/devices/token", body);
    token = {value: answer.access_token, until: started + ((answer.expires_in || 0) - TOKEN_MARGIN_S) * 1000};
    return token.value;
  } catch (error) {
    // The device revoked: it can do nothing more. The account not active (suspended, revoked, closed): nothing now.
    if (error instanceof ApiError && [401, 403].includes(error.status) && ["device-inactive", "account-inactive"].includes(error.slug)) {
      throw new DeviceRevoked(error.slug);
    }
    // The passkey's check refused by the platform (no user verification, a count that did not grow): locked.
    if (error instanceof ApiError && ["user-verification-required", "cloned-authenticator"].includes(error.slug)) {
      locked = new Locked(error);
      throw locked;
    }
    throw error;
  }
}

export async function deviceHeaders(method, path) {
  const value = await deviceToken();
  return {Authorization: `DPoP ${value}`, DPoP: await dpopProof(device.keys, method, config.issuer + path, value)};
}

// A call for the citizen. A token refused (401) is dropped and the call made once more with a fresh one (whose
// request says whether the device may still act). Offline, a GET is answered by the service worker from the last
// answer it kept (`cachedAt` set on the result), if any.
export async function call(method, path, json) {
  let headers;
  try {
    headers = await deviceHeaders(method, path);
  } catch (error) {
    if (error instanceof Offline && method === "GET") return cached(path);
    throw error;
  }
  let answer = await send(method, path, {json, headers}).catch((error) => {
    if (error instanceof Offline && method === "GET") return null;
    throw error;
  });
  if (answer === null) return cached(path);
  if (answer.status === 401) {
    token = null;
    answer = await send(method, path, {json, headers: await deviceHeaders(method, path)});
  }
  return read(answer);
}

async function cached(path) {
  let answer;
  try {
    answer = await fetch(path, {headers: {"X-Harbour-Offline": "1"}});
  } catch {
    throw new Offline(path);
  }
  network(false);
  if (!answer.ok) throw new Offline(path);
  return read(answer);
}

// A stream of server-sent events read through fetch (EventSource cannot send the DPoP headers): the approvals stream
// (`/v1/approvals/stream`) or the inbox's (`/v1/inbox/stream`). Calls `onEvent(event data)` for each event; resolves
// when the stream ends (token expired, closed), rejects on a refusal; `onOpen()` once it is open.
export async function eventStream(path, onEvent, signal, onOpen = () => {}) {
  const headers = {...(await deviceHeaders("GET", path)), Accept: "text/event-stream"};
  const answer = await fetch(path, {headers, signal, cache: "no-store"});
  if (!answer.ok || !answer.body) {
    await read(answer);
    throw new ApiError(answer.status, {});
  }
  onOpen();  // what happened before the stream opened is not on it: the caller looks once
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (line.startsWith("data:")) {
        data.push(line.slice(5).trim());
      } else if (line === "" && data.length) {
        try {
          onEvent(JSON.parse(data.join("\n")));
        } catch {
          // a malformed event is skipped
        }
        data = [];
      }
    }
  }
}
