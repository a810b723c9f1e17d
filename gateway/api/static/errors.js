// What an operator reads when a call fails: a translated sentence for the
// HTTP status, with the server's (English, machine-facing) detail appended.

import { t } from "./i18n.js";

const KNOWN = new Set([400, 401, 403, 404, 409, 422, 429, 503]);

export function errorText(err) {
  const status = err && typeof err.status === "number" ? err.status : -1;
  const detail = (err && (err.detail || err.message)) || "";
  if (status === 0) return t("web.error.network");
  if (status === 429) {
    const s = Number.isFinite(err.retryAfter) ? err.retryAfter : 60;
    return t("web.error.429", { s });
  }
  if (KNOWN.has(status)) {
    const head = t(`web.error.${status}`);
    return detail ? `${head} (${detail})` : head;
  }
  if (status > 0) return t("web.error.other", { status, detail });
  return t("web.error.unexpected", { detail: String(detail) });
}
