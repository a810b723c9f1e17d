// The operator's actions on one alarm, each through a small dialog (a note,
// or a reason and a duration for shelving). A refusal (403 role, 409 state)
// stays in the dialog, in words, so the operator sees why.

import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { post } from "./api.js";
import { errorText } from "./errors.js";
import { fmtValue } from "./format.js";

export const SHELVE_MINUTES = [15, 30, 60, 120, 240, 480, 720, 1440];

const PATHS = {
  acknowledge: "acknowledge",
  reset: "reset",
  shelve: "shelve",
  unshelve: "unshelve",
  comment: "comment",
};

export class ActionDialog {
  /** handlers: onDone(alarmOut) with the server's answer. */
  constructor(dialog, handlers) {
    this.dialog = dialog;
    this.form = dialog.querySelector("form");
    this.title = dialog.querySelector("[data-dialog-title]");
    this.subject = dialog.querySelector("[data-dialog-subject]");
    this.fields = dialog.querySelector("[data-dialog-fields]");
    this.error = dialog.querySelector("[data-testid=action-error]");
    this.confirm = dialog.querySelector("[data-testid=action-confirm]");
    this.cancel = dialog.querySelector("[data-testid=action-cancel]");
    this.handlers = handlers;
    this.alarm = null;
    this.action = null;
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.cancel.addEventListener("click", () => this.close());
  }

  open(alarm, action) {
    this.alarm = alarm;
    this.action = action;
    this.title.textContent = t(`web.dialog.${action}.title`);
    const value =
      alarm.value !== null && alarm.value !== undefined ? ` · ${fmtValue(alarm.value)}${alarm.unit ? ` ${alarm.unit}` : ""}` : "";
    this.subject.textContent = `${alarm.device_name || alarm.device || alarm.source} — ${alarm.description || alarm.rule}${value}`;
    this.subject.className = `dialog-subject prio-${alarm.priority}`;
    clear(this.fields);
    if (action === "shelve") {
      this.fields.append(
        h(
          "label",
          { class: "field" },
          h("span", {}, t("web.dialog.reason")),
          h("input", { name: "reason", required: true, maxlength: 500, testid: "shelve-reason", autocomplete: "off" }),
        ),
        h(
          "label",
          { class: "field" },
          h("span", {}, t("web.dialog.duration")),
          h(
            "select",
            { name: "duration_min", testid: "shelve-duration" },
            ...SHELVE_MINUTES.map((m) =>
              h("option", { value: m, selected: m === 60 }, m < 60 ? t("web.duration.min", { n: m }) : t("web.duration.h", { n: m / 60 })),
            ),
          ),
        ),
      );
    } else {
      const required = action === "comment";
      this.fields.append(
        h(
          "label",
          { class: "field" },
          h("span", {}, t(required ? "web.dialog.note_required" : "web.dialog.note")),
          h("textarea", { name: "note", rows: 3, maxlength: 1000, required, testid: "action-note" }),
        ),
      );
    }
    this.error.hidden = true;
    this.error.textContent = "";
    this.confirm.disabled = false;
    this.confirm.textContent = t(`web.action.${action}`);
    this.cancel.textContent = t("web.action.cancel");
    if (!this.dialog.open) this.dialog.showModal();
    const first = this.fields.querySelector("input, textarea, select");
    if (first) first.focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
    this.alarm = null;
  }

  body() {
    const data = new FormData(this.form);
    const note = String(data.get("note") || "").trim();
    if (this.action === "shelve") {
      return { reason: String(data.get("reason") || "").trim(), duration_min: Number(data.get("duration_min")) };
    }
    if (this.action === "comment") return { note };
    return note ? { note } : {};
  }

  async submit() {
    if (!this.alarm) return;
    const body = this.body();
    if ((this.action === "shelve" && !body.reason) || (this.action === "comment" && !body.note)) {
      this.showError(t("web.dialog.required"));
      return;
    }
    const alarm = this.alarm;
    this.confirm.disabled = true;
    try {
      const answer = await post(`/alarms/${encodeURIComponent(alarm.id)}/${PATHS[this.action]}`, body);
      this.close();
      if (answer) this.handlers.onDone(answer);
    } catch (err) {
      this.showError(errorText(err));
      this.confirm.disabled = false;
    }
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }
}
