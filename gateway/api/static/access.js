// The access panel (门禁): the doors and their state, passages as they
// happen (access.granted / access.denied from the live stream), a search
// over GET /access/passages, the day's report, and the visitor-pass form,
// whose QR code is shown once (the gateway keeps only a hash of its token).
//
// The panel builds its own markup with data-i18n keys, so the page's
// applyStatic() translates it with everything else on a language switch.

import { h, clear } from "./dom.js";
import { t, tOr, applyStatic } from "./i18n.js";
import { get, post } from "./api.js";
import { errorText } from "./errors.js";
import { fmtShort, fmtDateTime, siteParts, zoneOffsetMs } from "./format.js";
import { roleRank } from "./board.js";

const LIVE_KEEP = 50;
const REPORT_REFRESH_MS = 3000; // today's report follows the passages, at most this often
const PAGE = 50;
const GUARD = 1;
const REASONS = [
  "unknown", "blacklisted", "disabled", "not_yet_valid", "expired", "used_up", "no_permission",
  "out_of_schedule", "antipassback", "no_entry", "uncertified", "out_of_hours", "read_error", "controller",
];
const DOOR_ALARMS = { "door.forced": "forced", "door.held_open": "held", "door.held_prealarm": "held" };

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Today in the site's time zone, as YYYY-MM-DD. */
export function siteToday() {
  const p = siteParts(new Date());
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
}

/** [start, end) of a site day as Dates (the zone's offset at that midnight). */
function dayBounds(day) {
  const [y, m, d] = day.split("-").map(Number);
  const local = (dd) => {
    const guess = Date.UTC(y, m - 1, dd);
    return new Date(guess - zoneOffsetMs(new Date(guess)));
  };
  return [local(d), local(d + 1)];
}

/** A passage from the API or a live event, in one shape for the rows. */
function fromEvent(ev) {
  const d = ev.data || {};
  return {
    id: ev.id,
    ts: ev.ts,
    door: d.door || ev.source,
    direction: d.direction,
    holder: d.holder,
    credential: d.credential,
    card: d.card || d.plate,
    granted: ev.type === "access.granted",
    reason: d.reason || (ev.type === "access.granted" ? "granted" : ""),
  };
}

function fromPassage(p) {
  return {
    id: p.id,
    ts: p.ts,
    door: p.door,
    direction: p.direction,
    holder: p.holder,
    credential: p.credential_id,
    card: p.plate || p.card_masked,
    granted: p.granted,
    reason: p.reason,
  };
}

function reasonText(reason) {
  return tOr(`web.access.reason.${reason}`, reason || "");
}

function field(labelKey, control) {
  return h("label", { class: "field" }, h("span", { "data-i18n": labelKey }), control);
}

function section(titleKey, testid, ...children) {
  return h("section", { class: "acc-box", testid }, h("h3", { "data-i18n": titleKey }), ...children);
}

export class AccessPanel {
  constructor(root) {
    this.root = root;
    this.role = "viewer";
    this.doors = [];
    this.doorState = new Map(); // door id -> {open, forced, held}
    this.live = [];
    this.results = [];
    this.next = null;
    this.report = null;
    this.reportTimer = null;
    this.build();
  }

  // -- markup -----------------------------------------------------------------------------

