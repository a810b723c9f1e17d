// The control-room page: boot (site meta, language, session), login and
// logout, and the wiring between the live stream and the panels.

import { $, $all, h, clear } from "./dom.js";
import { t, applyStatic, loadCatalogue, storedLocale, rememberLocale, currentLocale } from "./i18n.js";
import { api, get, post, setCsrf, setUnauthorizedHandler } from "./api.js";
import { errorText } from "./errors.js";
import { configure, fmtDateTime } from "./format.js";
import { LiveClient } from "./live.js";
import { Board, isAcked } from "./board.js";
import { ActionDialog } from "./actions.js";
import { Overview } from "./overview.js";
import { Trend } from "./trend.js";
import { EventLog } from "./events.js";
import { OnCall } from "./oncall.js";
import { AccessPanel } from "./access.js";
import { beep, isMuted, setMuted } from "./sound.js";

const FALLBACK_LOCALES = ["zh-CN", "en"];
const AGE_TICK_MS = 5000;

const state = {
  meta: null,
  me: null,
  floods: new Set(), // control rooms in an alarm flood
  liveStatus: "down",
  snapshots: 0,
  criticalAlerts: 0,
};

let board;
let dialog;
let overview;
let trend;
let events;
let oncall;
let access;
let live = null;
let ageTimer = null;

// --- views ------------------------------------------------------------------------------

function show(view) {
  document.body.dataset.view = view;
  $("[data-boot]").hidden = view !== "boot";
  $("[data-login]").hidden = view !== "login";
  $("[data-app]").hidden = view !== "app";
}

function selectTab(name) {
  document.body.dataset.tab = name;
  for (const b of $all("[data-tab-button]")) b.classList.toggle("active", b.dataset.tabButton === name);
  $("[data-access-toggle]").classList.toggle("active", name === "access");
}

// --- language -----------------------------------------------------------------------------

function locales() {
  return (state.meta && state.meta.locales) || FALLBACK_LOCALES;
}

function renderLangSelects() {
  for (const sel of $all("[data-lang-select]")) {
    clear(sel);
    for (const loc of locales()) {
      sel.append(h("option", { value: loc, selected: loc === currentLocale() }, t(`web.lang.${loc}`)));
    }
  }
}

async function setLocale(loc) {
  await loadCatalogue(loc);
  configure({ lang: loc });
  applyStatic();
  document.title = state.meta ? `${t("web.app.title")} · ${state.meta.site_name || state.meta.site_id}` : t("web.app.title");
  renderLangSelects();
  renderChrome();
  if (board) {
    events.renderFilter();
    board.render();
    overview.render();
    trend.renderHeader();
    trend.draw();
    events.render();
    oncall.render();
    access.render();
  }
}

function pickLocale(userLocale) {
  const known = locales();
  for (const loc of [storedLocale(), userLocale, state.meta && state.meta.default_locale]) {
    if (loc && known.includes(loc)) return loc;
  }
  return known[0];
}

// --- header -------------------------------------------------------------------------------

function renderChrome() {
  for (const el of $all("[data-site-name]")) el.textContent = state.meta ? state.meta.site_name || state.meta.site_id : "";
  const mute = $("[data-mute]");
  mute.textContent = isMuted() ? t("web.sound.off") : t("web.sound.on");
  mute.classList.toggle("muted", isMuted());
  mute.title = t("web.sound.title");
  const conn = $("[data-conn]");
  conn.textContent = t(`web.conn.${state.liveStatus}`);
  conn.dataset.state = state.liveStatus;
  if (state.me) {
    const u = state.me.user;
    $("[data-user]").textContent = `${u.display_name || u.username} · ${t(`web.role.${u.role}`)}`;
  }
  renderFlood();
  renderCounts();
}

function renderCounts() {
  if (!board) return;
  const all = [...board.alarms.values()];
  const unacked = all.filter((a) => !isAcked(a)).length;
  const top = $("[data-top-unacked]");
  top.textContent = t("web.board.summary", { active: all.length, unacked });
  top.classList.toggle("alert", unacked > 0);
  const badge = $("[data-tab-badge]");
  badge.textContent = String(unacked);
  badge.hidden = unacked === 0;
}

