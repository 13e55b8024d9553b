// The interview page over LiveKit (INTERVIEWER_TRANSPORT=livekit): the applicant joins the
// interview's room with the livekit-client SDK, publishes microphone and camera, and hears
// the interviewer (a livekit-agents worker running the same session as the embedded
// transport). interview.html loads this module instead of interview.js in that mode.
//
// The server stays the source of truth: every (re)connect asks /i/<token>/livekit for a fresh
// short-lived room token, and the worker resumes the interview where it stopped.
import { hideProblem, showProblem, turnOnCameraAndMic } from "./common.js";

const root = document.querySelector("[data-interview]");
const $ = (id) => document.getElementById(id);
const ui = {
  startPanel: $("start-panel"), start: $("start"), startStatus: $("start-status"), stage: $("stage"),
  progress: $("progress"), state: $("state"), question: $("question"), caption: $("caption"),
  repeat: $("repeat"), preview: $("preview"), recStatus: $("rec-status"), recDot: $("rec-dot"),
  banner: $("banner"),
};
const CONNECT_TIMEOUT_MS = 15000;
const BUSY_AFTER_MS = 12000; // no interviewer yet: every worker is busy (LiveKit queues the room)
const s = { stream: null, sdk: null, room: null, connected: false, agentLeftAt: null, finished: false };

const STATES = {
  initializing: "Preparing the interview…",
  listening: "Listening: answer when you are ready",
  thinking: "Thinking…",
  speaking: "The interviewer is speaking",
};

function setState(state) {
  ui.state.dataset.state = STATES[state] && state !== "initializing" ? state : "thinking";
  ui.state.textContent = STATES[state] || "Waiting for the interviewer…";
}

function banner(text) {
  ui.banner.textContent = text;
  ui.banner.hidden = !text;
}

// Every failure to reach the interview server ends here: what happened, what to do.
function unreachable(detail) {
  ui.start.disabled = false;
  ui.startStatus.textContent = "";
  showProblem({
    code: "livekit-unreachable",
    title: "The interview server could not be reached",
    message: "Your camera and microphone work, but this page could not connect to the live interview server" +
      (detail ? ` (${detail}).` : "."),
    next: "Check your internet connection (a company network or VPN may block it), then press Try again. " +
      "If it keeps failing, tell the recruiter: your link stays valid and your answers so far are saved.",
  }, start);
}

async function fetchToken() {
  const res = await fetch(root.dataset.livekit, { cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (res.status === 410 && body.done) { location.href = body.done; return null; }
  if (res.status === 409 && body.invite) { location.href = body.invite; return null; }
  if (!res.ok) {
    showProblem({ code: body.error || "token", title: "The interview could not start",
      message: body.message || `The server answered ${res.status}.`,
      next: body.next || "Reload the page and try again." }, body.error === "livekit-config" ? start : null);
    return null;
  }
  return body;
}

async function loadSdk() {
  if (!s.sdk) s.sdk = await import(root.dataset.livekitSdk);
  return s.sdk;
}

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms)),
  ]);
}

