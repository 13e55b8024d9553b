// Device check: camera preview, microphone level, speaker chime. Nothing is recorded here.
import { hideProblem, levelOf, mediaProblem, openCameraAndMic, showProblem, unsupportedReason } from "./common.js";

const enable = document.getElementById("enable");
const live = document.getElementById("live");
const preview = document.getElementById("preview");
const meter = document.getElementById("mic-level");
const micStatus = document.getElementById("mic-status");
const soundButton = document.getElementById("sound");
const soundStatus = document.getElementById("sound-status");
const next = document.getElementById("continue");
const readyNote = document.getElementById("ready-note");
let stream = null;
let ctx = null;
let heard = false;

function stop() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
}

async function start() {
  hideProblem();
  const unsupported = unsupportedReason();
  if (unsupported) return showProblem({ code: "unsupported", ...unsupported }, null);
  enable.disabled = true;
  try {
    stream = await openCameraAndMic();
  } catch (err) {
    enable.disabled = false;
    return showProblem(mediaProblem(err), start);
  }
  preview.srcObject = stream;
  live.hidden = false;
  enable.hidden = true;
  ctx = ctx || new AudioContext();
  await ctx.resume();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const buffer = new Float32Array(analyser.fftSize);
  const tick = () => {
    if (!stream) return;
    const level = levelOf(analyser, buffer);
    meter.value = level;
    if (level > 0.04 && !heard) {
      heard = true;
      micStatus.textContent = "We can hear you.";
    }
    requestAnimationFrame(tick);
  };
  tick();
  setTimeout(() => { if (!heard) micStatus.textContent = "No sound yet: check that the right microphone is selected and not muted."; }, 6000);
  next.hidden = false;
  readyNote.hidden = false;
  next.focus();
}

function chime() {
  ctx = ctx || new AudioContext();
  ctx.resume();
  const now = ctx.currentTime;
  [660, 880].forEach((freq, i) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + i * 0.25);
    gain.gain.exponentialRampToValueAtTime(0.3, now + i * 0.25 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.25 + 0.4);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + i * 0.25);
    osc.stop(now + i * 0.25 + 0.45);
  });
  soundStatus.textContent = "Playing a two-note chime. Didn't hear it? Turn the volume up or plug in headphones, then play it again.";
}

enable.addEventListener("click", start);
soundButton.addEventListener("click", chime);
next.addEventListener("click", stop);
window.addEventListener("pagehide", stop);

const unsupported = unsupportedReason();
if (unsupported) {
  enable.disabled = true;
  enable.hidden = true;
  document.getElementById("intro").hidden = true;
  showProblem({ code: "unsupported", ...unsupported }, null);
}
