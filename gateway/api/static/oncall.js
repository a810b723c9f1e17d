// Who is on duty now, per team (GET /oncall), refreshed every minute and at
// the next handover.

import { h, clear } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { get } from "./api.js";
import { errorText } from "./errors.js";
import { fmtShort } from "./format.js";

const REFRESH_MS = 60000;

/** The site's name for the team; for a team the site did not name, the catalogue's. */
function teamName(team) {
  if (team.name && team.name !== team.team) return team.name;
  return tOr(`web.team.${team.team}`, team.team);
}

export class OnCall {
  constructor(root) {
    this.root = root;
    this.list = root.querySelector("[data-oncall-body]");
    this.data = null;
    this.error = null;
    this.timer = null;
  }

  async load() {
    clearTimeout(this.timer);
    try {
      this.data = await get("/oncall");
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.render();
    let wait = REFRESH_MS;
    for (const team of (this.data && this.data.teams) || []) {
      const at = Date.parse(team.next_handover || "");
      if (at) wait = Math.min(wait, Math.max(1000, at - Date.now() + 1000));
    }
    this.timer = setTimeout(() => this.load(), wait);
  }

  stop() {
    clearTimeout(this.timer);
    this.data = null;
    this.render();
  }

  render() {
    clear(this.list);
    if (this.error) {
      this.list.append(h("p", { class: "form-error" }, errorText(this.error)));
      return;
    }
    const teams = (this.data && this.data.teams) || [];
    if (teams.length === 0) {
      this.list.append(h("p", { class: "empty" }, t("web.oncall.none")));
      return;
    }
    for (const team of teams) {
      const people = team.on_duty || [];
      this.list.append(
        h(
          "section",
          { class: "team", testid: "oncall-team" },
          h(
            "header",
            { class: "team-head" },
            h("span", { class: "team-name" }, teamName(team)),
            team.next_handover
              ? h("span", { class: "handover" }, t("web.oncall.handover", { time: fmtShort(team.next_handover) }))
              : null,
          ),
          people.length
            ? h("ul", { class: "people" }, ...people.map((p) => this.person(p)))
            : h("p", { class: "empty small warn" }, t("web.oncall.nobody")),
        ),
      );
    }
  }

  person(p) {
    const phone = p.phone
      ? p.phone.includes("*")
        ? h("span", { class: "phone" }, p.phone) // masked for this role: nothing to dial
        : h("a", { class: "phone", href: `tel:${p.phone}` }, p.phone)
      : null;
    return h(
      "li",
      { class: "person" },
      h("span", { class: "person-name" }, p.name || p.id),
      phone,
      ...(p.certifications || []).map((c) => h("span", { class: "tag cert", title: c }, tOr(`web.cert.${c}`, c))),
    );
  }
}