function wire(room, sdk) {
  const { RoomEvent, Track } = sdk;
  room.on(RoomEvent.TrackSubscribed, (track) => {
    if (track.kind !== Track.Kind.Audio) return;
    const el = track.attach();
    el.dataset.agentAudio = "";
    document.body.appendChild(el);
  });
  room.on(RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((el) => el.remove()));
  room.on(RoomEvent.ParticipantAttributesChanged, (changed, participant) => {
    if (participant !== room.localParticipant && changed["lk.agent.state"]) setState(changed["lk.agent.state"]);
  });
  room.on(RoomEvent.ParticipantConnected, () => { s.agentLeftAt = null; banner(""); });
  room.on(RoomEvent.ParticipantDisconnected, () => {
    // the worker leaves when the interview is over (or its machine went away): ask the server
    s.agentLeftAt = Date.now();
    setTimeout(checkFinished, 1500);
  });
  room.on(RoomEvent.Reconnecting, () => banner("Connection lost. Reconnecting… your answers are saved."));
  room.on(RoomEvent.Reconnected, () => banner(""));
  room.on(RoomEvent.Disconnected, () => {
    if (!s.connected || s.finished) return; // a failed connect is reported by start()
    s.connected = false;
    ui.startPanel.hidden = false;
    ui.stage.hidden = true;
    unreachable("the connection closed");
  });
  // what the interviewer says, as captions (livekit-agents sends its transcription as text)
  room.registerTextStreamHandler("lk.transcription", async (reader, from) => {
    if (from.identity === room.localParticipant.identity) return;
    // the worker also sends the applicant's own words (transcribed from our microphone track)
    const track = reader.info.attributes && reader.info.attributes["lk.transcribed_track_id"];
    if (track && room.localParticipant.trackPublications.has(track)) return;
    let text = "";
    for await (const chunk of reader) {
      text += chunk;
      ui.caption.textContent = text;
    }
    if (/\?\s*$/.test(text)) ui.question.textContent = text.trim();
  });
}

async function checkFinished() {
  if (!s.agentLeftAt || s.finished) return;
  const res = await fetch(root.dataset.livekit, { cache: "no-store" }).catch(() => null);
  if (res && res.status === 410) {
    s.finished = true;
    await s.room?.disconnect();
    if (s.stream) s.stream.getTracks().forEach((t) => t.stop());
    location.href = root.dataset.done;
    return;
  }
  banner("The interviewer is reconnecting… please stay on this page.");
}

async function start() {
  hideProblem();
  ui.start.disabled = true;
  ui.startStatus.textContent = "Connecting to the interview server…";
  const grant = await fetchToken().catch(() => null);
  if (!grant) { ui.start.disabled = false; ui.startStatus.textContent = ""; return; }
  let sdk;
  try {
    sdk = await loadSdk();
  } catch (err) {
    ui.start.disabled = false;
    return showProblem({ code: "livekit-sdk", title: "The interview page could not load",
      message: "A part of this page (the live connection library) is missing on the server.",
      next: "Please tell the recruiter; your link stays valid, so try again later." }, null);
  }
  const room = new sdk.Room({ adaptiveStream: true, dynacast: true });
  wire(room, sdk);
  try {
    await withTimeout(room.connect(grant.url, grant.token, { autoSubscribe: true, maxRetries: 1 }),
      CONNECT_TIMEOUT_MS, "connecting");
  } catch (err) {
    await room.disconnect().catch(() => {});
    return unreachable(err && err.message ? err.message.slice(0, 160) : "");
  }
  s.room = room;
  s.connected = true;
  const [mic] = s.stream.getAudioTracks();
  const [cam] = s.stream.getVideoTracks();
  await room.localParticipant.publishTrack(mic, { source: sdk.Track.Source.Microphone });
  if (cam) await room.localParticipant.publishTrack(cam, { source: sdk.Track.Source.Camera });
  ui.startPanel.hidden = true;
  ui.stage.hidden = false;
  ui.recDot.hidden = false;
  ui.recStatus.textContent = "Recording";
  ui.progress.textContent = "Interview in progress";
  ui.repeat.hidden = true; // say "could you repeat the question?" instead
  setState("waiting"); // until the worker joins and reports its state
  ui.question.focus();
  setTimeout(() => {
    if (s.connected && room.remoteParticipants.size === 0) {
      banner("All interviewers are busy right now. Please stay on this page: your place is kept " +
        "and the interview starts as soon as one is free.");
    }
  }, BUSY_AFTER_MS);
}

async function openMedia() {
  const stream = await turnOnCameraAndMic(ui, openMedia);
  if (stream) s.stream = stream;
}

ui.start.addEventListener("click", start);
window.addEventListener("pagehide", () => { s.room?.disconnect(); });
openMedia();
