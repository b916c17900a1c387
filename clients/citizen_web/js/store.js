// IndexedDB: the device key pair (the private key non-extractable), device id, account id, passkey credential id,
// device name and language. Nothing else is kept: no tokens (memory only), no screens' data (the service worker keeps
// the last answers for offline display, cleared with this).

const DB = "harbour-id";
const STORE = "device";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, action) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request && request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export function get(key) {
  return run("readonly", (store) => store.get(key));
}

export function set(key, value) {
  return run("readwrite", (store) => store.put(value, key));
}

export async function setMany(values) {
  await run("readwrite", (store) => {
    for (const [key, value] of Object.entries(values)) store.put(value, key);
  });
}

export function remove(key) {
  return run("readwrite", (store) => store.delete(key));
}

// Unbinding: the keys and everything the app kept, except the language the citizen chose.
export async function wipe() {
  const language = await get("language");
  await run("readwrite", (store) => store.clear());
  if (language) await set("language", language);
  if (window.caches) await caches.delete("harbour-data");
}
