// The alarm board: every alarm not back to normal, ordered by priority
// (critical first) then newest activation, coloured by priority. It keeps
// the alarms by id; the live stream replaces them (snapshot) or upserts one
// (transition); an alarm whose state is "normal" leaves the board.

import { h, clear, frameThrottle } from "./dom.js";
import { t } from "./i18n.js";
import { fmtShort, fmtDateTime, fmtValue } from "./format.js";

export const PRIORITIES = ["critical", "high", "medium", "low"];
const RANK = { critical: 0, high: 1, medium: 2, low: 3 };
const ROLES = ["viewer", "guard", "engineer", "supervisor", "admin"];
const NEW_TRANSITIONS = new Set(["activated", "reactivated"]);

export function roleRank(role) {
  return ROLES.indexOf(role);
}

/** Whether the alarm is acknowledged ("acked" is a boolean; a timestamp is read as yes). */
export function isAcked(alarm) {
  if (typeof alarm.acked === "boolean") return alarm.acked;
  if (typeof alarm.acked === "string") return alarm.acked !== "";
  return alarm.state === "acknowledged";
}

function isShelved(alarm) {
  return alarm.state === "shelved" || Boolean(alarm.shelved_until);
}

function startedAt(alarm) {
  return Date.parse(alarm.activated || alarm.first || alarm.updated || "") || 0;
}

