// The new-critical-alarm tone: two short square-wave beeps from an
// oscillator (no audio file). Browsers only allow sound after a user gesture,
// so the audio context is created or resumed on the first click or key.

const STORE_KEY = "gw.muted";
let ctx = null;
let muted = false;

try {
  muted = localStorage.getItem(STORE_KEY) === "1";
} catch {
  muted = false;
}

function arm() {
  const Ctor = window.AudioContext || window.webkitAudioContext;
  if (!Ctor) return;
  try {
    if (!ctx) ctx = new Ctor();
    if (ctx.state === "suspended") ctx.resume();
  } catch {
    ctx = null; // no audio device: the board still works, silently
  }
  if (ctx && ctx.state === "running") {
    document.removeEventListener("pointerdown", arm, true);
    document.removeEventListener("keydown", arm, true);
  }
}

document.addEventListener("pointerdown", arm, true);
document.addEventListener("keydown", arm, true);

export function isMuted() {
  return muted;
}

export function setMuted(value) {
  muted = Boolean(value);
  try {
    localStorage.setItem(STORE_KEY, muted ? "1" : "0");
  } catch {
    // storage disabled: muted for this page only
  }
}

function tone(at, freq, length) {
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = "square";
  osc.frequency.setValueAtTime(freq, at);
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(0.2, at + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
  osc.connect(gain).connect(ctx.destination);
  osc.start(at);
  osc.stop(at + length + 0.02);
}

/** Returns whether a tone was played (false when muted or audio is not armed yet). */
export function beep() {
  if (muted || !ctx || ctx.state !== "running") return false;
  const now = ctx.currentTime;
  tone(now, 880, 0.16);
  tone(now + 0.22, 660, 0.16);
  tone(now + 0.44, 880, 0.16);
  return true;
}
