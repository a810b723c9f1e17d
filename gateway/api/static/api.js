// The JSON API under /api/v1: the session cookie travels by itself; unsafe
// calls carry the session's CSRF token (kept in memory only, never stored).

const BASE = "/api/v1";
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

let csrfToken = null;
let onUnauthorized = () => {};

/** A refused or failed call: HTTP status (0 = network) and the server's detail. */
export class ApiError extends Error {
  constructor(status, detail, retryAfter = null) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

export function setCsrf(token) {
  csrfToken = token || null;
}

/** Called when a call answers 401 (the session expired or was revoked). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** "?a=1&b=x&b=y" from an object; arrays repeat the key, empty values are left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (v === null || v === undefined || v === "") continue;
      q.append(key, v instanceof Date ? v.toISOString() : String(v));
    }
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

function detailOf(body) {
  if (!body || body.detail === undefined) return "";
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) {
    // FastAPI 422: [{loc: [...], msg: "..."}]
    return body.detail
      .map((d) => [Array.isArray(d.loc) ? d.loc.slice(1).join(".") : "", d.msg].filter(Boolean).join(": "))
      .join("; ");
  }
  return JSON.stringify(body.detail);
}

export async function api(method, path, body = undefined, { noAuthRedirect = false } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (UNSAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (err) {
    throw new ApiError(0, String(err && err.message ? err.message : err));
  }
  if (res.status === 204) return null;
  let data = null;
  const type = res.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    if (res.status === 401 && !noAuthRedirect) onUnauthorized();
    const retry = res.headers.get("Retry-After");
    throw new ApiError(res.status, detailOf(data), retry === null ? null : Number(retry));
  }
  return data;
}

export const get = (path, params) => api("GET", path + query(params));
export const post = (path, body, opts) => api("POST", path, body, opts);
