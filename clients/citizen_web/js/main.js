// Harbour ID, the citizen's web app: screens, routing (location.hash; /app/authorize for app links), the live
// approvals, and the calls each screen makes. docs/citizen-app.md describes the screens and their element ids.

import * as api from "./api.js";
import {ApiError, DeviceRevoked, Locked, Offline} from "./api.js";
import {approvalDigest, newDeviceKey, now, publicJwk, randomId, signJws} from "./crypto.js";
import {current, dateTime, LANGUAGES, match, pick, setLanguage, t, time, tOr, translate} from "./i18n.js";
import * as store from "./store.js";
import {assertPasskey, available as passkeysAvailable, createPasskey} from "./webauthn.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const live = document.getElementById("live");
const FORMFILL_LINK = "harbourid://formfill?request=";
const SIGN_LINK = "harbourid://sign?request=";
const LOGIN_LINK = "harbourid://authorize?";
const APP_LOGIN_PATH = "/app/authorize";

const state = {
  pending: [], // the pending prompts, as GET /v1/approvals lists them
  seen: new Set(), // approval ids already announced
  prompts: new Map(), // approval id → the prompt in hand (from a link)
  byLink: new Set(), // approval ids of logins opened by an app link (offer going back to the site)
  waiting: new Map(), // approval id → resolve, for a prompt awaited on the stream
  arrived: new Set(), // approval ids the stream has named
  stream: null, // its AbortController
  unread: 0,
  ticket: 0, // the screen being drawn (a slower, older one is dropped)
  pendingLink: null, // the query of a login link opened before the app was bound (memory only)
};

// -- small helpers ---------------------------------------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name === "on") for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    else if (name === "testid") element.dataset.testid = value;
    else if (name === "class") element.className = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function field(label, control, hint) {
  const hintElement = hint ? h("p", {class: "hint", id: `${control.id}-hint`, text: hint}) : null;
  if (hintElement) control.setAttribute("aria-describedby", hintElement.id);
  return h("div", {class: "field"}, h("label", {for: control.id, text: label}), hintElement, control);
}

