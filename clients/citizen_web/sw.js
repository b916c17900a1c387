// The service worker: the app shell (every static file) and the last answer of each screen's GET kept for offline
// display. Network first (the platform's answer when it can be had), the kept copy when not. Nothing else is kept:
// no approvals, no tokens; the page deletes the data cache when the device is revoked or unbound.

const SHELL = "harbour-shell-v1";
const DATA = "harbour-data";
const FILES = [
  "/app/", "/app/app.css", "/app/manifest.webmanifest",
  "/app/js/main.js", "/app/js/api.js", "/app/js/crypto.js", "/app/js/i18n.js", "/app/js/store.js", "/app/js/webauthn.js",
  "/app/i18n/en.json", "/app/i18n/zh-HK.json", "/app/i18n/zh-CN.json",
  "/app/icons/icon-192.png", "/app/icons/icon-512.png", "/app/icons/maskable-512.png",
];
// The screens' data kept for offline display (their first page), never the streams.
const DATA_PATHS = ["/v1/inbox", "/v1/devices", "/v1/consents", "/v1/preferences", "/v1/activity"];
const RUNTIME = ["/app/config.json", "/.well-known/openid-configuration"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n.startsWith("harbour-shell-") && n !== SHELL).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

function kept(response, when) {
  const headers = new Headers(response.headers);
  headers.set("X-Harbour-Cached", when || "1");
  return response.blob().then((body) => new Response(body, {status: response.status, statusText: response.statusText, headers}));
}

async function networkFirst(request, cacheName, key) {
  const cache = await caches.open(cacheName);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(key, response.clone());
    return response;
  } catch (error) {
    const copy = await cache.match(key);
    if (copy) return cacheName === DATA ? kept(copy) : copy;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const path = url.pathname;
  if (DATA_PATHS.some((p) => path === p) && !path.endsWith("/stream")) {
    if (request.headers.get("X-Harbour-Offline")) {
      // The app knows it is offline: the kept copy, without trying the network.
      event.respondWith(caches.open(DATA).then((cache) => cache.match(url.href))
        .then((copy) => copy ? kept(copy) : new Response("", {status: 504})));
    } else {
      event.respondWith(networkFirst(request, DATA, url.href));
    }
    return;
  }
  if (path.startsWith("/app/") || RUNTIME.includes(path)) {
    // A screen's URL (/app/, /app/authorize?…, /app/<screen>) is the one page; files by their path.
    const page = request.mode === "navigate" || (path.startsWith("/app/") && !path.slice(5).includes("."));
    const key = page ? "/app/" : url.origin + path;
    event.respondWith(networkFirst(request, SHELL, key));
  }
});
