// The site overview: devices grouped by location, each with its online state
// and its points' latest values. Readings from the live stream update single
// cells; a value goes grey when its quality is not good, when it is older
// than STALE_S, or when its device is offline.

import { h, clear, frameThrottle } from "./dom.js";
import { t } from "./i18n.js";
import { fmtValue, fmtAge, fmtDateTime } from "./format.js";

const STALE_S = 300;
const PRIORITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };

function pointLabel(p) {
  if (p.name) return p.name;
  const dot = p.point.indexOf(".");
  return dot >= 0 ? p.point.slice(dot + 1) : p.point;
}

export class Overview {
  /** handlers: onPoint(pointOut, device) when the operator opens a point's trend. */
  constructor(root, handlers) {
    this.root = root;
    this.list = root.querySelector("[data-overview-body]");
    this.summary = root.querySelector("[data-overview-summary]");
    this.handlers = handlers;
    this.devices = [];
    this.points = new Map(); // point -> PointOut
    this.cells = new Map(); // point -> {row, value, age}
    this.skewMs = 0; // browser clock minus gateway clock, estimated from age_s
    this.selected = null;
    this.cards = new Map(); // device -> card element
    this.alarmed = { devices: new Map(), points: new Map() }; // id -> highest priority on the board
    this.scheduleRender = frameThrottle(() => this.render());
  }

  /** Mark devices and points that have alarms on the board (highest priority wins). */
  setAlarms(alarms) {
    const devices = new Map();
    const points = new Map();
    const higher = (map, key, prio) => {
      if (!map.has(key) || PRIORITY_RANK[prio] < PRIORITY_RANK[map.get(key)]) map.set(key, prio);
    };
    for (const a of alarms.values()) {
      if (a.out_of_service || a.state === "shelved" || a.state === "suppressed") continue;
      higher(devices, a.device, a.priority);
      higher(points, a.source, a.priority);
    }
    this.alarmed = { devices, points };
    this.markAlarms();
  }

  markAlarms() {
    for (const [device, card] of this.cards) {
      const prio = this.alarmed.devices.get(device);
      for (const p of Object.keys(PRIORITY_RANK)) card.classList.toggle(`alarm-${p}`, p === prio);
    }
    for (const [point, cell] of this.cells) {
      const prio = this.alarmed.points.get(point);
      for (const p of Object.keys(PRIORITY_RANK)) cell.row.classList.toggle(`alarm-${p}`, p === prio);
    }
  }

  setDevices(devices) {
    this.devices = devices;
    this.points.clear();
    for (const d of devices) for (const p of d.points || []) this.learn(p);
    this.render();
  }

  clear() {
    this.setDevices([]);
  }

  learn(p) {
    this.points.set(p.point, p);
    if (p.ts && typeof p.age_s === "number") {
      this.skewMs = Date.now() - Date.parse(p.ts) - p.age_s * 1000;
    }
  }

  device(id) {
    return this.devices.find((d) => d.id === id);
  }

  ageOf(p) {
    if (!p.ts) return null;
    return (Date.now() - this.skewMs - Date.parse(p.ts)) / 1000;
  }

  isStale(p, device) {
    if (p.value === null || p.value === undefined) return true;
    if (device && device.online === false) return true;
    if (p.quality && p.quality !== "good") return true;
    const age = this.ageOf(p);
    return age !== null && age > STALE_S;
  }

  applyReadings(readings) {
    for (const r of readings) {
      const prev = this.points.get(r.point);
      this.learn(prev ? { ...prev, ...r, name: r.name || prev.name, unit: r.unit ?? prev.unit } : r);
      this.updateCell(r.point);
    }
  }

  /** device.online / device.offline events change a card without a refetch. */
  applyEvent(ev) {
    if (ev.type !== "device.online" && ev.type !== "device.offline") return false;
    const d = this.device(ev.source);
    if (!d) return false;
    d.online = ev.type === "device.online";
    d.offline_reason = d.online ? null : (ev.data && (ev.data.reason || ev.data.error)) || d.offline_reason;
    d.since = ev.ts;
    this.scheduleRender();
    return true;
  }