function compare(a, b) {
  const pa = RANK[a.priority] ?? 9;
  const pb = RANK[b.priority] ?? 9;
  if (pa !== pb) return pa - pb;
  const ta = startedAt(a);
  const tb = startedAt(b);
  if (ta !== tb) return tb - ta;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Whether the role may hide (shelve) this alarm: the alarm manager's table
 * (gateway/alarms/commands.py ROLE_PERMISSIONS) keeps fire alarms from guards
 * and engineers and critical alarms from guards. */
function mayShelve(alarm, rank) {
  if (alarm.category === "fire" && rank < 3) return false;
  if (alarm.priority === "critical" && rank < 2) return false;
  return true;
}

/** The actions a role may take on this alarm in its state (the server still decides). */
export function actionsFor(alarm, role) {
  const rank = roleRank(role);
  const out = [];
  if (rank < 1) return out; // viewer: none
  if (!isAcked(alarm)) out.push("acknowledge");
  if (isShelved(alarm)) out.push("unshelve");
  else if (!alarm.out_of_service && mayShelve(alarm, rank)) out.push("shelve");
  if (rank >= 2 && alarm.latched) out.push("reset");
  out.push("comment");
  return out;
}

export class Board {
  /** handlers: onAction(alarm, action), onChange(alarms) after each change. */
  constructor(root, handlers) {
    this.root = root;
    this.body = root.querySelector("[data-board-body]");
    this.counts = root.querySelector("[data-board-counts]");
    this.handlers = handlers;
    this.alarms = new Map();
    this.gone = new Map(); // id -> updated (ms) of alarms that left the board
    this.role = "viewer";
    this.scheduleRender = frameThrottle(() => this.render());
  }

  setRole(role) {
    this.role = role;
    this.scheduleRender();
  }

  clear() {
    this.alarms.clear();
    this.render();
  }

  /** Replace every alarm (GET /alarms or a live snapshot); returns the ids new to the board. */
  replace(list) {
    const before = this.alarms;
    this.alarms = new Map();
    this.gone.clear();
    for (const alarm of list) if (alarm.state !== "normal") this.alarms.set(alarm.id, alarm);
    this.changed();
    return [...this.alarms.values()].filter((a) => !before.has(a.id));
  }

  /** Apply one alarm (a live transition or an action's answer); returns true for a
   * new critical alarm on the board (the sound is the caller's business). */
  upsert(alarm, transition = "") {
    const known = this.alarms.has(alarm.id);
    const updated = Date.parse(alarm.updated || "") || 0;
    const old = this.alarms.get(alarm.id);
    const seen = old ? Date.parse(old.updated || "") || 0 : this.gone.get(alarm.id) || 0;
    if (updated && seen > updated) return false; // an older copy (an action's answer after the live transition)
    if (alarm.state === "normal") {
      this.gone.set(alarm.id, updated);
      if (known) {
        this.alarms.delete(alarm.id);
        this.changed();
      }
      return false;
    }
    this.gone.delete(alarm.id);
    this.alarms.set(alarm.id, alarm);
    this.changed();
    return alarm.priority === "critical" && (!known || NEW_TRANSITIONS.has(transition));
  }

  sorted() {
    return [...this.alarms.values()].sort(compare);
  }

  changed() {
    this.scheduleRender();
    this.handlers.onChange(this.alarms);
  }

  render() {
    const list = this.sorted();
    this.renderCounts(list);
    clear(this.body);
    if (list.length === 0) {
      this.body.append(
        h("tr", { class: "board-empty" }, h("td", { colspan: 8, testid: "board-empty" }, t("web.board.empty"))),
      );
      return;
    }
    for (const alarm of list) this.body.append(this.row(alarm));
  }

  renderCounts(list) {
    clear(this.counts);
    for (const p of PRIORITIES) {
      const n = list.filter((a) => a.priority === p).length;
      const unacked = list.filter((a) => a.priority === p && !isAcked(a)).length;
      this.counts.append(
        h(
          "span",
          {
            class: ["count-chip", `prio-${p}`, n === 0 && "zero", unacked > 0 && "has-unacked"],
            testid: `count-${p}`,
            title: t("web.board.count_title", { priority: t(`web.priority.${p}`), n, unacked }),
          },
          h("span", { class: "count-label" }, t(`web.priority.${p}`)),
          h("span", { class: "count-n" }, String(n)),
        ),
      );
    }
  }

  row(alarm) {
    const acked = isAcked(alarm);
    const shelved = isShelved(alarm);
    const classes = [
      "alarm-row",
      `prio-${alarm.priority}`,
      acked ? "acked" : "unacked",
      (shelved || alarm.out_of_service || alarm.state === "suppressed") && "hidden-state",
      !alarm.active && "cleared",
    ];
    return h(
      "tr",
      { class: classes, testid: "alarm-row", "data-alarm-id": alarm.id, "data-priority": alarm.priority },
      h(
        "td",
        { class: "c-prio" },
        h("span", { class: "prio-badge" }, t(`web.priority.${alarm.priority}`)),
      ),
      h(
        "td",
        { class: "c-time", title: fmtDateTime(alarm.activated || alarm.first || alarm.updated) },
        fmtShort(alarm.activated || alarm.first || alarm.updated),
      ),
      h("td", { class: "c-where" }, alarm.location || ""),
      h("td", { class: "c-device", title: alarm.device || "" }, alarm.device_name || alarm.device || alarm.source),
      h(
        "td",
        { class: "c-desc", title: alarm.description || alarm.id },
        h(
          "div",
          { class: "cell-line" },
          h("span", { class: "desc-text" }, alarm.description || alarm.rule),
          alarm.category ? h("span", { class: "tag cat" }, t(`web.category.${alarm.category}`)) : null,
          alarm.count > 1 ? h("span", { class: "tag count" }, t("web.board.times", { n: alarm.count })) : null,
          ...this.flags(alarm),
        ),
      ),
      this.valueCell(alarm),
      this.stateCell(alarm, acked),
      h("td", { class: "c-actions" }, ...this.buttons(alarm)),
    );
  }

  valueCell(alarm) {
    const unit = alarm.unit ? ` ${alarm.unit}` : "";
    const hasValue = alarm.value !== null && alarm.value !== undefined;
    const hasLimit = alarm.limit !== null && alarm.limit !== undefined;
    return h(
      "td",
      { class: "c-value" },
      hasValue ? h("span", { class: "val" }, `${fmtValue(alarm.value)}${unit}`) : null,
      hasLimit ? h("span", { class: "limit" }, t("web.board.limit", { limit: `${fmtValue(alarm.limit)}${unit}` })) : null,
    );
  }

  /** Tags after the description: what else is true of the alarm. */
  flags(alarm) {
    const flags = [];
    if (alarm.latched) flags.push(h("span", { class: "tag latched" }, t("web.flag.latched")));
    if (alarm.chattering) flags.push(h("span", { class: "tag warn" }, t("web.flag.chattering")));
    if (alarm.suppressed_by && alarm.suppressed_by.length) {
      flags.push(h("span", { class: "tag", title: alarm.suppressed_by.join(", ") }, t("web.flag.suppressed")));
    }
    return flags;
  }

  stateCell(alarm, acked) {
    let sub = null;
    if (alarm.shelved_until) {
      sub = h(
        "span",
        { class: "state-sub", title: alarm.shelve_reason || "" },
        t("web.flag.shelved_until", { time: fmtShort(alarm.shelved_until) }),
      );
    } else if (acked && alarm.acked_by) {
      sub = h(
        "span",
        { class: "state-sub", title: fmtDateTime(alarm.acked_at) },
        t("web.board.acked_by", { user: alarm.acked_by }),
      );
    }
    return h(
      "td",
      { class: "c-state", testid: "alarm-state", "data-state": alarm.state },
      h("span", { class: `state-label state-${alarm.state}` }, t(`web.state.${alarm.state}`)),
      sub,
    );
  }

  buttons(alarm) {
    return actionsFor(alarm, this.role).map((action) =>
      h(
        "button",
        {
          type: "button",
          class: ["btn", "btn-sm", action === "acknowledge" && "btn-ack"],
          testid: `alarm-${action}`,
          onclick: () => this.handlers.onAction(alarm, action),
        },
        t(`web.action.${action}`),
      ),
    );
  }
}
