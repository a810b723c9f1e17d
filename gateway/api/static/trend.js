// A point's trend as an SVG line, drawn here (no chart library): the value,
// a min/max band when the history is aggregated, time ticks on whole local
// hours/days of the site's zone, and a crosshair that reads out the value.

import { h, s, clear } from "./dom.js";
import { t } from "./i18n.js";
import { get } from "./api.js";
import { errorText } from "./errors.js";
import { fmtAxis, fmtDateTime, fmtValue, zoneOffsetMs } from "./format.js";
import { pointLabel } from "./overview.js";

export const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400 };
const STEPS_S = [60, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400];
const M = { left: 56, right: 14, top: 12, bottom: 26 };

function toNumber(v) {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "boolean") return v ? 1 : 0;
  return null;
}

/** Round numbers for the value axis: about n ticks covering [lo, hi]. */
export function niceTicks(lo, hi, n = 5) {
  if (hi - lo < 1e-9) {
    // A flat line: give it room above and below instead of a zero-height axis.
    const pad = Math.max(Math.abs(hi) * 0.05, 1);
    lo -= pad;
    hi += pad;
  }
  const span = hi - lo;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((st) => span / st <= n) || 10 * mag;
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(Number(v.toFixed(10)) || 0); // no "-0"
  return { ticks, lo: start, hi: end };
}

/** Time ticks aligned to the site's local clock (whole hours, midnights). */
export function timeTicks(since, until, width) {
  const spanS = (until - since) / 1000;
  const want = Math.max(2, Math.floor(width / 110));
  const step = STEPS_S.find((st) => spanS / st <= want) || STEPS_S[STEPS_S.length - 1];
  const offset = zoneOffsetMs(new Date(since));
  const stepMs = step * 1000;
  const ticks = [];
  let local = Math.ceil((since + offset) / stepMs) * stepMs;
  for (; local - offset <= until; local += stepMs) ticks.push(local - offset);
  return { ticks, step };
}

export class Trend {
  constructor(root) {
    this.root = root;
    this.title = root.querySelector("[data-trend-title]");
    this.readout = root.querySelector("[data-trend-readout]");
    this.chart = root.querySelector("[data-trend-chart]");
    this.status = root.querySelector("[data-trend-status]");
    this.buttons = [...root.querySelectorAll("[data-range]")];
    this.point = null;
    this.device = null;
    this.range = "1h";
    this.data = null;
    this.request = 0;
    for (const b of this.buttons) b.addEventListener("click", () => this.setRange(b.dataset.range));
    new ResizeObserver(() => this.draw()).observe(this.chart);
  }

  show(point, device) {
    this.point = point;
    this.device = device;
    this.load();
  }

  clear() {
    this.point = null;
    this.data = null;
    this.renderHeader();
    this.draw();
  }

  setRange(range) {
    if (!RANGES[range]) return;
    this.range = range;
    this.load();
  }

  renderHeader() {
    for (const b of this.buttons) b.classList.toggle("active", b.dataset.range === this.range);
    if (!this.point) {
      this.title.textContent = t("web.trend.pick");
      this.readout.textContent = "";
      return;
    }
    const who = this.device ? this.device.name || this.device.id : this.point.device;
    const unit = this.point.unit ? ` (${this.point.unit})` : "";
    this.title.textContent = `${who} · ${pointLabel(this.point)}${unit}`;
    this.title.title = this.point.point;
  }

  async load() {
    this.renderHeader();
    if (!this.point) return;
    const until = new Date();
    const since = new Date(until.getTime() - RANGES[this.range] * 1000);
    const ticket = ++this.request;
    this.status.textContent = t("web.trend.loading");
    this.status.hidden = false;
    try {
      const answer = await get(`/points/${encodeURIComponent(this.point.point)}/history`, { since, until });
      if (ticket !== this.request) return; // a newer request won
      // The window asked for, as numbers (the answer's own since/until are ISO text).
      this.data = { ...answer, since: since.getTime(), until: until.getTime() };
      this.status.hidden = true;
    } catch (err) {
      if (ticket !== this.request) return;
      this.data = null;
      this.status.textContent = errorText(err);
      this.status.hidden = false;
    }
    this.draw();
  }

  rows() {
    if (!this.data) return [];
    return (this.data.rows || [])
      .map((r) => ({ ts: Date.parse(r.ts), v: toNumber(r.value), min: toNumber(r.min), max: toNumber(r.max) }))
      .filter((r) => !Number.isNaN(r.ts) && r.v !== null)
      .sort((a, b) => a.ts - b.ts);
  }