function renderFlood() {
  const el = $("[data-flood]");
  if (state.floods.size === 0) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = t("web.flood.banner", { rooms: [...state.floods].join(", ") });
  el.hidden = false;
}

function tickClock() {
  if (!state.meta) return;
  $("[data-clock]").textContent = fmtDateTime(new Date());
}

// --- data ---------------------------------------------------------------------------------

function setFloods(floods) {
  state.floods = new Set((floods || []).filter((f) => f.active).map((f) => f.control_room));
  renderFlood();
}

async function loadAlarms() {
  try {
    const answer = await get("/alarms");
    board.replace(answer.items || []);
    setFloods(answer.floods);
  } catch (err) {
    if (err.status !== 401) showBoardError(err);
  }
}

async function loadDevices() {
  try {
    overview.setDevices(await get("/devices"));
  } catch (err) {
    if (err.status !== 401) overview.summary.textContent = errorText(err);
  }
}

function showBoardError(err) {
  const body = $("[data-board-body]");
  clear(body);
  body.append(h("tr", {}, h("td", { colspan: 8, class: "form-error" }, errorText(err))));
}

// --- live stream --------------------------------------------------------------------------

function onLive(msg) {
  switch (msg.type) {
    case "welcome":
      if (!msg.resumed && state.snapshots > 0) {
        // Could not resume: what happened meanwhile comes as a snapshot for
        // alarms; floods, devices and the event log are read again.
        loadAlarms();
        loadDevices();
        events.load();
        access.load();
      }
      break;
    case "snapshot": {
      const fresh = board.replace(msg.alarms || []);
      if (state.snapshots > 0 && fresh.some((a) => a.priority === "critical")) announceCritical();
      state.snapshots += 1;
      break;
    }
    case "alarm":
      if (board.upsert(msg.alarm, msg.transition)) announceCritical();
      events.prepend(transitionEvent(msg));
      break;
    case "event":
      onEvent(msg.event);
      break;
    case "readings":
      overview.applyReadings(msg.readings || []);
      break;
    default:
      break; // pong, or a type this page does not know yet
  }
}

/** A new critical alarm (not one of the initial load): the tone, a flash of
 * the top bar, and a count on the body that tests and kiosks can read. */
function announceCritical() {
  beep();
  state.criticalAlerts += 1;
  document.body.dataset.criticalAlerts = String(state.criticalAlerts);
  const bar = $(".topbar");
  bar.classList.remove("flash");
  void bar.offsetWidth; // restart the animation
  bar.classList.add("flash");
}

function endFlash(ev) {
  if (ev.animationName === "flash") ev.currentTarget.classList.remove("flash");
}

/** The event log's line for a live alarm transition (the store keeps the same
 * as an ``alarm.<transition>`` event, which GET /events returns later). */
function transitionEvent(msg) {
  const a = msg.alarm;
  return {
    id: null,
    ts: a.updated,
    type: `alarm.${msg.transition}`,
    source: a.source,
    data: { id: a.id, state: a.state, value: a.value, user: msg.user, note: msg.note },
  };
}

function onEvent(ev) {
  events.prepend(ev);
  if (ev.type.startsWith("access.") || ev.type.startsWith("door.")) access.onEvent(ev);
  const room = (ev.data && ev.data.control_room) || ev.source;
  if (ev.type === "alarm.flood_started") {
    state.floods.add(room);
    renderFlood();
  } else if (ev.type === "alarm.flood_ended") {
    state.floods.delete(room);
    renderFlood();
  } else if (ev.type === "alarm.maintenance") {
    loadDevices();
  } else {
    overview.applyEvent(ev);
  }
}

function onLiveStatus(status) {
  state.liveStatus = status;
  renderChrome();
}

// --- session ------------------------------------------------------------------------------

async function enter(me) {
  state.me = me;
  setCsrf(me.csrf_token);
  const loc = pickLocale(me.user.locale);
  if (loc !== currentLocale()) await setLocale(loc);
  board.setRole(me.user.role);
  access.setRole(me.user.role);
  show("app");
  renderChrome();
  selectTab(document.body.dataset.tab || "board");
  state.snapshots = 0;
  state.criticalAlerts = 0;
  document.body.dataset.criticalAlerts = "0";
  await Promise.all([loadAlarms(), loadDevices(), events.load(), oncall.load(), access.load()]);
  live = new LiveClient({ onMessage: onLive, onStatus: onLiveStatus, onUnauthorized: leave }, ["*"]);
  live.start();
  clearInterval(ageTimer);
  ageTimer = setInterval(() => overview.tick(), AGE_TICK_MS);
}