  select(point) {
    this.selected = point;
    for (const [p, cell] of this.cells) cell.row.classList.toggle("selected", p === point);
  }

  updateCell(point) {
    const cell = this.cells.get(point);
    const p = this.points.get(point);
    if (!cell || !p) return;
    cell.value.textContent = fmtValue(p.value);
    cell.age.textContent = fmtAge(this.ageOf(p));
    cell.row.classList.toggle("stale", this.isStale(p, this.device(p.device)));
    cell.row.classList.toggle("bad", p.quality === "bad");
    cell.row.title = `${p.point} · ${fmtDateTime(p.ts)} · ${t(`web.quality.${p.quality || "good"}`)}`;
  }

  /** Refresh ages (and staleness) without rebuilding. */
  tick() {
    for (const point of this.cells.keys()) this.updateCell(point);
  }

  groups() {
    const byLoc = new Map();
    for (const d of this.devices) {
      const key = d.location || "";
      if (!byLoc.has(key)) byLoc.set(key, []);
      byLoc.get(key).push(d);
    }
    return [...byLoc.entries()].sort(([a], [b]) => (a === "" ? 1 : b === "" ? -1 : a.localeCompare(b)));
  }

  render() {
    clear(this.list);
    this.cells.clear();
    this.cards.clear();
    const offline = this.devices.filter((d) => d.online === false).length;
    this.summary.textContent = t("web.overview.summary", { devices: this.devices.length, offline });
    if (this.devices.length === 0) {
      this.list.append(h("p", { class: "empty" }, t("web.overview.empty")));
      return;
    }
    for (const [location, devices] of this.groups()) {
      const down = devices.filter((d) => d.online === false).length;
      this.list.append(
        h(
          "section",
          { class: "loc-group", testid: "location-group" },
          h(
            "h3",
            { class: "loc-title" },
            h("span", {}, location || t("web.overview.no_location")),
            h(
              "span",
              { class: ["loc-count", down > 0 && "has-down"] },
              t("web.overview.loc_count", { n: devices.length, down }),
            ),
          ),
          h("div", { class: "dev-grid" }, ...devices.map((d) => this.card(d))),
        ),
      );
    }
    for (const point of this.cells.keys()) this.updateCell(point);
    this.markAlarms();
  }

  card(d) {
    const state = d.maintenance ? "maintenance" : d.online === null || d.online === undefined ? "unknown" : d.online ? "online" : "offline";
    const points = (d.points || []).map((p) => this.points.get(p.point) || p);
    const card = h(
      "article",
      { class: ["dev-card", `dev-${state}`], testid: "device-card", "data-device": d.id },
      h(
        "header",
        { class: "dev-head", title: d.offline_reason || d.id },
        h("span", { class: "dot" }),
        h("span", { class: "dev-name" }, d.name || d.id),
        h("span", { class: "dev-state" }, t(`web.device.${state}`)),
      ),
      points.length
        ? h("ul", { class: "pt-list" }, ...points.map((p) => this.pointRow(p, d)))
        : h("p", { class: "empty small" }, t("web.overview.no_points")),
    );
    this.cards.set(d.id, card);
    return card;
  }

  pointRow(p, d) {
    const value = h("span", { class: "pt-val" });
    const age = h("span", { class: "pt-age" });
    const open = () => this.handlers.onPoint(this.points.get(p.point) || p, d);
    const row = h(
      "li",
      {
        class: ["pt", p.point === this.selected && "selected"],
        testid: "point",
        "data-point": p.point,
        tabindex: 0,
        role: "button",
        onclick: open,
        onkeydown: (ev) => {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            open();
          }
        },
      },
      h("span", { class: "pt-name", title: p.description || p.point }, pointLabel(p)),
      value,
      h("span", { class: "pt-unit" }, p.unit || ""),
      age,
    );
    this.cells.set(p.point, { row, value, age });
    return row;
  }
}

export { pointLabel };
