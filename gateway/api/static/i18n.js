// The page's text catalogue (web.* keys from GET /api/v1/i18n/{locale}).
// Every visible string goes through t(); static markup names its key in
// data-i18n attributes, so index.html holds no text of its own.

const STORE_KEY = "gw.locale";
let catalogue = {};
let locale = "en";

export function currentLocale() {
  return locale;
}

/** The locale the operator chose on this browser, if any. */
export function storedLocale() {
  try {
    return localStorage.getItem(STORE_KEY);
  } catch {
    return null; // storage disabled (private mode): no memory, no harm
  }
}

export function rememberLocale(loc) {
  try {
    localStorage.setItem(STORE_KEY, loc);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}

export class CatalogueError extends Error {}

export async function loadCatalogue(loc) {
  const res = await fetch(`/api/v1/i18n/${encodeURIComponent(loc)}`, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  if (!res.ok) throw new CatalogueError(`catalogue ${loc}: HTTP ${res.status}`);
  catalogue = await res.json();
  locale = loc;
  document.documentElement.lang = loc;
}

function format(template, fields) {
  if (!fields) return template;
  return template.replace(/\{(\w+)\}/g, (all, name) =>
    Object.prototype.hasOwnProperty.call(fields, name) ? String(fields[name]) : all,
  );
}

/** The text for key, formatted with {field} values; the key itself when missing
 * (a gap shows on screen instead of breaking the page). */
export function t(key, fields) {
  const template = catalogue[key];
  return format(template === undefined ? key : template, fields);
}

/** The text for key if the catalogue has it, else fallback (a machine value
 * such as an event type the catalogue does not name). */
export function tOr(key, fallback, fields) {
  const template = catalogue[key];
  return template === undefined ? fallback : format(template, fields);
}

/** Fill every data-i18n* attribute under root from the catalogue. */
export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) {
    el.setAttribute("title", t(el.dataset.i18nTitle));
  }
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
}