/** Back to the login form (logout, or the session expired). */
function leave() {
  if (live) live.stop();
  live = null;
  clearInterval(ageTimer);
  state.me = null;
  state.floods.clear();
  setCsrf(null);
  dialog.close();
  board.clear();
  overview.clear();
  trend.clear();
  events.clear();
  oncall.stop();
  access.clear();
  showLogin();
}

function showLogin(message = "") {
  show("login");
  const err = $("[data-testid=login-error]");
  err.textContent = message;
  err.hidden = !message;
  const user = $("[data-testid=login-username]");
  if (user) user.focus();
}

async function login(ev) {
  ev.preventDefault();
  const form = ev.target;
  const data = new FormData(form);
  const submit = $("[data-testid=login-submit]");
  submit.disabled = true;
  try {
    const answer = await post(
      "/auth/login",
      { username: String(data.get("username") || ""), password: String(data.get("password") || "") },
      { noAuthRedirect: true },
    );
    form.reset();
    await enter({ user: answer.user, auth: "session", csrf_token: answer.csrf_token });
  } catch (err) {
    showLogin(err.status === 401 ? t("web.login.failed") : errorText(err));
  } finally {
    submit.disabled = false;
  }
}

async function logout() {
  try {
    await api("POST", "/auth/logout", undefined, { noAuthRedirect: true });
  } catch {
    // the session is gone either way on this page
  }
  leave();
}

// --- boot ---------------------------------------------------------------------------------

function wire() {
  board = new Board($("[data-board]"), {
    onAction: (alarm, action) => dialog.open(alarm, action),
    onChange: (alarms) => {
      renderCounts();
      overview.setAlarms(alarms);
    },
  });
  dialog = new ActionDialog($("[data-action-dialog]"), { onDone: (alarm) => board.upsert(alarm) });
  overview = new Overview($("[data-overview]"), {
    onPoint: (point, device) => {
      overview.select(point.point);
      trend.show(point, device);
      if (window.matchMedia("(max-width: 900px)").matches) selectTab("trend");
    },
  });
  trend = new Trend($("[data-trend]"));
  events = new EventLog($("[data-events]"));
  oncall = new OnCall($("[data-oncall]"));
  access = new AccessPanel($("[data-access]"));

  $("[data-testid=login-form]").addEventListener("submit", login);
  $("[data-logout]").addEventListener("click", logout);
  $(".topbar").addEventListener("animationend", endFlash);
  $("[data-mute]").addEventListener("click", () => {
    setMuted(!isMuted());
    renderChrome();
  });
  for (const sel of $all("[data-lang-select]")) {
    sel.addEventListener("change", async () => {
      rememberLocale(sel.value);
      await setLocale(sel.value);
    });
  }
  for (const b of $all("[data-tab-button]")) b.addEventListener("click", () => selectTab(b.dataset.tabButton));
  // Wide screens show every panel but access, which takes the place of the
  // board, site and trend while it is open (the top bar still counts alarms).
  $("[data-access-toggle]").addEventListener("click", () =>
    selectTab(document.body.dataset.tab === "access" ? "board" : "access"),
  );
  setUnauthorizedHandler(() => {
    if (state.me) leave();
  });
  setInterval(tickClock, 1000);
}

async function boot() {
  wire();
  try {
    state.meta = await get("/meta");
  } catch {
    state.meta = null; // still usable: UTC, the first locale
  }
  configure({ timezone: state.meta && state.meta.timezone });
  let me = null;
  try {
    me = await api("GET", "/auth/me", undefined, { noAuthRedirect: true });
  } catch {
    me = null; // 401: nobody logged in on this browser
  }
  // Without its texts the page cannot say anything: keep trying (the gateway may be restarting).
  for (let wait = 1000; ; wait = Math.min(wait * 2, 15000)) {
    try {
      await setLocale(pickLocale(me && me.user && me.user.locale));
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
  tickClock();
  if (me) await enter(me);
  else showLogin();
}

boot();
