// Times in the site's time zone (from /api/v1/meta), whatever the browser's
// zone, and values in the page's locale.

import { t } from "./i18n.js";

let zone = "UTC";
let locale = "en";
const cache = new Map();

export function configure({ timezone, lang }) {
  if (timezone) zone = timezone;
  if (lang) locale = lang;
  cache.clear();
}

export function siteZone() {
  return zone;
}

function formatter(name, options) {
  let f = cache.get(name);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, { timeZone: zone, hourCycle: "h23", ...options });
    cache.set(name, f);
  }
  return f;
}

function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const d = value instanceof Date ? value : new Date(typeof value === "number" ? value : Date.parse(value));
  return Number.isNaN(d.getTime()) ? null : d;
}

/** {year, month, day, hour, minute, second} of a moment in the site zone. */
export function siteParts(date) {
  const parts = {};
  const f = formatter("parts", {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  for (const p of f.formatToParts(date)) {
    if (p.type !== "literal") parts[p.type] = Number(p.value);
  }
  if (parts.hour === 24) parts.hour = 0;
  return parts;
}

/** Milliseconds the site zone is ahead of UTC at this moment (+8 h in Shanghai). */
export function zoneOffsetMs(date) {
  const p = siteParts(date);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - (date.getTime() - date.getMilliseconds());
}

function pad(n) {
  return String(n).padStart(2, "0");
}

export function fmtTime(value) {
  const d = toDate(value);
  if (!d) return "";
  const p = siteParts(d);
  return `${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
}

export function fmtDateTime(value) {
  const d = toDate(value);
  if (!d) return "";
  const p = siteParts(d);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
}

/** HH:MM:SS today (site day), else MM-DD HH:MM. */
export function fmtShort(value) {
  const d = toDate(value);
  if (!d) return "";
  const p = siteParts(d);
  const now = siteParts(new Date());
  if (p.year === now.year && p.month === now.month && p.day === now.day) return fmtTime(d);
  return `${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}`;
}

/** An axis label: the time of day, with the date where the day changes. */
export function fmtAxis(date, withDate) {
  const p = siteParts(date);
  const time = `${pad(p.hour)}:${pad(p.minute)}`;
  return withDate ? `${pad(p.month)}-${pad(p.day)} ${time}` : time;
}

export function fmtNumber(value, maxFraction = 2) {
  const key = `num${maxFraction}`;
  let f = cache.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, { maximumFractionDigits: maxFraction });
    cache.set(key, f);
  }
  return f.format(value);
}

/** A point's value for display: numbers in the locale, booleans as on/off. */
export function fmtValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? t("web.value.true") : t("web.value.false");
  if (typeof value === "number") {
    const abs = Math.abs(value);
    return fmtNumber(value, abs >= 1000 ? 0 : abs >= 100 ? 1 : 2);
  }
  return String(value);
}

/** "12 s", "5 min", "3 h", "2 d" from seconds. */
export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("web.age.s", { n: s });
  if (s < 3600) return t("web.age.min", { n: Math.floor(s / 60) });
  if (s < 86400) return t("web.age.h", { n: Math.floor(s / 3600) });
  return t("web.age.d", { n: Math.floor(s / 86400) });
}