  draw() {
    clear(this.chart);
    const width = Math.max(200, this.chart.clientWidth);
    const height = Math.max(140, this.chart.clientHeight);
    if (!this.data) return;
    const rows = this.rows();
    if (rows.length === 0) {
      this.status.textContent = t("web.trend.no_data");
      this.status.hidden = false;
      return;
    }
    const { since, until } = this.data;
    let lo = Infinity;
    let hi = -Infinity;
    for (const r of rows) {
      lo = Math.min(lo, r.v, r.min ?? r.v);
      hi = Math.max(hi, r.v, r.max ?? r.v);
    }
    const y = niceTicks(lo, hi);
    const pw = width - M.left - M.right;
    const ph = height - M.top - M.bottom;
    const X = (ts) => M.left + ((ts - since) / (until - since)) * pw;
    const Y = (v) => M.top + ph - ((v - y.lo) / (y.hi - y.lo)) * ph;
    const svg = s("svg", {
      class: "trend-svg",
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      "aria-label": this.title.textContent,
    });
    for (const v of y.ticks) {
      svg.append(
        s("line", { class: "grid", x1: M.left, x2: width - M.right, y1: Y(v), y2: Y(v) }),
        s("text", { class: "axis-label", x: M.left - 6, y: Y(v) + 4, "text-anchor": "end" }, fmtValue(v)),
      );
    }
    const xt = timeTicks(since, until, pw);
    let lastDay = null;
    for (const ts of xt.ticks) {
      const day = fmtAxis(new Date(ts), true).slice(0, 5);
      const withDate = xt.step >= 86400 || (lastDay !== null && day !== lastDay);
      lastDay = day;
      svg.append(
        s("line", { class: "grid", x1: X(ts), x2: X(ts), y1: M.top, y2: M.top + ph }),
        s("text", { class: "axis-label", x: X(ts), y: height - 8, "text-anchor": "middle" }, fmtAxis(new Date(ts), withDate)),
      );
    }
    // Break the line where samples are far apart (the device was silent).
    const gap = Math.max((this.data.resolution_s || 0) * 3000, ((until - since) / Math.max(rows.length, 1)) * 5);
    const segments = [];
    let seg = [];
    for (const r of rows) {
      if (seg.length && r.ts - seg[seg.length - 1].ts > gap) {
        segments.push(seg);
        seg = [];
      }
      seg.push(r);
    }
    if (seg.length) segments.push(seg);
    for (const part of segments) {
      if (part.some((r) => r.min !== null && r.max !== null)) {
        const top = part.map((r) => `${X(r.ts).toFixed(1)},${Y(r.max ?? r.v).toFixed(1)}`);
        const bottom = part.map((r) => `${X(r.ts).toFixed(1)},${Y(r.min ?? r.v).toFixed(1)}`).reverse();
        svg.append(s("polygon", { class: "band", points: [...top, ...bottom].join(" ") }));
      }
      const d = part.map((r, i) => `${i ? "L" : "M"}${X(r.ts).toFixed(1)},${Y(r.v).toFixed(1)}`).join("");
      svg.append(s("path", { class: "line", d }));
      // The segment's last sample as a dot: a few seconds of data in a 7-day window still show.
      const last = part[part.length - 1];
      svg.append(s("circle", { class: "dot", cx: X(last.ts), cy: Y(last.v), r: 2.5 }));
    }
    svg.append(s("rect", { class: "frame", x: M.left, y: M.top, width: pw, height: ph }));
    const cross = s("line", { class: "cross", x1: 0, x2: 0, y1: M.top, y2: M.top + ph, visibility: "hidden" });
    const marker = s("circle", { class: "marker", r: 3.5, cx: 0, cy: 0, visibility: "hidden" });
    svg.append(cross, marker);
    svg.addEventListener("pointermove", (ev) => {
      const box = svg.getBoundingClientRect();
      const px = ((ev.clientX - box.left) / box.width) * width;
      const ts = since + ((px - M.left) / pw) * (until - since);
      let best = rows[0];
      for (const r of rows) if (Math.abs(r.ts - ts) < Math.abs(best.ts - ts)) best = r;
      cross.setAttribute("x1", X(best.ts));
      cross.setAttribute("x2", X(best.ts));
      marker.setAttribute("cx", X(best.ts));
      marker.setAttribute("cy", Y(best.v));
      cross.setAttribute("visibility", "visible");
      marker.setAttribute("visibility", "visible");
      const band = best.min !== null && best.max !== null ? ` (${fmtValue(best.min)} – ${fmtValue(best.max)})` : "";
      this.readout.textContent = `${fmtDateTime(best.ts)}  ${fmtValue(best.v)}${band}`;
    });
    svg.addEventListener("pointerleave", () => {
      cross.setAttribute("visibility", "hidden");
      marker.setAttribute("visibility", "hidden");
      this.readout.textContent = "";
    });
    this.chart.append(svg);
    this.chart.append(h("span", { class: "sr-only" }, t("web.trend.rows", { n: rows.length })));
  }
}
