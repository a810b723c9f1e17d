// The event log: newest first from GET /events, older pages with before_id,
// a type filter, and live events prepended as they arrive.

import { h, clear } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { get } from "./api.js";
import { errorText } from "./errors.js";
import { fmtShort, fmtDateTime } from "./format.js";

export const FILTERS = ["", "alarm.*", "device.*", "access.*", "notify.*", "oncall.*", "gateway.*", "driver.*"];
const PAGE = 50;
const KEEP = 500; // rows kept on screen; older ones are a "more" away
const SUMMARY_MAX = 160;

function matches(filter, type) {
  if (!filter) return true;
  if (filter.endsWith("*")) return type.startsWith(filter.slice(0, -1));
  return type === filter;
}

/** The few fields that say what happened to an alarm (its stored events carry its whole record). */
function alarmSummary(data) {
  const parts = [data.id];
  if (data.state) parts.push(tOr(`web.state.${data.state}`, data.state));
  if (data.value !== undefined && data.value !== null) parts.push(String(data.value));
  if (data.user) parts.push(data.user);
  if (data.note) parts.push(`“${data.note}”`);
  return parts.join(" · ");
}

function summary(type, data) {
  if (type.startsWith("alarm.") && data && data.id) return alarmSummary(data);
  const parts = [];
  for (const [key, value] of Object.entries(data || {})) {
    if (value === null || value === undefined || value === "") continue;
    const text = typeof value === "object" ? JSON.stringify(value) : String(value);
    parts.push(`${key}: ${text}`);
  }
  const all = parts.join(" · ");
  return all.length > SUMMARY_MAX ? `${all.slice(0, SUMMARY_MAX - 1)}…` : all;
}

export class EventLog {
  constructor(root) {
    this.root = root;
    this.list = root.querySelector("[data-events-body]");
    this.filter = root.querySelector("[data-events-filter]");
    this.more = root.querySelector("[data-events-more]");
    this.error = root.querySelector("[data-events-error]");
    this.items = [];
    this.ids = new Set();
    this.next = null;
    this.type = "";
    this.request = 0;
    this.filter.addEventListener("change", () => {
      this.type = this.filter.value;
      this.load();
    });
    this.more.addEventListener("click", () => this.load(this.next));
  }

  /** Fill the filter's options (again after a language switch). */
  renderFilter() {
    clear(this.filter);
    for (const f of FILTERS) {
      const key = f ? `web.events.filter.${f.replace(".*", "")}` : "web.events.filter.all";
      this.filter.append(h("option", { value: f, selected: f === this.type }, t(key)));
    }
  }

  clear() {
    this.items = [];
    this.ids.clear();
    this.next = null;
    this.render();
  }

  async load(beforeId = null) {
    const ticket = ++this.request;
    this.error.hidden = true;
    try {
      const page = await get("/events", { type: this.type || null, before_id: beforeId, limit: PAGE });
      if (ticket !== this.request) return;
      if (beforeId === null) {
        this.items = [];
        this.ids.clear();
      }
      for (const ev of page.items || []) this.add(ev, false);
      this.next = page.next_before_id ?? null;
    } catch (err) {
      if (ticket !== this.request) return;
      this.error.textContent = errorText(err);
      this.error.hidden = false;
    }
    this.render();
  }

  add(ev, front) {
    if (ev.id !== undefined && ev.id !== null) {
      if (this.ids.has(ev.id)) return false;
      this.ids.add(ev.id);
    }
    if (front) this.items.unshift(ev);
    else this.items.push(ev);
    return true;
  }

  /** A live event: shown on top when it passes the filter. */
  prepend(ev) {
    if (!matches(this.type, ev.type) || !this.add(ev, true)) return;
    if (this.items.length > KEEP) {
      for (const old of this.items.splice(KEEP)) this.ids.delete(old.id);
      this.next = this.items[this.items.length - 1].id ?? this.next;
    }
    this.list.prepend(this.row(ev));
    while (this.list.children.length > KEEP) this.list.lastElementChild.remove();
  }

  render() {
    clear(this.list);
    if (this.items.length === 0) {
      this.list.append(h("li", { class: "empty" }, t("web.events.empty")));
    }
    for (const ev of this.items) this.list.append(this.row(ev));
    this.more.hidden = this.next === null || this.next === undefined;
  }

  row(ev) {
    const family = ev.type.split(".")[0];
    return h(
      "li",
      { class: ["ev", `ev-${family}`], testid: "event-row", "data-event-id": ev.id },
      h("time", { class: "ev-time", datetime: ev.ts, title: fmtDateTime(ev.ts) }, fmtShort(ev.ts)),
      h("span", { class: "ev-type", title: ev.type }, tOr(`web.event.${ev.type}`, ev.type)),
      h("span", { class: "ev-source" }, ev.source),
      h("span", { class: "ev-data", title: JSON.stringify(ev.data || {}) }, summary(ev.type, ev.data)),
    );
  }
}
