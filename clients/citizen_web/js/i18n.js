// Messages from the catalogues i18n/{en,zh-HK,zh-CN}.json: every visible text, t(KEY, {name: value}); markup
// names its texts with data-i18n="key" (text), data-i18n-label="key" (aria-label), data-i18n-placeholder="key".

export const LANGUAGES = ["en", "zh-HK", "zh-CN"];

let language = "en";
let messages = {};
let fallback = {};

async function catalogue(lang) {
  const answer = await fetch(`/app/i18n/${lang}.json`);
  if (!answer.ok) throw new Error(`no catalogue for ${lang}`);
  return answer.json();
}

// The first supported language among the candidates (exact, then by primary tag: zh-TW/zh-Hant → zh-HK, zh → zh-CN).
export function pick(...candidates) {
  for (const candidate of candidates.flat()) {
    if (!candidate) continue;
    const found = match(String(candidate));
    if (found) return found;
  }
  return "en";
}

// The supported language a tag names (zh-TW → zh-HK…), or null.
export function match(tag) {
  const lower = tag.toLowerCase();
  const exact = LANGUAGES.find((l) => l.toLowerCase() === lower);
  if (exact) return exact;
  if (/^zh-(hk|mo|tw|hant)/.test(lower)) return "zh-HK";
  if (/^zh(-|$)/.test(lower)) return "zh-CN";
  if (/^en(-|$)/.test(lower)) return "en";
  return null;
}

export async function setLanguage(lang) {
  language = LANGUAGES.includes(lang) ? lang : "en";
  if (!Object.keys(fallback).length) fallback = await catalogue("en");
  messages = language === "en" ? fallback : await catalogue(language);
  document.documentElement.lang = language;
  translate(document);
  return language;
}

export function current() {
  return language;
}

export function t(key, values = {}) {
  const text = messages[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// A key built from a value the platform sends (a field name, an action): its message, or the value itself.
export function tOr(key, otherwise) {
  return key in messages || key in fallback ? t(key) : otherwise;
}

export function translate(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-label]")) element.setAttribute("aria-label", t(element.dataset.i18nLabel));
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) element.placeholder = t(element.dataset.i18nPlaceholder);
}

export function dateTime(text) {
  const when = new Date(text);
  if (Number.isNaN(when.getTime())) return String(text);
  return new Intl.DateTimeFormat(language, {dateStyle: "medium", timeStyle: "short"}).format(when);
}

export function time(text) {
  const when = new Date(text);
  if (Number.isNaN(when.getTime())) return String(text);
  return new Intl.DateTimeFormat(language, {timeStyle: "medium"}).format(when);
}