  build() {
    this.doorList = h("div", { class: "acc-doors", testid: "access-doors" });
    this.liveList = h("ol", { class: "acc-list", testid: "access-live" });
    const live = section("web.access.live.title", "access-live-box", this.liveList);

    this.searchForm = h(
      "form",
      { class: "acc-form acc-search", testid: "access-search" },
      field("web.access.search.door", (this.doorSelect = h("select", { name: "door" }))),
      field("web.access.search.credential", h("input", { name: "credential", maxlength: 64 })),
      field("web.access.search.day", h("input", { name: "day", type: "date" })),
      field("web.access.search.result", (this.resultSelect = h("select", { name: "result" }))),
      field("web.access.search.reason", (this.reasonSelect = h("select", { name: "reason" }))),
      h("button", { type: "submit", class: "btn btn-primary", "data-i18n": "web.access.search.submit" }),
    );
    this.searchError = h("p", { class: "form-error", hidden: true });
    this.resultList = h("ol", { class: "acc-list", testid: "access-results" });
    this.more = h("button", {
      type: "button",
      class: "btn btn-block btn-quiet",
      hidden: true,
      testid: "access-more",
      "data-i18n": "web.access.search.more",
    });
    this.searchBox = section(
      "web.access.search.title", "access-search-box", this.searchForm, this.searchError, this.resultList, this.more,
    );

    this.reportDay = h("input", { type: "date", name: "day", testid: "access-report-day" });
    this.reportBody = h("div", { class: "acc-report", testid: "access-report" });
    this.reportBox = section(
      "web.access.report.title", "access-report-box", field("web.access.report.day", this.reportDay), this.reportBody,
    );

    this.visitorForm = h(
      "form",
      { class: "acc-form", testid: "visitor-form" },
      field("web.access.visitor.holder", h("input", { name: "holder", required: true, maxlength: 128, testid: "visitor-holder" })),
      field("web.access.visitor.host", h("input", { name: "host", required: true, maxlength: 128, testid: "visitor-host" })),
      field("web.access.visitor.hours", h("input", { name: "hours", type: "number", min: 0.5, max: 744, step: 0.5, value: 4, testid: "visitor-hours" })),
      field("web.access.visitor.uses", h("input", { name: "uses", type: "number", min: 1, max: 1000, step: 1, testid: "visitor-uses" })),
      h("button", { type: "submit", class: "btn btn-primary", testid: "visitor-submit", "data-i18n": "web.access.visitor.submit" }),
    );
    this.visitorError = h("p", { class: "form-error", role: "alert", hidden: true, testid: "visitor-error" });
    this.visitorResult = h("div", { class: "acc-pass", testid: "visitor-pass", hidden: true });
    this.visitorBox = section(
      "web.access.visitor.title", "visitor-box", this.visitorForm, this.visitorError, this.visitorResult,
    );
    this.note = h("p", { class: "empty small", "data-i18n": "web.access.guard_only", hidden: true });

    clear(this.root).append(
      h("header", { class: "panel-head" }, h("h2", { "data-i18n": "web.access.title" }), this.doorList),
      h("div", { class: "panel-body acc-body" }, live, this.searchBox, this.reportBox, this.visitorBox, this.note),
    );
    this.searchForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.search();
    });
    this.more.addEventListener("click", () => this.search(this.next));
    this.reportDay.addEventListener("change", () => this.loadReport());
    this.visitorForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.issuePass();
    });
  }

  setRole(role) {
    this.role = role;
    const guard = roleRank(role) >= GUARD;
    this.searchBox.hidden = !guard;
    this.reportBox.hidden = !guard;
    this.visitorBox.hidden = !guard;
    this.note.hidden = guard;
  }

  // -- data -------------------------------------------------------------------------------

  async load() {
    if (!this.reportDay.value) this.reportDay.value = siteToday();
    const jobs = [this.loadDoors()];
    if (roleRank(this.role) >= GUARD) jobs.push(this.loadRecent(), this.loadReport());
    await Promise.all(jobs);
  }

  async loadDoors() {
    try {
      this.doors = await get("/access/doors");
      for (const d of this.doors) {
        if (d.state) this.doorState.set(d.id, { open: d.state.open, forced: d.state.forced, held: d.state.held });
      }
    } catch {
      this.doors = []; // access control not running on this site: no doors to show
    }
    this.render();
  }

  async loadRecent() {
    try {
      const page = await get("/access/passages", { limit: LIVE_KEEP });
      const known = new Set(this.live.map((p) => p.id));
      for (const p of (page.items || []).reverse()) if (!known.has(p.id)) this.live.unshift(fromPassage(p));
      this.live.sort((a, b) => Date.parse(b.ts) - Date.parse(a.ts));
      this.live.splice(LIVE_KEEP);
    } catch {
      // the live rows still come from the stream
    }
    this.renderLive();
  }

  async search(beforeId = null) {
    const data = new FormData(this.searchForm);
    const params = {
      door: data.get("door") || null,
      credential: String(data.get("credential") || "").trim() || null,
      reason: data.get("reason") || null,
      granted: data.get("result") || null,
      before_id: beforeId,
      limit: PAGE,
    };
    const day = data.get("day");
    if (day) [params.since, params.until] = dayBounds(String(day));
    this.searchError.hidden = true;
    try {
      const page = await get("/access/passages", params);
      if (beforeId === null) this.results = [];
      this.results.push(...(page.items || []).map(fromPassage));
      this.next = page.next_before_id ?? null;
    } catch (err) {
      this.searchError.textContent = errorText(err);
      this.searchError.hidden = false;
    }
    this.renderResults();
  }

  async loadReport() {
    try {
      this.report = await get("/access/report", { day: this.reportDay.value || null });
      this.reportError = null;
    } catch (err) {
      this.report = null;
      this.reportError = err;
    }
    this.renderReport();
  }

  async issuePass() {
    const data = new FormData(this.visitorForm);
    const hours = Number(data.get("hours"));
    const uses = Number(data.get("uses"));
    const body = {
      holder: String(data.get("holder") || "").trim(),
      host: String(data.get("host") || "").trim(),
      hours: hours > 0 ? hours : null,
      uses: uses >= 1 ? uses : null,
    };
    this.visitorError.hidden = true;
    const submit = this.visitorForm.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      this.showPass(await post("/access/visitors", body));
      this.visitorForm.reset();
    } catch (err) {
      this.visitorError.textContent = errorText(err);
      this.visitorError.hidden = false;
    } finally {
      submit.disabled = false;
    }
  }

  /** The pass just issued: its QR code as an image (a data: URL, which the
   * page's CSP allows for images), its token, and a download link. */
  showPass(answer) {
    const url = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(answer.qr_svg)}`;
    const cred = answer.credential;
    clear(this.visitorResult).append(
      h("img", { class: "acc-qr", src: url, alt: t("web.access.visitor.qr_alt"), testid: "visitor-qr" }),
      h(
        "div",
        { class: "acc-pass-text" },
        h("strong", {}, cred.holder),
        h("span", {}, t("web.access.visitor.valid_until", { time: fmtDateTime(cred.valid_until) })),
        h("code", { class: "acc-token", testid: "visitor-token" }, answer.token),
        h("span", { class: "warn small" }, t("web.access.visitor.once")),
        h("a", { href: url, download: `${cred.id}.svg`, class: "btn btn-sm" }, t("web.access.visitor.download")),
      ),
    );
    this.visitorResult.hidden = false;
  }

  clear() {
    clearTimeout(this.reportTimer);
    this.reportTimer = null;
    this.live = [];
    this.results = [];
    this.next = null;
    this.report = null;
    this.doorState.clear();
    clear(this.visitorResult);
    this.visitorResult.hidden = true;
    this.render();
  }

  /** A live event from the stream: passages, and what doors report. */
  onEvent(ev) {
    if (ev.type === "access.granted" || ev.type === "access.denied") {
      this.live.unshift(fromEvent(ev));
      this.live.splice(LIVE_KEEP);
      this.renderLive();
      this.refreshReportSoon();
      return;
    }
    const door = (ev.data && ev.data.door) || ev.source;
    const state = this.doorState.get(door) || { open: null, forced: false, held: false };
    if (ev.type === "door.contact") state.open = Boolean(ev.data && ev.data.open);
    else if (DOOR_ALARMS[ev.type]) state[DOOR_ALARMS[ev.type]] = true;
    else if (ev.type === "door.closed") Object.assign(state, { open: false, forced: false, held: false });
    else return;
    this.doorState.set(door, state);
    this.renderDoors();
  }

  /** Today's report is read again a little after a passage (one read for a burst). */
  refreshReportSoon() {
    if (this.reportTimer || this.reportBox.hidden || this.reportDay.value !== siteToday()) return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = null;
      this.loadReport();
    }, REPORT_REFRESH_MS);
  }

  // -- rendering --------------------------------------------------------------------------

  render() {
    this.renderOptions();
    this.renderDoors();
    this.renderLive();
    this.renderResults();
    this.renderReport();
    applyStatic(this.root);
  }

  renderOptions() {
    const keep = (sel) => sel.value;
    const door = keep(this.doorSelect);
    clear(this.doorSelect).append(h("option", { value: "" }, t("web.access.search.any")));
    for (const d of this.doors) this.doorSelect.append(h("option", { value: d.id, selected: d.id === door }, d.name || d.id));
    const result = keep(this.resultSelect);
    clear(this.resultSelect);
    for (const [value, key] of [["", "any"], ["true", "granted"], ["false", "denied"]]) {
      this.resultSelect.append(h("option", { value, selected: value === result }, t(`web.access.search.${key}`)));
    }
    const reason = keep(this.reasonSelect);
    clear(this.reasonSelect).append(h("option", { value: "" }, t("web.access.search.any")));
    for (const r of REASONS) this.reasonSelect.append(h("option", { value: r, selected: r === reason }, reasonText(r)));
  }

  renderDoors() {
    clear(this.doorList);
    for (const d of this.doors) {
      const s = this.doorState.get(d.id) || {};
      const state = s.forced ? "forced" : s.held ? "held" : s.open === true ? "open" : s.open === false ? "closed" : "unknown";
      this.doorList.append(
        h(
          "span",
          { class: ["acc-door", `door-${state}`], testid: "access-door", "data-door": d.id, title: d.location || "" },
          d.name || d.id,
          h("span", { class: "acc-door-state" }, t(`web.access.door.${state}`)),
        ),
      );
    }
  }

  row(p, testid) {
    const who = p.holder || p.credential || t("web.access.unknown_holder");
    return h(
      "li",
      { class: ["acc-row", p.granted ? "granted" : "denied"], testid, "data-passage-id": p.id },
      h("time", { class: "acc-time", datetime: p.ts, title: fmtDateTime(p.ts) }, fmtShort(p.ts)),
      h("span", { class: "acc-dir", title: p.direction || "" }, p.direction === "out" ? "←" : "→"),
      h("span", { class: "acc-doorname" }, p.door),
      h("span", { class: "acc-who" }, who),
      h("span", { class: "acc-card" }, p.card || ""),
      h("span", { class: "acc-result" }, p.granted ? t("web.access.granted") : reasonText(p.reason)),
    );
  }

  renderLive() {
    clear(this.liveList);
    if (this.live.length === 0) this.liveList.append(h("li", { class: "empty" }, t("web.access.live.empty")));
    for (const p of this.live) this.liveList.append(this.row(p, "access-live-row"));
  }

  renderResults() {
    clear(this.resultList);
    for (const p of this.results) this.resultList.append(this.row(p, "access-result-row"));
    this.more.hidden = this.next === null || this.next === undefined;
  }

  renderReport() {
    clear(this.reportBody);
    if (this.reportError) {
      this.reportBody.append(h("p", { class: "form-error" }, errorText(this.reportError)));
      return;
    }
    const r = this.report;
    if (!r) return;
    const figure = (key, n, testid) =>
      h("div", { class: "acc-figure", testid }, h("span", { class: "acc-n" }, String(n)), h("span", {}, t(key)));
    const inside = (counts) => Object.values(counts || {}).reduce((a, b) => a + b, 0);
    this.reportBody.append(
      h(
        "div",
        { class: "acc-figures" },
        figure("web.access.report.entries", r.entries, "report-entries"),
        figure("web.access.report.exits", r.exits, "report-exits"),
        figure("web.access.report.denied", r.denied, "report-denied"),
        figure("web.access.report.vehicles", inside(r.vehicles_inside), "report-vehicles"),
        figure("web.access.report.people", inside(r.people_inside), "report-people"),
      ),
      h(
        "table",
        { class: "acc-table" },
        h(
          "thead",
          {},
          h("tr", {}, ...["door", "entries", "exits", "denied"].map((k) => h("th", {}, t(`web.access.report.${k}`)))),
        ),
        h("tbody", {}, ...r.doors.map((d) => h("tr", {}, h("td", {}, this.doorName(d.door)), h("td", {}, String(d.entries)), h("td", {}, String(d.exits)), h("td", {}, String(d.denied))))),
      ),
      h(
        "ul",
        { class: "acc-denials" },
        ...Object.entries(r.denials || {}).map(([reason, n]) => h("li", {}, `${reasonText(reason)}: ${n}`)),
      ),
    );
  }

  doorName(id) {
    const d = this.doors.find((x) => x.id === id);
    return (d && d.name) || id;
  }
}