function row(label, value, id) {
  return [h("dt", {text: label}), h("dd", {id, text: value})];
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// One live region for the whole app: each announcement is held for a second before the next, so a prompt and a
// message arriving together are both read, not the last alone.
const announcements = [];
let announcing = false;

async function announce(text) {
  announcements.push(text);
  if (announcing) return;
  announcing = true;
  while (announcements.length) {
    live.textContent = "";
    await sleep(50);
    live.textContent = announcements.shift();
    await sleep(1000);
  }
  announcing = false;
}

// The text of a refusal or failure, for the citizen.
function explain(error) {
  if (error instanceof Offline) return t("error.offline");
  if (error instanceof ApiError) {
    const slug = error.slug;
    if (slug === "invalid-activation" && error.problem.attempts_left !== undefined) {
      return t("error.invalid-activation", {attempts: error.problem.attempts_left});
    }
    const known = tOr(`error.${slug}`, null);
    if (known) return known;
    return t("error.api", {status: error.status, detail: error.problem.detail || error.problem.title || ""});
  }
  if (error && error.name === "NotAllowedError") return t("error.passkey-cancelled");
  if (error && error.name === "InvalidStateError") return t("error.passkey-exists");
  if (error && error.name === "SecurityError") return t("error.passkey-origin");
  return t("error.unexpected", {detail: (error && error.message) || String(error)});
}

function errorBox(error, id = "error") {
  const problems = error instanceof ApiError && Array.isArray(error.problem.errors) ? error.problem.errors : [];
  return h("div", {class: "error", id, role: "alert", testid: "error"}, h("p", {text: explain(error)}),
    problems.length ? h("ul", {}, problems.map((e) => h("li", {text: `${e.field || ""}: ${e.message || ""}`}))) : null);
}

function cachedNote(data) {
  return data && data.cachedAt ? h("p", {class: "note", id: "cached-note", testid: "cached-note", text: t("app.cached")}) : null;
}

// Draw a screen: its heading takes the focus (screen readers announce the new screen), the title names it.
function show(name, title, ...content) {
  const ticket = ++state.ticket;
  const heading = h("h1", {id: "screen-title", tabindex: "-1", text: title});
  const section = h("section", {id: `screen-${name}`, class: "screen", testid: `screen-${name}`,
    "data-screen": name, "aria-labelledby": "screen-title"}, heading, ...content);
  main.replaceChildren(section);
  main.setAttribute("aria-busy", "false");
  document.title = `${title} – ${t("app.name")}`;
  const bound = Boolean(api.currentDevice());
  nav.hidden = !bound || name === "locked";
  for (const link of nav.querySelectorAll("[data-screen-link]")) {
    if (link.dataset.screenLink === name || (name === "prompt" && link.dataset.screenLink === "approvals")
        || (name === "message" && link.dataset.screenLink === "inbox")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  heading.focus();
  section.alive = () => ticket === state.ticket;
  return section;
}

// A screen's body: "loading" until `fill` replaces it (if the screen is still the one shown).
async function load(section, fetcher, fill) {
  const body = h("div", {class: "body", "aria-busy": "true"}, h("p", {class: "loading", text: t("app.loading")}));
  section.append(body);
  try {
    const data = await fetcher();
    if (!section.alive()) return;
    body.replaceChildren(...[].concat(fill(data)).filter(Boolean));
  } catch (error) {
    if (error instanceof DeviceRevoked) return revoked(error);
    if (!section.alive()) return;
    body.replaceChildren(errorBox(error));
  } finally {
    body.setAttribute("aria-busy", "false");
  }
}

function setBadge(id, count) {
  const badge = document.getElementById(id);
  badge.hidden = !count;
  badge.textContent = count ? String(count) : "";
  badge.setAttribute("aria-label", id === "approvals-count" ? t("nav.pending", {count}) : t("nav.unread", {count}));
}

// -- routing -----------------------------------------------------------------------------------------------------

async function route() {
  const [name, ...rest] = location.hash.replace(/^#/, "").split("/");
  const arg = rest.join("/");
  if (!api.currentDevice()) {
    if (name === "pair") return pairScreen();
    return name === "revoked" ? revoked("revoked") : bindScreen();
  }
  switch (name) {
    case "prompt": return promptScreen(decodeURIComponent(arg));
    case "scan": return scanScreen();
    case "inbox": return inboxScreen();
    case "message": return messageScreen(decodeURIComponent(arg));
    case "preferences": return preferencesScreen();
    case "consents": return consentsScreen();
    case "devices": return devicesScreen();
    case "activity": return activityScreen();
    default: return approvalsScreen();
  }
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// -- binding -----------------------------------------------------------------------------------------------------

function bindScreen(notice) {
  const account = h("input", {id: "bind-account-id", name: "account", required: true, autocomplete: "username",
    autocapitalize: "none", spellcheck: "false", maxlength: "100"});
  const code = h("input", {id: "bind-activation-code", name: "code", required: true, autocomplete: "one-time-code",
    autocapitalize: "characters", spellcheck: "false", maxlength: "40"});
  const name = h("input", {id: "bind-device-name", name: "device-name", required: true, maxlength: "60", value: t("bind.default_name")});
  const progress = h("p", {id: "bind-progress", class: "note", role: "status"});
  const failure = h("div", {id: "bind-error", testid: "bind-error"});
  const submit = h("button", {id: "bind-submit", type: "submit", class: "primary", text: t("bind.submit")});
  const form = h("form", {id: "bind-form", novalidate: true},
    field(t("bind.account"), account, t("bind.account_hint")),
    field(t("bind.code"), code, t("bind.code_hint")),
    field(t("bind.name"), name, t("bind.name_hint")),
    submit, progress, failure);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    failure.replaceChildren();
    const missing = [account, code, name].find((input) => !input.value.trim());
    if (missing) {
      failure.replaceChildren(h("p", {class: "error", role: "alert", text: t("bind.missing")}));
      missing.focus();
      return;
    }
    submit.disabled = true;
    progress.textContent = t("bind.working");
    try {
      await bind(account.value.trim(), code.value.trim(), name.value.trim());
      progress.textContent = "";
      announce(t("bind.done"));
      startApprovals();
      if (state.pendingLink) {
        // The login link that opened the app before it was bound: now it can be answered.
        const query = state.pendingLink;
        state.pendingLink = null;
        await arrival(query);
      } else {
        go("#approvals");
      }
    } catch (error) {
      progress.textContent = "";
      failure.replaceChildren(errorBox(error, "bind-error-text"));
      (error instanceof ApiError && ["invalid-activation", "used", "expired", "locked"].includes(error.slug) ? code : submit).focus();
    } finally {
      submit.disabled = false;
    }
  });
  const section = show("bind", t("bind.title"),
    notice ? h("p", {class: "notice", id: "bind-notice", role: "status", text: notice}) : null,
    h("p", {text: t("bind.intro")}),
    passkeysAvailable() ? null : h("p", {class: "error", id: "bind-no-passkeys", text: t("error.no-passkeys")}),
    form,
    h("h2", {text: t("pairing.title")}),
    h("p", {text: t("pairing.intro")}),
    h("p", {}, h("a", {href: "#pair", id: "bind-pair", class: "button", text: t("pairing.start")})));
  return section;
}

// Setting this phone up from one already set up: a key and a passkey made here, a code shown here, entered and
// approved on the other phone (POST /v1/devices/pairings, then GET …/{id} until bound, denied or expired).
function pairScreen() {
  const name = h("input", {id: "pair-device-name", name: "device-name", required: true, maxlength: "60", value: t("bind.default_name")});
  const submit = h("button", {id: "pair-start", type: "submit", class: "primary", text: t("pairing.submit")});
  const progress = h("div", {id: "pair-progress", role: "status"});
  const failure = h("div", {id: "pair-start-error"});
  const form = h("form", {id: "pair-start-form", novalidate: true}, field(t("bind.name"), name, t("bind.name_hint")), submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    failure.replaceChildren();
    if (!name.value.trim()) {
      failure.replaceChildren(h("p", {class: "error", role: "alert", text: t("devices.name_empty")}));
      name.focus();
      return;
    }
    submit.disabled = true;
    progress.replaceChildren(h("p", {text: t("bind.working")}));
    try {
      const started = await startPairing(name.value.trim());
      form.hidden = true;
      progress.replaceChildren(
        h("p", {text: t("pairing.enter_code")}),
        h("p", {class: "code", id: "pair-show-code", testid: "pairing-code", text: started.code}),
        h("p", {class: "muted", id: "pair-waiting", text: t("pairing.waiting")}));
      progress.querySelector("#pair-show-code").setAttribute("tabindex", "-1");
      progress.querySelector("#pair-show-code").focus();
      const outcome = await waitForPairing(started, progress);
      if (outcome.status !== "bound") throw new ApiError(409, {type: `/pairing-${outcome.status}`});
      announce(t("bind.done"));
      startApprovals();
      go("#approvals");
    } catch (error) {
      form.hidden = false;
      progress.replaceChildren();
      failure.replaceChildren(errorBox(error, "pair-start-error-text"));
      submit.focus();
    } finally {
      submit.disabled = false;
    }
  });
  return show("pair", t("pairing.title"), h("p", {text: t("pairing.intro")}), form, progress, failure,
    h("p", {}, h("a", {href: "#bind", id: "pair-back", text: t("pairing.back")})));
}

async function newKeyAndPasskey(deviceName) {
  const config = await api.loadConfig();
  const challenge = await api.publicCall("POST", "/v1/devices/challenges", {});
  const keys = await newDeviceKey();
  // The passkey's challenge is the nonce itself: auth checks it and the key's proof in the same request.
  const passkey = await createPasskey({nonce: challenge.nonce, rpId: config.rp_id, deviceName});
  const iat = now();
  const proof = await signJws(keys.privateKey, {typ: "JWT"}, {nonce: challenge.nonce, aud: challenge.audience, iat, exp: iat + 120});
  return {keys, passkey, proof, body: {public_key: await publicJwk(keys), device_name: deviceName, proof,
    key_protection: {storage: "software", user_verification: "passkey"}, passkey: passkey.json}};
}

async function startPairing(deviceName) {
  const made = await newKeyAndPasskey(deviceName);
  const started = await api.publicCall("POST", "/v1/devices/pairings", made.body);
  return {...started, made, deviceName};
}

async function waitForPairing(started, progress) {
  let shownCode = null;
  let known = null;
  for (;;) {
    // Held by the platform until the pairing moves (claimed, bound, denied) or 20 s pass: no polling.
    const asked = Date.now();
    let status;
    try {
      status = await api.publicCall("GET", `/v1/devices/pairings/${encodeURIComponent(started.pairing_id)}?wait=20`);
    } catch (error) {
      // The platform could not answer just now (auth restarting under the held question): the pairing is kept
      // there, so ask again after its Retry-After.
      if (!(error instanceof ApiError) || ![502, 503, 504].includes(error.status)) throw error;
      await sleep(1000 * (error.retryAfterS ?? 1));
      continue;
    }
    if (status.matching_code && status.matching_code !== shownCode) {
      shownCode = status.matching_code;
      progress.querySelector("#pair-waiting").textContent = t("pairing.claimed");
      progress.append(h("div", {class: "code-box"}, h("p", {text: t("prompt.code")}),
        h("p", {class: "code", id: "pair-matching-code", testid: "matching-code", text: status.matching_code})));
      announce(t("pairing.claimed"));
    }
    if (status.status === "bound") {
      await store.setMany({keys: started.made.keys, device_id: status.device_id, account_id: status.account_id,
        credential_id: started.made.passkey.credentialId, device_name: started.deviceName});
      await api.loadDevice();
      applyPreferredLanguage();
      return status;
    }
    if (["denied", "expired"].includes(status.status)) return status;
    // Answered at once with nothing new (the service held its limit already): ask again a second later, as before.
    if (status.status === known && Date.now() - asked < 1000) await sleep(1000);
    known = status.status;
  }
}

async function bind(accountId, activationCode, deviceName) {
  const {keys, passkey, body} = await newKeyAndPasskey(deviceName);
  const bound = await api.publicCall("POST", "/v1/devices", {account_id: accountId, activation_code: activationCode, ...body});
  await store.setMany({keys, device_id: bound.device_id, account_id: bound.account_id || accountId,
    credential_id: passkey.credentialId, device_name: deviceName});
  await api.loadDevice();
  applyPreferredLanguage();
}

// -- a revoked or unbound device -------------------------------------------------------------------------------

// `why`: "unbound" (the citizen removed this device), "revoked", or the DeviceRevoked error that says which. An
// account that is not active (suspended, closed) stops the app too, but keeps the keys: a suspension can be lifted.
async function revoked(why) {
  if (why instanceof Locked) return lockedScreen(why);
  if (why instanceof DeviceRevoked) why = {"no device": "unbound", "account-inactive": "inactive"}[why.message] || "revoked";
  stopApprovals();
  if (why === "inactive") {
    api.forget();
    const section = show("inactive", t("inactive.title"), h("p", {id: "inactive-message", text: t("inactive.message")}),
      h("p", {}, h("a", {id: "inactive-retry", href: "/app/", class: "button", text: t("inactive.retry")})));
    return section;
  }
  api.forget();
  await store.wipe();
  state.pending = [];
  setBadge("approvals-count", 0);
  setBadge("inbox-unread", 0);
  const section = show("revoked", t(why === "unbound" ? "revoked.unbound_title" : "revoked.title"),
    h("p", {id: "revoked-message", text: t(why === "unbound" ? "revoked.unbound" : "revoked.message")}),
    h("p", {text: t("revoked.wiped")}),
    h("p", {}, h("a", {id: "revoked-bind", href: "#bind", class: "button", text: t("revoked.bind_again")})));
  if (location.hash !== "#revoked") history.replaceState(null, "", "/app/#revoked");
  return section;
}

// -- locked: the citizen not (yet) verified by the passkey ---------------------------------------------------------

// The app is unlocked with the passkey (each device token needs the citizen's fingerprint, face or screen lock). Not
// verified (cancelled, failed, refused by the platform): this screen, until the citizen tries again. Nothing is wiped.
function lockedScreen(why) {
  stopApprovals();
  const cause = why && why.cause;
  const shown = document.getElementById("screen-locked");
  if (shown && shown.dataset.cause === String(cause && (cause.slug || cause.name))) return shown;
  const retry = h("button", {type: "button", id: "locked-retry", class: "primary", text: t("locked.retry")});
  const section = show("locked", t("locked.title"),
    h("p", {id: "locked-message", text: t("locked.message")}),
    cause instanceof ApiError ? errorBox(cause, "locked-error") : null,
    h("p", {}, retry));
  section.dataset.cause = String(cause && (cause.slug || cause.name));
  retry.addEventListener("click", async () => {
    retry.disabled = true;
    try {
      await api.unlock();
    } catch (error) {
      if (error instanceof DeviceRevoked && !(error instanceof Locked)) return revoked(error);
      // Still not verified (or offline): say why, and the button is there again.
      retry.disabled = false;
      section.querySelector("#locked-error")?.remove();
      retry.parentElement.before(errorBox(error instanceof Locked ? error.cause : error, "locked-error"));
      return;
    }
    startApprovals();
    applyPreferredLanguage();
    if (location.pathname === APP_LOGIN_PATH && location.search) await arrival(location.search);
    else await route();
  });
  return section;
}

// -- approvals: the list, live ----------------------------------------------------------------------------------

async function refreshPending() {
  const answer = await api.call("GET", "/v1/approvals");
  state.pending = answer.approvals || [];
  setBadge("approvals-count", state.pending.length);
  const fresh = state.pending.filter((p) => !state.seen.has(p.approval_id));
  for (const prompt of state.pending) state.seen.add(prompt.approval_id);
  if (fresh.length && state.announceNew) {
    announce(t("approvals.new", {client: fresh[0].requester.client_name}));
  }
  state.announceNew = true;
  const list = document.getElementById("approvals-list-region");
  if (list && document.getElementById("screen-approvals")) list.replaceChildren(approvalsList());
  return state.pending;
}

function onStreamEvent(event) {
  state.arrived.add(event.approval_id);
  const waiter = state.waiting.get(event.approval_id);
  if (waiter) waiter();
  refreshPending().catch(() => {});
}

function onInboxEvent(message) {
  if (message && message.subject) announce(t("inbox.arrived", {from: message.from || ""}));
  refreshUnread().catch(() => {});
  const region = document.getElementById("inbox-region");
  if (region && document.getElementById("screen-inbox")) {
    api.call("GET", "/v1/inbox").then((data) => region.replaceChildren(...inboxList(data).filter(Boolean))).catch(() => {});
  }
}

// The inbox's own stream: the unread count and the list follow new messages. Without it (offline, or refused: a
// device has at most 3 streams open, and one just closed may count until the gateway's next heartbeat) the app looks
// now and then instead.
async function followInbox(signal) {
  let failures = 0;
  while (!signal.aborted) {
    try {
      await api.eventStream("/v1/inbox/stream", onInboxEvent, signal, () => onInboxEvent(null));
      failures = 0;
    } catch (error) {
      if (signal.aborted || error instanceof DeviceRevoked) return;
      failures += 1;
      onInboxEvent(null);
    }
    await sleep(failures ? Math.min(2000 * failures, 15000) : 250);
  }
}

function startApprovals() {
  stopApprovals();
  const controller = new AbortController();
  state.stream = controller;
  followInbox(controller.signal);
  (async () => {
    let failures = 0;
    while (!controller.signal.aborted) {
      const status = document.getElementById("stream-status");
      try {
        if (status) status.textContent = t("approvals.live");
        state.live = true;
        await api.eventStream("/v1/approvals/stream", onStreamEvent, controller.signal);
        failures = 0;
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof DeviceRevoked) return revoked(error);
        failures += 1;
      }
      state.live = false;
      if (controller.signal.aborted) return;
      // Without the stream (offline, refused, too many open): ask now and then, and try the stream again.
      const status2 = document.getElementById("stream-status");
      if (status2) status2.textContent = t("approvals.polling");
      try {
        await refreshPending();
        await refreshUnread();
      } catch (error) {
        if (error instanceof DeviceRevoked) return revoked(error);
      }
      await sleep(failures ? Math.min(2000 * failures, 10000) : 250);
    }
  })();
  refreshUnread();
}

function stopApprovals() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

function approvalsList() {
  if (!state.pending.length) return h("p", {id: "approvals-empty", testid: "approvals-empty", text: t("approvals.empty")});
  return h("ul", {id: "approvals-list", class: "cards"}, state.pending.map((prompt) =>
    h("li", {}, h("a", {href: `#prompt/${encodeURIComponent(prompt.approval_id)}`, class: "card", testid: "approval-item",
      "data-approval-id": prompt.approval_id, "data-action": prompt.action},
    h("strong", {class: "card-title", text: prompt.requester.client_name}),
    h("span", {text: tOr(`action.${prompt.action}`, prompt.action)}),
    prompt.matching_code ? h("span", {text: t("approvals.code", {code: prompt.matching_code})}) : null,
    h("span", {class: "muted", text: t("approvals.expires", {time: time(prompt.expires_at)})})))));
}

function approvalsScreen() {
  const section = show("approvals", t("approvals.title"),
    h("p", {id: "stream-status", class: "muted", role: "status", text: t(state.live ? "approvals.live" : "approvals.polling")}));
  const region = h("div", {id: "approvals-list-region"});
  section.append(region, h("p", {}, h("a", {href: "#scan", id: "approvals-scan", class: "button", text: t("approvals.scan")})));
  region.append(h("p", {class: "loading", text: t("app.loading")}));
  refreshPending().then(() => {
    if (section.alive()) region.replaceChildren(approvalsList());
  }).catch((error) => {
    if (error instanceof DeviceRevoked) return revoked(error);
    if (section.alive()) region.replaceChildren(errorBox(error));
  });
  return section;
}

// -- one prompt ---------------------------------------------------------------------------------------------------

function promptDetails(prompt) {
  const request = prompt.request || prompt;
  const details = request.details || {};
  const parts = [];
  const list = [
    ...row(t("prompt.client"), request.requester.client_name, "prompt-client"),
    ...row(t("prompt.purpose"), request.purpose, "prompt-purpose"),
  ];
  if (request.action === "sign") {
    list.push(...row(t("prompt.document"), details.document_name, "prompt-document"));
    list.push(...row(t("prompt.hash"), details.sha256_start, "prompt-hash"));
    if (details.pages) list.push(...row(t("prompt.pages"), String(details.pages), "prompt-pages"));
    if (details.stamp_name) list.push(...row(t("prompt.stamp_name"), details.stamp_name, "prompt-stamp-name"));
  }
  if (request.action === "login") {
    if (details.binding_message) list.push(...row(t("prompt.binding_message"), details.binding_message, "prompt-binding-message"));
  }
  if (request.action === "add_device") {
    list.push(...row(t("prompt.device_name"), details.device_name, "prompt-device-name"));
    list.push(...row(t("prompt.key_thumbprint"), details.key_thumbprint, "prompt-key-thumbprint"));
  }
  list.push(...row(t("prompt.expires"), time(request.expires_at), "prompt-expires"));
  parts.push(h("dl", {class: "facts"}, list));
  if (request.action === "login" && Array.isArray(details.scopes)) {
    parts.push(h("h2", {text: t("prompt.scopes")}));
    parts.push(h("ul", {id: "prompt-scopes"}, details.scopes.map((scope) =>
      h("li", {"data-scope": scope, text: tOr(`scope.${scope}`, scope)}))));
  }
  if (request.action === "formfill") {
    parts.push(h("h2", {text: t("prompt.required")}));
    parts.push(h("ul", {id: "prompt-required"}, (details.required || []).map((name) =>
      h("li", {"data-field": name, text: tOr(`field.${name}`, name)}))));
    if ((details.optional || []).length) {
      parts.push(h("fieldset", {id: "prompt-optional"}, h("legend", {text: t("prompt.optional")}),
        details.optional.map((name) => h("div", {class: "check"},
          h("input", {type: "checkbox", id: `prompt-field-${name}`, name: "optional-field", value: name, checked: true}),
          h("label", {for: `prompt-field-${name}`, text: tOr(`field.${name}`, name)})))));
    }
    if (details.standing) parts.push(h("p", {class: "notice", id: "prompt-standing", text: t("prompt.standing")}));
  }
  if (request.action === "close_account" && Array.isArray(details.consequences)) {
    parts.push(h("ul", {id: "prompt-consequences"}, details.consequences.map((c) => h("li", {text: String(c)}))));
  }
  if (request.matching_code) {
    parts.push(h("div", {class: "code-box"}, h("p", {text: t("prompt.code")}),
      h("p", {class: "code", id: "prompt-code", testid: "matching-code", text: request.matching_code})));
  }
  return parts;
}

// What the app refuses to sign: a digest it cannot recompute, a signing prompt not naming the whole hash it shows.
async function checkPrompt(prompt) {
  if (await approvalDigest(prompt.request) !== prompt.digest) return "error.digest";
  const details = prompt.request.details || {};
  if (prompt.request.action === "sign" && !(typeof details.sha256 === "string" && details.sha256.length === 64
      && details.sha256.startsWith(String(details.sha256_start)))) return "error.document-hash";
  return null;
}

async function promptScreen(approvalId) {
  const request = state.prompts.get(approvalId);
  const section = show("prompt", t("prompt.title"));
  await load(section, async () => {
    const prompt = request && request.status === "pending" ? request : await api.call("GET", `/v1/approvals/${encodeURIComponent(approvalId)}`);
    return {prompt, problem: await checkPrompt(prompt)};
  }, ({prompt, problem}) => {
    const heading = section.querySelector("h1");
    heading.textContent = tOr(`action.${prompt.request.action}`, t("prompt.title"));
    document.title = `${heading.textContent} – ${t("app.name")}`;
    const result = h("div", {id: "prompt-result", role: "status"});
    const parts = [...promptDetails(prompt)];
    if (prompt.status !== "pending") {
      parts.push(h("p", {class: "notice", id: "prompt-status", testid: "prompt-status", "data-status": prompt.status,
        text: tOr(`prompt.status.${prompt.status}`, prompt.status)}));
      parts.push(h("p", {}, h("a", {href: "#approvals", class: "button", text: t("prompt.back")})));
      return parts;
    }
    if (problem) {
      parts.push(h("p", {class: "error", role: "alert", id: "prompt-problem", text: t(problem)}));
    }
    const approve = h("button", {type: "button", id: "approve", class: "primary", disabled: Boolean(problem), text: t("prompt.approve")});
    const deny = h("button", {type: "button", id: "deny", class: "secondary", text: t("prompt.deny")});
    const buttons = h("div", {class: "actions"}, approve, deny);
    const decideWith = (decision) => async () => {
      approve.disabled = deny.disabled = true;
      result.replaceChildren(h("p", {text: t(decision === "approve" ? "prompt.verifying" : "prompt.sending")}));
      try {
        const outcome = await decide(prompt, decision, section);
        state.prompts.delete(prompt.approval_id);  // decided: shown again, it is fetched (no longer pending)
        buttons.remove();
        section.querySelector("#prompt-optional")?.setAttribute("disabled", "");
        result.replaceChildren(...decided(prompt, outcome));
        result.querySelector("p").focus();
        refreshPending().catch(() => {});
      } catch (error) {
        if (error instanceof DeviceRevoked) return revoked(error);
        result.replaceChildren(errorBox(error, "decision-error"));
        approve.disabled = Boolean(problem);
        deny.disabled = false;
      }
    };
    approve.addEventListener("click", decideWith("approve"));
    deny.addEventListener("click", decideWith("deny"));
    // Once the prompt expires it can no longer be answered: say so rather than let the platform refuse it. (A phone
    // whose clock says it expired already, while the platform says pending, leaves the choice to the platform.)
    const left = new Date(prompt.request.expires_at).getTime() - Date.now();
    if (left > 0) setTimeout(() => {
      if (!buttons.isConnected || approve.disabled && deny.disabled) return;
      buttons.remove();
      result.replaceChildren(h("p", {class: "notice", id: "prompt-status", testid: "prompt-status", "data-status": "expired",
        text: t("prompt.status.expired")}));
    }, Math.max(0, Math.min(left, 2 ** 31 - 1)));
    parts.push(buttons, result);
    return parts;
  });
  return section;
}

async function decide(prompt, decision, section) {
  if (await checkPrompt(prompt) && decision === "approve") throw new Error(t("error.digest"));
  const device = api.currentDevice();
  const config = await api.loadConfig();
  const claims = {approval_id: prompt.approval_id, digest: prompt.digest, decision, iat: now(), jti: randomId(16)};
  claims.exp = claims.iat + 120;
  const details = prompt.request.details || {};
  if (prompt.request.action === "formfill" && (details.optional || []).length) {
    claims.selection = [...section.querySelectorAll("input[name=optional-field]:checked")].map((input) => input.value);
  }
  const body = {};
  if (decision === "approve" && device.credentialId) {
    // Unlocked first, with time to spare: a token request's passkey check made after this decision's assertion would
    // reach the platform first with a higher sign count, and the decision's would look cloned.
    await api.deviceToken(180000);
    // User verification: the passkey asserts over the prompt's digest (the platform checks it with the decision).
    body.passkey = await assertPasskey({digest: prompt.digest, rpId: config.rp_id, credentialId: device.credentialId});
    claims.uv = "passkey";
  }
  body.decision = await signJws(device.keys.privateKey, {kid: device.deviceId, typ: "harbour-decision+jwt"}, claims);
  return api.call("POST", `/v1/approvals/${encodeURIComponent(prompt.approval_id)}/decision`, body);
}

function decided(prompt, outcome) {
  const parts = [h("p", {id: "prompt-done", testid: "prompt-done", tabindex: "-1", "data-status": outcome.status,
    class: outcome.status === "approved" ? "success" : "notice",
    text: tOr(`prompt.done.${outcome.status}`, outcome.status)})];
  if (state.byLink.has(prompt.approval_id)) {
    // A login opened by the app link: the decision's answer names where the browser goes (the site's redirect URI
    // with the code, or its refusal); without one, back to the login page the citizen came from.
    parts.push(h("p", {}, h("button", {type: "button", id: "prompt-back-to-site", class: "primary", text: t("prompt.back_to_site"),
      on: {click: () => {
        if (outcome.redirect_to && /^https?:\/\//.test(outcome.redirect_to)) location.assign(outcome.redirect_to);
        else history.back();
      }}})));
  }
  parts.push(h("p", {}, h("a", {href: "#approvals", id: "prompt-to-list", text: t("prompt.back")})));
  return parts;
}

// -- links: scanned, pasted or opened (/app/authorize) ------------------------------------------------------------

// The prompt a link asks about. Login links go to the platform under the ISSUER's name (this page's origin may be
// another host name for the same platform); form-fill and signing links are claimed, their prompt awaited.
async function openLink(raw) {
  const link = raw.trim();
  const issuer = api.issuer();
  const requestId = (prefix) => {
    const id = decodeURIComponent(link.slice(prefix.length));
    if (!/^[A-Za-z0-9_-]{1,200}$/.test(id)) throw new ApiError(400, {type: "/unknown-link"});
    return encodeURIComponent(id);
  };
  if (link.startsWith(FORMFILL_LINK)) return claimAndWait(`/v1/formfill/requests/${requestId(FORMFILL_LINK)}/claim`);
  if (link.startsWith(SIGN_LINK)) return claimAndWait(`/v1/signing/requests/${requestId(SIGN_LINK)}/claim`);
  let login = null;
  if (link.startsWith(LOGIN_LINK) || link.startsWith(`${issuer}${APP_LOGIN_PATH}?`)) login = link;
  else if (link.startsWith(`${location.origin}${APP_LOGIN_PATH}?`)) login = issuer + link.slice(location.origin.length);
  if (!login) throw new ApiError(400, {type: "/unknown-link"});
  return api.call("POST", "/v1/approvals/links", {link: login});
}

// A claim answered 409 citizen-unknown (the service has not heard of this citizen, or of their activation, yet: auth's
// events on their way to it) is made again after its Retry-After; nothing changed on the service's side meanwhile.
async function claim(path, deadline) {
  for (;;) {
    try {
      return await api.call("POST", path, {});
    } catch (error) {
      const waitMs = 1000 * (error instanceof ApiError && error.retryAfterS !== null ? error.retryAfterS : 1);
      if (!(error instanceof ApiError && error.status === 409 && error.slug === "citizen-unknown")
          || Date.now() + waitMs > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

async function claimAndWait(path) {
  const deadline = Date.now() + 30000;
  const claimed = await claim(path, deadline);
  const id = claimed.approval_id;
  // The prompt reaches auth through the broker: the stream says when it is there (else it is asked for by id).
  if (state.live && !state.arrived.has(id)) {
    await new Promise((resolve) => {
      state.waiting.set(id, resolve);
      setTimeout(resolve, 5000);
    });
    state.waiting.delete(id);
  }
  for (;;) {
    try {
      return await api.call("GET", `/v1/approvals/${encodeURIComponent(id)}`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404) || Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => {
      state.waiting.set(id, resolve);
      setTimeout(resolve, 500);
    });
    state.waiting.delete(id);
  }
}

function toPrompt(prompt) {
  state.prompts.set(prompt.approval_id, prompt);
  location.hash = `#prompt/${encodeURIComponent(prompt.approval_id)}`;
}

async function arrival(query) {
  const link = `${api.issuer()}${APP_LOGIN_PATH}${query}`;
  if (!api.currentDevice()) {
    state.pendingLink = query;
    history.replaceState(null, "", "/app/#bind");
    return bindScreen(t("link.bind_first"));
  }
  const section = show("link", t("link.title"));
  await load(section, async () => {
    const prompt = await api.call("POST", "/v1/approvals/links", {link});
    state.byLink.add(prompt.approval_id);
    state.prompts.set(prompt.approval_id, prompt);
    return prompt;
  }, (prompt) => {
    // The login prompt replaces this page's entry: going back returns to the login page that opened the app.
    history.replaceState(null, "", `/app/#prompt/${encodeURIComponent(prompt.approval_id)}`);
    promptScreen(prompt.approval_id);
    return [];
  });
  return section;
}

// -- scanning a QR code -------------------------------------------------------------------------------------------

let camera = null;

function stopCamera() {
  if (camera) {
    camera.stream.getTracks().forEach((track) => track.stop());
    clearTimeout(camera.timer);
    camera = null;
  }
}

function scanScreen() {
  const status = h("p", {id: "scan-status", role: "status", class: "muted"});
  const failure = h("div", {id: "scan-error"});
  const video = h("video", {id: "scan-video", class: "scan-video", playsinline: true, muted: true, hidden: true,
    "aria-label": t("scan.video")});
  const start = h("button", {type: "button", id: "scan-start", class: "primary", text: t("scan.start")});
  const stop = h("button", {type: "button", id: "scan-stop", class: "secondary", hidden: true, text: t("scan.stop")});
  const input = h("input", {id: "scan-link", name: "link", inputmode: "url", autocapitalize: "none", spellcheck: "false",
    autocomplete: "off"});
  const open = h("button", {type: "submit", id: "scan-open", text: t("scan.open")});
  const form = h("form", {id: "scan-form", novalidate: true}, field(t("scan.paste"), input, t("scan.paste_hint")), open);
  const detector = "BarcodeDetector" in window;
  const follow = async (link) => {
    failure.replaceChildren();
    status.textContent = t("scan.opening");
    try {
      const prompt = await openLink(link);
      stopCamera();
      toPrompt(prompt);
    } catch (error) {
      if (error instanceof DeviceRevoked) return revoked(error);
      status.textContent = "";
      failure.replaceChildren(errorBox(error, "scan-error-text"));
      return false;
    }
    return true;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.value.trim()) {
      failure.replaceChildren(h("p", {class: "error", role: "alert", text: t("scan.empty")}));
      input.focus();
      return;
    }
    follow(input.value);
  });
  start.addEventListener("click", async () => {
    failure.replaceChildren();
    try {
      const stream = await navigator.mediaDevices.getUserMedia({video: {facingMode: {ideal: "environment"}}, audio: false});
      stopCamera();
      camera = {stream, timer: null};
      video.srcObject = stream;
      video.hidden = false;
      stop.hidden = false;
      start.hidden = true;
      await video.play();
      status.textContent = t("scan.looking");
      const barcodes = new window.BarcodeDetector({formats: ["qr_code"]});
      const look = async () => {
        if (!camera || camera.stream !== stream) return;
        try {
          const found = await barcodes.detect(video);
          const code = found.find((b) => b.rawValue);
          if (code) {
            if (await follow(code.rawValue)) return;
          }
        } catch {
          // a frame the detector could not read: the next one
        }
        if (camera && camera.stream === stream) camera.timer = setTimeout(look, 250);
      };
      look();
    } catch (error) {
      stopCamera();
      video.hidden = true;
      stop.hidden = true;
      start.hidden = false;
      status.textContent = "";
      failure.replaceChildren(h("p", {class: "error", role: "alert", id: "scan-camera-error",
        text: t(error && error.name === "NotAllowedError" ? "scan.camera_denied" : "scan.camera_failed")}));
    }
  });
  stop.addEventListener("click", () => {
    stopCamera();
    video.hidden = true;
    stop.hidden = true;
    start.hidden = false;
    status.textContent = "";
    start.focus();
  });
  return show("scan", t("scan.title"),
    h("p", {text: t("scan.intro")}),
    detector && navigator.mediaDevices ? h("div", {class: "actions"}, start, stop)
      : h("p", {class: "notice", id: "scan-unsupported", text: t("scan.unsupported")}),
    video, status, form, failure);
}

// -- inbox ---------------------------------------------------------------------------------------------------------

async function refreshUnread(messages) {
  try {
    const list = messages || (await api.call("GET", "/v1/inbox")).messages;
    state.unread = list.filter((m) => !m.read_at).length;
    setBadge("inbox-unread", state.unread);
  } catch {
    // the count waits for the next look
  }
}

function inboxScreen() {
  const section = show("inbox", t("inbox.title"));
  load(section, () => api.call("GET", "/v1/inbox"), (data) => h("div", {id: "inbox-region"}, inboxList(data)));
  return section;
}

function inboxList(data) {
  const messages = data.messages || [];
  if (!data.cachedAt) refreshUnread(messages);
  const unread = messages.filter((m) => !m.read_at).length;
  return [cachedNote(data),
    h("p", {id: "inbox-count", testid: "inbox-count", "data-unread": unread, text: t("inbox.unread", {count: unread})}),
    messages.length ? h("ul", {id: "inbox-list", class: "cards"}, messages.map((m) =>
        h("li", {}, h("a", {href: `#message/${encodeURIComponent(m.id)}`, class: `card${m.read_at ? "" : " unread"}`,
          testid: "inbox-item", "data-inbox-id": m.id, "data-read": m.read_at ? "true" : "false"},
        h("span", {class: "card-title"}, m.read_at ? null : h("span", {class: "dot", text: t("inbox.new")}), m.subject),
        h("span", {text: m.from}),
        h("span", {class: "muted", text: dateTime(m.delivered_at)})))))
        : h("p", {id: "inbox-empty", text: t("inbox.empty")})];
}

function messageScreen(id) {
  const section = show("message", t("message.title"));
  load(section, async () => {
    const data = await api.call("GET", "/v1/inbox");
    const message = (data.messages || []).find((m) => m.id === id);
    if (!message) throw new ApiError(404, {type: "/not-found"});
    if (!message.read_at && !data.cachedAt) {
      await api.call("POST", `/v1/inbox/${encodeURIComponent(id)}/read`);
      message.read_at = new Date().toISOString();
      refreshUnread();
    }
    return message;
  }, (message) => {
    section.querySelector("h1").textContent = message.subject;
    document.title = `${message.subject} – ${t("app.name")}`;
    return [h("dl", {class: "facts"}, row(t("message.from"), message.from, "message-from"),
      row(t("message.received"), dateTime(message.delivered_at), "message-received")),
    h("div", {id: "message-body", class: "message-body", text: message.body}),
    h("p", {}, h("a", {href: "#inbox", id: "message-back", text: t("message.back")}))];
  });
  return section;
}

// -- preferences ---------------------------------------------------------------------------------------------------

function preferencesScreen() {
  const section = show("preferences", t("preferences.title"));
  load(section, async () => {
    const prefs = await api.call("GET", "/v1/preferences");
    let agencies = [];
    try {
      const inbox = await api.call("GET", "/v1/inbox");
      agencies = (inbox.messages || []).filter((m) => m.kind === "agency" && m.client_id).map((m) => [m.client_id, m.from]);
    } catch {
      // the opt-out list then shows the agencies already opted out
    }
    return {prefs, agencies};
  }, ({prefs, agencies}) => preferencesForm(prefs, agencies, section));
  return section;
}

function preferencesForm(prefs, agencies, section) {
  const language = h("select", {id: "pref-language"},
    h("option", {value: "", text: t("preferences.language_default")}),
    LANGUAGES.map((lang) => h("option", {value: lang, lang, selected: prefs.language === lang, text: t(`language.${lang}`)})));
  const channel = (name) => h("div", {class: "check"},
    h("input", {type: "checkbox", id: `pref-channel-${name}`, name: "channel", value: name,
      checked: name === "inbox" || (prefs.channels || []).includes(name), disabled: name === "inbox"}),
    h("label", {for: `pref-channel-${name}`, text: t(`channel.${name}`)}));
  const email = h("input", {id: "pref-email", type: "email", autocomplete: "email", maxlength: "254", value: prefs.email || ""});
  const phone = h("input", {id: "pref-phone", type: "tel", autocomplete: "tel", placeholder: "+852…", value: prefs.phone || ""});
  const quiet = h("input", {type: "checkbox", id: "pref-quiet", checked: Boolean(prefs.quiet_hours)});
  const start = h("input", {id: "pref-quiet-start", type: "time", value: prefs.quiet_hours?.start || "22:00"});
  const end = h("input", {id: "pref-quiet-end", type: "time", value: prefs.quiet_hours?.end || "07:00"});
  const names = new Map(agencies);
  for (const id of prefs.opted_out || []) if (!names.has(id)) names.set(id, id);
  const optOuts = h("fieldset", {id: "pref-opt-outs"}, h("legend", {text: t("preferences.opt_outs")}),
    names.size ? [...names].map(([id, from], i) => h("div", {class: "check"},
      h("input", {type: "checkbox", id: `pref-opt-out-${i}`, name: "opt-out", value: id, checked: (prefs.opted_out || []).includes(id)}),
      h("label", {for: `pref-opt-out-${i}`, text: t("preferences.opt_out", {agency: from})})))
      : h("p", {class: "muted", id: "pref-no-agencies", text: t("preferences.no_agencies")}));
  const status = h("div", {id: "pref-status", role: "status"},
    state.flash ? h("p", {class: "success", id: "pref-saved", text: t(state.flash)}) : null);
  state.flash = null;
  const save = h("button", {type: "submit", id: "pref-save", class: "primary", text: t("preferences.save")});
  const form = h("form", {id: "pref-form", novalidate: true},
    cachedNote(prefs),
    field(t("preferences.language"), language, t("preferences.language_hint")),
    h("fieldset", {id: "pref-channels"}, h("legend", {text: t("preferences.channels")}),
      ["inbox", "push", "email", "sms"].map(channel)),
    field(t("preferences.email"), email),
    field(t("preferences.phone"), phone, t("preferences.phone_hint")),
    h("fieldset", {id: "pref-quiet-hours"}, h("legend", {text: t("preferences.quiet_hours")}),
      h("div", {class: "check"}, quiet, h("label", {for: "pref-quiet", text: t("preferences.quiet_on")})),
      field(t("preferences.quiet_start"), start), field(t("preferences.quiet_end"), end),
      h("p", {class: "hint", text: t("preferences.quiet_hint")})),
    optOuts, save, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      language: language.value || null,
      channels: [...form.querySelectorAll("input[name=channel]:checked")].map((i) => i.value),
      opted_out: [...form.querySelectorAll("input[name=opt-out]:checked")].map((i) => i.value),
      quiet_hours: quiet.checked ? {start: start.value, end: end.value} : null,
    };
    if (email.value.trim()) body.email = email.value.trim();
    if (phone.value.trim()) body.phone = phone.value.trim();
    save.disabled = true;
    status.replaceChildren(h("p", {text: t("preferences.saving")}));
    try {
      const saved = await api.call("PUT", "/v1/preferences", body);
      if (saved.language && saved.language !== current()) {
        // The app speaks the new language too: the screen is drawn again in it, saying it was saved.
        await store.set("language", saved.language);
        state.flash = "preferences.saved";
        await switchLanguage(saved.language);
        return;
      }
      status.replaceChildren(h("p", {class: "success", id: "pref-saved", text: t("preferences.saved")}));
    } catch (error) {
      if (error instanceof DeviceRevoked) return revoked(error);
      status.replaceChildren(errorBox(error, "pref-error"));
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

// -- consents ------------------------------------------------------------------------------------------------------

function consentsScreen() {
  const section = show("consents", t("consents.title"));
  const status = h("div", {id: "consents-status", role: "status"});
  section.append(h("p", {text: t("consents.intro")}), status);
  load(section, () => api.call("GET", "/v1/consents"), (data) => {
    const consents = data.consents || [];
    if (!consents.length) return [cachedNote(data), h("p", {id: "consents-empty", text: t("consents.empty")})];
    return [cachedNote(data), h("ul", {id: "consents-list", class: "cards"}, consents.map((c) => {
      const revocable = c.standing && c.status === "active";
      const revoke = revocable ? h("button", {type: "button", class: "secondary", testid: "consent-revoke",
        "aria-label": t("consents.revoke_named", {client: c.client_name}), text: t("consents.revoke")}) : null;
      revoke?.addEventListener("click", async () => {
        revoke.disabled = true;
        try {
          await api.call("DELETE", `/v1/consents/${encodeURIComponent(c.receipt_id)}`);
          consentsScreen();
          document.getElementById("consents-status")?.replaceChildren(
            h("p", {class: "success", id: "consents-revoked", text: t("consents.revoked", {client: c.client_name})}));
        } catch (error) {
          if (error instanceof DeviceRevoked) return revoked(error);
          revoke.disabled = false;
          status.replaceChildren(errorBox(error, "consents-error"));
        }
      });
      return h("li", {class: "card", testid: "consent-item", "data-receipt-id": c.receipt_id, "data-status": c.status},
        h("strong", {class: "card-title", text: c.client_name}),
        h("span", {text: c.purpose}),
        h("span", {text: t("consents.fields", {fields: (c.fields || []).map((f) => tOr(`field.${f}`, f)).join(", ")})}),
        h("span", {class: "muted", text: t(c.standing ? "consents.standing" : "consents.once", {time: dateTime(c.granted_at)})}),
        h("span", {class: "muted", "data-testid": "consent-status", text: tOr(`consents.status.${c.status}`, c.status)}),
        revoke);
    }))];
  });
  return section;
}

// -- devices -------------------------------------------------------------------------------------------------------

// Adding a device from this one: the new device shows a code; entered here, it queues an add_device prompt, which
// names the new device and shows the matching code the new device shows too.
function pairingForm() {
  const code = h("input", {id: "pair-code", name: "code", autocomplete: "off", autocapitalize: "characters",
    spellcheck: "false", maxlength: "20"});
  const submit = h("button", {type: "submit", id: "pair-submit", class: "secondary", text: t("devices.pair_submit")});
  const failure = h("div", {id: "pair-error"});
  const form = h("form", {id: "pair-form", novalidate: true}, h("h2", {text: t("devices.pair_title")}),
    field(t("devices.pair_code"), code, t("devices.pair_hint")), submit, failure);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    failure.replaceChildren();
    if (!code.value.trim()) {
      failure.replaceChildren(h("p", {class: "error", role: "alert", text: t("devices.pair_empty")}));
      code.focus();
      return;
    }
    submit.disabled = true;
    try {
      const claimed = await api.call("POST", "/v1/devices/pairings/claim", {code: code.value.trim()});
      toPrompt(await api.call("GET", `/v1/approvals/${encodeURIComponent(claimed.approval_id)}`));
    } catch (error) {
      if (error instanceof DeviceRevoked) return revoked(error);
      failure.replaceChildren(errorBox(error, "pair-error-text"));
      code.focus();
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function devicesScreen() {
  const section = show("devices", t("devices.title"));
  const status = h("div", {id: "devices-status", role: "status"});
  section.append(status);
  load(section, () => api.call("GET", "/v1/devices"), (data) => {
    const devices = data.devices || [];
    return [cachedNote(data), h("ul", {id: "devices-list", class: "cards"}, devices.map((d, i) => {
      const mine = d.device_id === data.current_device_id;
      const input = h("input", {id: `device-name-${i}`, testid: "device-name-input", maxlength: "60", value: d.name || ""});
      const rename = h("button", {type: "submit", class: "secondary", testid: "device-rename", text: t("devices.rename")});
      const form = h("form", {class: "inline", novalidate: true}, field(t("devices.name"), input), rename);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const name = input.value.trim();
        if (!name) {
          status.replaceChildren(h("p", {class: "error", role: "alert", text: t("devices.name_empty")}));
          input.focus();
          return;
        }
        rename.disabled = true;
        try {
          const renamed = await api.call("PATCH", `/v1/devices/${encodeURIComponent(d.device_id)}`, {name});
          if (mine) await store.set("device_name", renamed.name);
          item.querySelector(".card-title").textContent = renamed.name;
          status.replaceChildren(h("p", {class: "success", id: "devices-renamed", text: t("devices.renamed", {name: renamed.name})}));
        } catch (error) {
          if (error instanceof DeviceRevoked) return revoked(error);
          status.replaceChildren(errorBox(error, "devices-error"));
        } finally {
          rename.disabled = false;
        }
      });
      const active = d.status === "active";
      const revoke = active ? h("button", {type: "button", class: "danger", testid: "device-revoke",
        text: t(mine ? "devices.revoke_this" : "devices.revoke")}) : null;
      const confirm = active ? h("div", {class: "confirm", hidden: true},
        h("p", {text: t(mine ? "devices.confirm_this" : "devices.confirm", {name: d.name})}),
        h("button", {type: "button", class: "danger", testid: "device-revoke-confirm", text: t("devices.confirm_yes")}),
        h("button", {type: "button", class: "secondary", testid: "device-revoke-cancel", text: t("devices.confirm_no")})) : null;
      revoke?.addEventListener("click", () => {
        confirm.hidden = false;
        revoke.hidden = true;
        confirm.querySelector("[data-testid=device-revoke-cancel]").focus();
      });
      confirm?.querySelector("[data-testid=device-revoke-cancel]").addEventListener("click", () => {
        confirm.hidden = true;
        revoke.hidden = false;
        revoke.focus();
      });
      confirm?.querySelector("[data-testid=device-revoke-confirm]").addEventListener("click", async (event) => {
        event.target.disabled = true;
        try {
          await api.call("DELETE", `/v1/devices/${encodeURIComponent(d.device_id)}`);
          if (mine) return revoked("unbound");
          devicesScreen();
          document.getElementById("devices-status")?.replaceChildren(
            h("p", {class: "success", id: "devices-revoked", text: t("devices.revoked", {name: d.name})}));
        } catch (error) {
          if (error instanceof DeviceRevoked) return revoked(error);
          event.target.disabled = false;
          status.replaceChildren(errorBox(error, "devices-error"));
        }
      });
      const item = h("li", {class: "card", testid: "device-item", "data-device-id": d.device_id, "data-status": d.status,
        "data-current": mine ? "true" : "false"},
      h("strong", {class: "card-title", text: d.name}),
      mine ? h("span", {class: "tag", text: t("devices.this")}) : null,
      h("span", {text: tOr(`devices.status.${d.status}`, d.status)}),
      h("span", {class: "muted", text: t("devices.added", {time: dateTime(d.created_at)})}),
      d.revoked_at ? h("span", {class: "muted", text: t("devices.revoked_at", {time: dateTime(d.revoked_at)})}) : null,
      h("span", {class: "muted", text: t(`devices.uv.${d.user_verification === "passkey" || d.user_verification === "pin" ? d.user_verification : "none"}`)}),
      form, revoke, confirm);
      return item;
    })), data.cachedAt ? null : pairingForm()];
  });
  return section;
}

// -- activity ------------------------------------------------------------------------------------------------------

function activityItem(entry) {
  const details = entry.details || {};
  const facts = [];
  if (Array.isArray(details.fields)) facts.push(t("activity.fields", {fields: details.fields.map((f) => tOr(`field.${f}`, f)).join(", ")}));
  if (Array.isArray(details.amr)) facts.push(t("activity.amr", {amr: details.amr.join(", ")}));
  if (details.channel) facts.push(t("activity.channel", {channel: tOr(`channel.${details.channel}`, details.channel)}));
  if (details.reason) facts.push(t("activity.reason", {reason: details.reason}));
  return h("li", {class: "card", testid: "activity-item", "data-kind": entry.kind, "data-action": entry.action},
    h("strong", {class: "card-title", text: tOr(`kind.${entry.kind}`, entry.kind)}),
    entry.client_name ? h("span", {text: entry.client_name}) : null,
    h("span", {text: `${tOr(`activity.action.${entry.action}`, entry.action)} · ${tOr(`outcome.${entry.outcome}`, entry.outcome || "")}`}),
    facts.map((fact) => h("span", {text: fact})),
    h("span", {class: "muted", text: dateTime(entry.time)}),
    entry.proof ? h("span", {class: "muted", text: t("activity.proof", {seq: entry.proof.seq})}) : null);
}

function activityScreen() {
  const section = show("activity", t("activity.title"));
  section.append(h("p", {text: t("activity.intro")}));
  load(section, () => api.call("GET", "/v1/activity?limit=50"), (data) => {
    const entries = data.entries || data.activity || [];
    const list = h("ol", {id: "activity-list", class: "cards"}, entries.map(activityItem));
    const parts = [cachedNote(data), entries.length ? list : h("p", {id: "activity-empty", text: t("activity.empty")})];
    let after = data.next_after;
    if (after !== null && after !== undefined) {
      const more = h("button", {type: "button", id: "activity-more", class: "secondary", text: t("activity.more")});
      more.addEventListener("click", async () => {
        more.disabled = true;
        try {
          const page = await api.call("GET", `/v1/activity?after=${encodeURIComponent(after)}&limit=50`);
          const added = (page.entries || []).map(activityItem);
          list.append(...added);
          added[0]?.setAttribute("tabindex", "-1");
          added[0]?.focus();
          after = page.next_after;
          if (after === null || after === undefined) more.remove();
        } catch (error) {
          if (error instanceof DeviceRevoked) return revoked(error);
          more.after(errorBox(error, "activity-error"));
        } finally {
          more.disabled = false;
        }
      });
      parts.push(more);
    }
    return parts;
  });
  return section;
}

// -- language ------------------------------------------------------------------------------------------------------

const languageSelect = document.getElementById("language");

async function switchLanguage(lang, redraw = true) {
  await setLanguage(lang);
  languageSelect.value = current();
  if (api.currentDevice()) for (const id of ["approvals-count", "inbox-unread"]) {
    const badge = document.getElementById(id);
    setBadge(id, Number(badge.textContent) || 0);
  }
  if (redraw) await route();
}

languageSelect.addEventListener("change", async () => {
  await store.set("language", languageSelect.value);
  await switchLanguage(languageSelect.value);
  languageSelect.focus();
});

// The citizen's preferred language at the platform, when neither ?lang= nor this app's own switch chose one.
async function applyPreferredLanguage() {
  if (await store.get("language")) return;
  try {
    const prefs = await api.call("GET", "/v1/preferences");
    const wanted = prefs.language;
    if (wanted && LANGUAGES.includes(wanted) && wanted !== current()) await switchLanguage(wanted);
  } catch {
    // the browser's language stays
  }
}

// -- start -----------------------------------------------------------------------------------------------------------

function connectivity(event) {
  const reachable = event && event.type === "harbour:network" ? event.detail : navigator.onLine;
  document.getElementById("offline-badge").hidden = reachable;
}

async function start() {
  const params = new URLSearchParams(location.search);
  const asked = params.get("lang") ? match(params.get("lang")) : null;
  // ?lang= is a choice like the switch's: kept, so a later app link (which carries none) opens in it too.
  if (asked) await store.set("language", asked);
  await setLanguage(pick(asked, await store.get("language"), navigator.languages));
  languageSelect.value = current();
  translate(document);
  connectivity();
  window.addEventListener("online", connectivity);
  window.addEventListener("offline", connectivity);
  document.addEventListener("harbour:network", connectivity);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/app/sw.js", {scope: "/app/"}).catch(() => {});
  }
  try {
    await api.loadConfig();
  } catch (error) {
    show("error", t("app.name"), errorBox(error));
    return;
  }
  await api.loadDevice();
  // The skip link moves the focus to the screen (its href alone would change the hash: the app routes on it).
  document.getElementById("skip").addEventListener("click", (event) => {
    event.preventDefault();
    (document.getElementById("screen-title") || main).focus();
  });
  // A screen's link followed while it is shown draws it again (fresh data, the focus on its heading).
  nav.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='#']");
    if (link && link.getAttribute("href") === location.hash) {
      event.preventDefault();
      route();
    }
  });
  window.addEventListener("hashchange", () => {
    stopCamera();
    route();
  });
  if (api.currentDevice()) {
    startApprovals();
    applyPreferredLanguage();
  }
  // Back in front (a phone suspends a page in the background, and its streams with it): look at once.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && api.currentDevice()) {
      refreshPending().catch((error) => { if (error instanceof DeviceRevoked) revoked(error); });
      refreshUnread();
    }
  });
  if (location.pathname === APP_LOGIN_PATH && location.search) await arrival(location.search);
  else await route();
  document.body.dataset.ready = "true";
}

start();
