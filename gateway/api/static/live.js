// The live stream (WebSocket /api/v1/live): alarm transitions and events with
// a sequence number, coalesced readings without one. After a drop it
// reconnects with a growing, jittered delay and resumes from the last seq it
// saw; when the server cannot resume it sends a fresh snapshot instead.

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
const PING_MS = 20000;
const SILENCE_MS = 65000; // no message at all for this long: the link is dead

export class LiveClient {
  /**
   * handlers: onMessage(msg), onStatus("connecting"|"live"|"down"),
   * onUnauthorized() (closed with 4401: the session is gone).
   */
  constructor(handlers, points = ["*"]) {
    this.handlers = handlers;
    this.points = points;
    this.epoch = null;
    this.seq = null;
    this.ws = null;
    this.attempts = 0;
    this.running = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.onWake = () => {
      if (this.running && !this.ws) this.connectNow();
    };
  }

  start() {
    if (this.running) return;
    this.running = true;
    window.addEventListener("online", this.onWake);
    document.addEventListener("visibilitychange", this.onWake);
    this.connect();
  }

  stop() {
    this.running = false;
    window.removeEventListener("online", this.onWake);
    document.removeEventListener("visibilitychange", this.onWake);
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    this.epoch = null;
    this.seq = null;
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    this.attempts = 0;
    this.connect();
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1/live`;
  }

  connect() {
    if (!this.running || this.ws) return;
    this.handlers.onStatus("connecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.addEventListener("open", () => {
      const resume = this.epoch !== null && this.seq !== null ? { epoch: this.epoch, seq: this.seq } : null;
      this.send({ type: "hello", resume, points: this.points });
      this.lastHeard = Date.now();
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.keepAlive(), PING_MS);
    });
    ws.addEventListener("message", (ev) => this.receive(ev.data));
    ws.addEventListener("close", (ev) => this.closed(ws, ev.code));
    // "error" is always followed by "close"; the reconnect happens there.
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  keepAlive() {
    if (Date.now() - this.lastHeard > SILENCE_MS && this.ws) {
      this.ws.close(4000); // half-open link: start over
      return;
    }
    this.send({ type: "ping" });
  }

  receive(raw) {
    this.lastHeard = Date.now();
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return; // not ours to interpret; the next message is independent
    }
    if (msg.type === "welcome") {
      this.epoch = msg.epoch;
      // Resumed: the server replays what came after our seq, keep counting from it.
      if (!msg.resumed) this.seq = msg.seq;
      this.attempts = 0;
      this.handlers.onStatus("live");
    } else if (typeof msg.seq === "number") {
      this.seq = this.seq === null ? msg.seq : Math.max(this.seq, msg.seq);
    }
    this.handlers.onMessage(msg);
  }

  closed(ws, code) {
    if (this.ws !== ws) return; // an old socket we already replaced or stopped
    this.ws = null;
    clearInterval(this.pingTimer);
    if (!this.running) return;
    if (code === 4401) {
      this.handlers.onStatus("down");
      this.handlers.onUnauthorized();
      return;
    }
    this.handlers.onStatus("down");
    const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempts);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempts += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  subscribe(points) {
    this.points = points;
    this.send({ type: "subscribe", points });
  }
}
