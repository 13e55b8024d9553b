// The interview page: microphone -> socket, agent speech -> speaker, what is said -> screen,
// camera + microphone -> MediaRecorder chunks uploaded as they are produced.
//
// The server's session is the source of truth (question, answers, resume point). This page
// only plays, shows and reconnects: a reload or a dropped network opens a new socket, and the
// session continues from the question it was on.
import { csrfHeaders, hideProblem, renewCsrf, showProblem, turnOnCameraAndMic } from "./common.js";

const root = document.querySelector("[data-interview]");
const $ = (id) => document.getElementById(id);
const ui = {
  startPanel: $("start-panel"), start: $("start"), startStatus: $("start-status"), stage: $("stage"),
  progress: $("progress"), bar: $("progress-bar"), timer: $("timer"), state: $("state"),
  question: $("question"), caption: $("caption"), repeat: $("repeat"), meter: $("mic-level"),
  moreTime: $("more-time"), notFinished: $("not-finished"),
  preview: $("preview"), recStatus: $("rec-status"), recDot: $("rec-dot"), banner: $("banner"),
  fullscreen: $("fullscreen"), fullscreenAsk: $("fullscreen-ask"),
};
const VOICED_RMS = 0.015;

const s = {
  stream: null, ctx: null, node: null, ws: null, streaming: false, finished: false,
  segments: new Map(), current: null, playhead: 0, marks: [], scheduledMarks: [], sources: new Set(), timeouts: new Set(),
  question: null, timerSegment: null, timerEnds: 0, timerLimit: 0, timerHandle: null, timerPaused: false,
  recorder: null, queue: [], part: null, chunk: 0, uploading: false,
  retryDelay: 1000, lostSince: null, lastError: null, gotReady: false,
};

// Turn latency as the applicant experiences it (read by bench/browser_latency.py).
const metrics = { voicedMs: 0, lastVoiceEnd: null, voiceSinceAgent: 0, turns: [], segmentsPlayed: 0, events: [] };
window.interviewMetrics = metrics;

function tabId() {
  const key = "interviewer-tab";
  let id = sessionStorage.getItem(key);
  if (!id) {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(key, id);
  }
  return id;
}

function send(message) {
  if (s.ws && s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify(message));
}

function banner(text, ms) {
  ui.banner.textContent = text;
  ui.banner.hidden = !text;
  if (ms) setTimeout(() => { if (ui.banner.textContent === text) ui.banner.hidden = true; }, ms);
}

// --- what the page shows --------------------------------------------------------------------

// The server's agent says what it is doing (voice/agent.py InterviewAgent.status): the label
// and the timer follow it, never a guess made here.
const STATES = {
  preparing: "Preparing the interview…",
  listening: "Listening: answer when you are ready",
  hearing: "Hearing you",
  thinking: "One moment: the interviewer is about to speak",
  speaking: "The interviewer is speaking",
  finished: "The interview is over",
  offline: "Reconnecting…",
};
const LOOKS = { preparing: "thinking", offline: "thinking", hearing: "listening", finished: "done" };

function setState(state, canContinue) {
  ui.state.dataset.state = LOOKS[state] || state;
  ui.state.textContent = STATES[state] || state;
  const listening = state === "listening" || state === "hearing";
  ui.moreTime.disabled = !listening || s.finished;
  if (canContinue !== undefined) ui.notFinished.disabled = !canContinue || s.finished;
  if (state === "thinking") pauseTimer(); // the answer is over: its clock stops here
  else if (listening) resumeTimer(); // the applicant went on talking: the same clock again
  else if (state === "finished") endTimer();
}

function fmt(seconds) {
  const v = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(v / 60)}:${String(v % 60).padStart(2, "0")}`;
}

function showQuestion(q) {
  s.question = q;
  ui.question.textContent = q.text;
  if (q.practice) {
    ui.progress.textContent = "Practice question (not scored)";
    ui.bar.value = 0;
  } else {
    ui.progress.textContent = `Question ${q.number} of ${q.total}` + (q.attempt ? " · follow-up" : "");
    ui.bar.value = q.number;
  }
  stopTimer(true);
  ui.timer.textContent = fmt(q.time_limit_s);
  ui.repeat.disabled = false;
}

function startTimer(limit) {
  stopTimer(false);
  s.timerLimit = limit;
  s.timerEnds = performance.now() + limit * 1000;
  const tick = () => {
    const left = (s.timerEnds - performance.now()) / 1000;
    ui.timer.textContent = fmt(left);
    ui.timer.parentElement.classList.toggle("low", left <= 30);
    if (left <= 0) stopTimer(false);
  };
  tick();
  s.timerHandle = setInterval(tick, 250);
}

function stopTimer(reset) {
  if (s.timerHandle) clearInterval(s.timerHandle);
  s.timerHandle = null;
  s.timerPaused = false;
  if (reset) ui.timer.parentElement.classList.remove("low");
}

function pauseTimer() {
  if (!s.timerHandle) return;
  stopTimer(false);
  s.timerPaused = true;
}

function resumeTimer() {
  if (!s.timerPaused || s.timerHandle) return;
  const left = (s.timerEnds - performance.now()) / 1000;
  if (left > 0) startTimer(left);
}

function endTimer() {
  stopTimer(true);
  ui.timer.textContent = "--:--";
}

function applyMark(mark, segmentId) {
  if (mark.type === "caption") ui.caption.textContent = mark.text;
  else if (mark.type === "question") {
    showQuestion(mark);
    s.timerSegment = segmentId; // the clock starts once this speech has played
  }
}

// --- agent speech ---------------------------------------------------------------------------

function applyBatch(batch) {
  if (batch.done) return;
  batch.done = true;
  batch.marks.forEach((m) => applyMark(m, batch.segment));
  s.scheduledMarks = s.scheduledMarks.filter((b) => !b.done);
}

function after(at, fn) {
  const handle = setTimeout(() => { s.timeouts.delete(handle); fn(); }, Math.max(0, (at - s.ctx.currentTime) * 1000));
  s.timeouts.add(handle);
}

function playChunk(data) {
  const seg = s.current;
  if (!seg || !s.ctx) return;
  const pcm = new Int16Array(data);
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  const buffer = s.ctx.createBuffer(1, samples.length, seg.rate);
  buffer.copyToChannel(samples, 0);
  const source = s.ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(s.ctx.destination);
  const at = Math.max(s.ctx.currentTime + 0.05, s.playhead);
  source.start(at);
  s.sources.add(source);
  source.onended = () => s.sources.delete(source);
  s.playhead = at + buffer.duration;
  seg.endAt = s.playhead;
  seg.duration += buffer.duration;
  if (!seg.started) {
    seg.started = true;
    after(at, () => {
      send({ type: "started", segment: seg.id });
      const now = performance.now();
      if (metrics.voiceSinceAgent >= 300 && metrics.lastVoiceEnd !== null) {
        metrics.turns.push({ latency_ms: now - metrics.lastVoiceEnd, at: now });
      }
      metrics.voiceSinceAgent = 0;
    });
  }
  if (s.marks.length) {
    const batch = { marks: s.marks.splice(0), segment: seg.id, done: false };
    s.scheduledMarks.push(batch);
    after(at, () => applyBatch(batch));
  }
}

function segmentEnded(seg) {
  seg.flushed = true;
  const done = () => {
    s.segments.delete(seg.id);
    if (seg.cleared) return;
    metrics.segmentsPlayed += 1;
    send({ type: "played", segment: seg.id, position: Math.round(seg.duration * 1000) / 1000 });
    metrics.voiceSinceAgent = 0;
    if (s.timerSegment === seg.id && s.question) {
      s.timerSegment = null;
      startTimer(s.question.time_limit_s);
    }
  };
  if (!seg.started) done();
  else after(seg.endAt, done);
}

function takeBack(q) {
  // The applicant went on with the answer the interviewer had just taken as finished: what it
  // had begun to say is withdrawn (its captions and question never shown) and the question
  // being answered is back on screen, its clock running again.
  s.scheduledMarks = [];
  s.marks = [];
  s.timerSegment = null;
  stopPlayback(false);
  showQuestion(q);
  ui.caption.textContent = q.text;
  startTimer(q.time_limit_s);
}

function stopPlayback(bargeIn) {
  // The agent was cut off (barge-in) or the socket went: what it was about to show still
  // happened on the server (the question is out), so show it now; after a barge-in the
  // applicant is answering, so its clock starts.
  let asked = s.timerSegment !== null;
  const pending = s.scheduledMarks.splice(0).flatMap((b) => (b.done ? [] : b.marks));
  for (const mark of pending.concat(s.marks.splice(0))) {
    applyMark(mark, null);
    if (mark.type === "question") asked = true;
  }
  s.timerSegment = null;
  if (bargeIn && asked && s.question) startTimer(s.question.time_limit_s);
  if (!bargeIn) stopTimer(false);
  for (const handle of s.timeouts) clearTimeout(handle);
  s.timeouts.clear();
  for (const source of s.sources) { try { source.stop(); } catch (_) { /* already stopped */ } }
  s.sources.clear();
  for (const seg of s.segments.values()) seg.cleared = true;
  s.segments.clear();
  s.current = null;
  s.marks = [];
  s.playhead = s.ctx ? s.ctx.currentTime : 0;
}

// --- integrity reports (docs/proctoring.md) ---------------------------------------------------
// What a human proctor would notice, as kinds, times, durations and counts only: the text of
// a paste never leaves the page, only its length. Reports wait in sessionStorage until the
// server acknowledges them, so a reload or a dropped connection loses none.

const INTEGRITY_KEY = "interviewer-integrity";
const STARTED_KEY = "interviewer-started";
const integ = {
  pageId: randomId(12), seq: 0, pending: loadPending(), inflight: null, started: false,
  fullscreen: false, hiddenAt: null, hiddenQ: null, blurAt: null, blurQ: null, blurHidden: false,
  fsAt: null, fsQ: null, wasFullscreen: false,
};
window.interviewIntegrity = integ; // tests and the benchmark read it

function randomId(n) {
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"[b % 64]).join("");
}

function loadPending() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(INTEGRITY_KEY) || "[]");
    return Array.isArray(saved) ? saved : [];
  } catch (_) { return []; }
}

function savePending() {
  integ.pending = integ.pending.filter((p) => p.events.length);
  try { sessionStorage.setItem(INTEGRITY_KEY, JSON.stringify(integ.pending)); } catch (_) { /* full or blocked */ }
}

function currentQuestionId() {
  return s.question && s.question.id ? s.question.id : null;
}

function report(type, fields, questionId) {
  if (!integ.started) return;
  const event = { seq: ++integ.seq, type, t_ms: Date.now(), ...fields };
  const q = questionId === undefined ? currentQuestionId() : questionId;
  if (q) event.question_id = q;
  let page = integ.pending.find((p) => p.page_id === integ.pageId);
  if (!page) integ.pending.push((page = { page_id: integ.pageId, events: [] }));
  page.events.push(event);
  savePending();
  flushIntegrity();
}

function flushIntegrity() {
  if (integ.inflight || !s.gotReady || !s.ws || s.ws.readyState !== WebSocket.OPEN) return;
  const page = integ.pending.find((p) => p.events.length);
  if (!page) return;
  const events = page.events.slice(0, 8); // a socket message holds at most 2 KB
  integ.inflight = { page_id: page.page_id, upto: events[events.length - 1].seq };
  send({ type: "integrity", batch: { page_id: page.page_id, sent_at_ms: Date.now(), events } });
}

function integrityReply(m) {
  const sent = integ.inflight;
  integ.inflight = null;
  if (!sent) return;
  // acknowledged, or refused for good (resending cannot fix it): either way it is done
  const page = integ.pending.find((p) => p.page_id === sent.page_id);
  if (page) page.events = page.events.filter((e) => e.seq > sent.upto);
  if (m.type === "integrity_error") console.warn("integrity report refused:", m.message);
  savePending();
  flushIntegrity();
}

function startIntegrity() {
  if (integ.started) return;
  integ.started = true;
  const navigation = performance.getEntriesByType("navigation")[0];
  if (sessionStorage.getItem(STARTED_KEY) && navigation && navigation.type === "reload") {
    const count = Number(sessionStorage.getItem("interviewer-reloads") || 0) + 1;
    sessionStorage.setItem("interviewer-reloads", String(count));
    report("reload", { count }, null);
  }
  sessionStorage.setItem(STARTED_KEY, "1");
}

function seconds(since) {
  return Math.max(0, Math.round(Date.now() - since));
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    integ.hiddenAt = Date.now();
    integ.hiddenQ = currentQuestionId();
    integ.blurHidden = true;
  } else if (integ.hiddenAt !== null) {
    report("tab_hidden", { t_ms: integ.hiddenAt, duration_ms: seconds(integ.hiddenAt) }, integ.hiddenQ);
    integ.hiddenAt = null;
  }
});

window.addEventListener("blur", () => {
  integ.blurAt = Date.now();
  integ.blurQ = currentQuestionId();
  integ.blurHidden = document.hidden;
});

window.addEventListener("focus", () => {
  // a blur that hid the tab is already a tab_hidden report
  if (integ.blurAt !== null && !integ.blurHidden) {
    report("window_blur", { t_ms: integ.blurAt, duration_ms: seconds(integ.blurAt) }, integ.blurQ);
  }
  integ.blurAt = null;
});

document.addEventListener("fullscreenchange", () => {
  if (document.fullscreenElement) {
    integ.wasFullscreen = true;
    ui.fullscreenAsk.hidden = true;
    if (integ.fsAt !== null && integ.fullscreen) {
      report("fullscreen_exit", { t_ms: integ.fsAt, duration_ms: seconds(integ.fsAt) }, integ.fsQ);
    }
    integ.fsAt = null;
  } else if (integ.fullscreen && integ.wasFullscreen) {
    integ.fsAt = Date.now();
    integ.fsQ = currentQuestionId();
    askFullscreen(!s.finished);
  }
});

document.addEventListener("paste", (event) => {
  const text = event.clipboardData ? event.clipboardData.getData("text") : "";
  report("paste", { chars: text.length });
});

document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault(); // a dropped file must not replace the interview page
  const data = event.dataTransfer;
  report("drop", { chars: data ? (data.getData("text") || "").length : 0, files: data ? data.files.length : 0 });
});

function askFullscreen(required) {
  integ.fullscreen = required;
  ui.fullscreen.textContent = integ.wasFullscreen ? "Return to full screen" : "Full screen";
  ui.fullscreenAsk.hidden = !required || Boolean(document.fullscreenElement) || !document.fullscreenEnabled;
}

// --- the socket -----------------------------------------------------------------------------

function socketUrl() {
  const url = new URL(root.dataset.ws, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function connect() {
  hideProblem();
  ui.stage.hidden = false;
  const ws = new WebSocket(socketUrl());
  ws.binaryType = "arraybuffer";
  s.ws = ws;
  s.lastError = null;
  ws.onopen = () => ws.send(JSON.stringify({ type: "hello", tab: tabId(), sample_rate: 16000 }));
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") return playChunk(event.data);
    let m;
    try { m = JSON.parse(event.data); } catch (_) { return; }
    switch (m.type) {
      case "ready":
        s.gotReady = true;
        s.streaming = true;
        s.retryDelay = 1000;
        s.lostSince = null;
        banner("");
        ui.stage.hidden = false;
        if (m.question) showQuestion(m.question);
        else if (!s.question) {
          ui.progress.textContent = "Introduction";
          ui.question.textContent = "Listen to the introduction.";
        }
        setState("thinking");
        startRecorder();
        askFullscreen(Boolean(m.proctoring && m.proctoring.fullscreen));
        flushIntegrity();
        break;
      case "state": setState(m.state, m.can_continue); break;
      case "segment":
        s.current = { id: m.segment, rate: m.sample_rate, started: false, flushed: false, cleared: false, duration: 0, endAt: 0 };
        s.segments.set(m.segment, s.current);
        break;
      case "segment_end": {
        const seg = s.segments.get(m.segment);
        if (seg) segmentEnded(seg);
        if (s.current && s.current.id === m.segment) s.current = null;
        break;
      }
      case "clear": stopPlayback(true); break;
      case "caption": case "question": s.marks.push(m); break;
      case "taken_back": takeBack(m.question); break;
      case "notice": banner(m.message, 8000); break;
      case "error": s.lastError = m; break;
      case "done": finish(); break;
      case "integrity_ack": case "integrity_error": integrityReply(m); break;
      default: break;
    }
  };
  ws.onclose = (event) => onClose(ws, event);
}

function problem(details, retry) {
  ui.stage.hidden = true; // nothing live to show: only the problem and what to do
  showProblem(details, retry);
}

function onClose(ws, event) {
  if (ws !== s.ws) return;
  s.streaming = false;
  integ.inflight = null; // unacknowledged reports go again on the next connection
  stopPlayback(false);
  ui.repeat.disabled = true;
  ui.moreTime.disabled = true;
  ui.notFinished.disabled = true;
  if (s.finished) return;
  const code = event.code;
  const error = s.lastError;
  if (code === 4001 || code === 4003 || code === 4010) {
    location.href = root.dataset.invite; // the server's page explains (used, expired, consent)
    return;
  }
  if (code === 4009) {
    return problem({
      code: "other-tab",
      title: "This interview is open in another tab",
      message: "An interview can only run in one tab or window at a time.",
      next: "Close the other tab or window, then press Try again here.",
    }, connect);
  }
  if (code === 4000) {
    return problem({
      code: "replaced",
      title: "The interview continued in another window",
      message: "This page was disconnected because the same interview was opened again.",
      next: "Use the other window, or press Try again to continue here instead.",
    }, connect);
  }
  if (code === 1007 || code === 1008 || code === 1009 || code === 1003 || code === 4008) {
    return problem({
      code: "protocol",
      title: "The connection was refused",
      message: error ? error.message : "The server did not accept what this page sent.",
      next: "Reload the page. If it happens again, try another browser.",
    }, connect);
  }
  if (error && error.code === "paused") { // the server cannot save (disk full, database down)
    return problem({
      code: "paused",
      title: "The interview is paused",
      message: error.message,
      next: "Press Try again in a few minutes. The interview continues where it stopped.",
    }, connect);
  }
  // Dropped network, server restart, server error: keep trying; the answers are saved.
  if (s.lostSince === null) s.lostSince = performance.now();
  setState("offline");
  if (performance.now() - s.lostSince > 90000) {
    return problem({
      code: "offline",
      title: "We can't reach the interview server",
      message: "The connection has been down for a while. Your answers so far are saved.",
      next: "Check your internet connection, then press Try again (or reload this page). The interview continues where it stopped.",
    }, () => { s.lostSince = null; connect(); });
  }
  const why = error && error.code === "server_error" ? "Something went wrong on the server." : "Connection lost.";
  banner(`${why} Reconnecting… Your answers so far are saved.`);
  setTimeout(connect, s.retryDelay);
  s.retryDelay = Math.min(8000, s.retryDelay * 2);
}

// --- microphone -----------------------------------------------------------------------------

async function startAudio() {
  let ctx;
  let source;
  try {
    ctx = new AudioContext({ sampleRate: 16000, latencyHint: "interactive" });
    await ctx.audioWorklet.addModule(root.dataset.worklet);
    source = ctx.createMediaStreamSource(s.stream);
  } catch (_) {
    // Some browsers cannot connect a microphone to a 16 kHz context: resample in the worklet.
    if (ctx) ctx.close();
    ctx = new AudioContext({ latencyHint: "interactive" });
    await ctx.audioWorklet.addModule(root.dataset.worklet);
    source = ctx.createMediaStreamSource(s.stream);
  }
  await ctx.resume();
  const node = new AudioWorkletNode(ctx, "pcm-capture", {
    numberOfInputs: 1, numberOfOutputs: 0, processorOptions: { targetRate: 16000, chunkMs: 100 },
  });
  node.port.onmessage = (event) => {
    const { pcm, rms } = event.data;
    ui.meter.value = Math.min(1, rms * 4);
    if (rms > VOICED_RMS) {
      metrics.voicedMs += 100;
      metrics.voiceSinceAgent += 100;
      metrics.lastVoiceEnd = performance.now();
    }
    if (s.streaming && s.ws && s.ws.readyState === WebSocket.OPEN && s.ws.bufferedAmount < 512 * 1024) {
      s.ws.send(pcm);
    }
  };
  source.connect(node);
  s.ctx = ctx;
  s.node = node;
}

// --- recording ------------------------------------------------------------------------------

function startRecorder() {
  if (s.recorder) return;
  const types = ["video/webm;codecs=vp8,opus", "video/webm", "video/mp4"];
  const mimeType = types.find((t) => MediaRecorder.isTypeSupported(t)) || "";
  const recorder = new MediaRecorder(s.stream, { mimeType, videoBitsPerSecond: 600000, audioBitsPerSecond: 64000 });
  const type = (recorder.mimeType || mimeType || "video/webm").split(";")[0];
  s.part = null;
  s.chunk = 0;
  recorder.ondataavailable = (event) => {
    if (event.data && event.data.size) {
      s.queue.push({ blob: event.data, type, chunk: s.chunk++ });
      pumpUploads();
    }
  };
  recorder.start(4000);
  s.recorder = recorder;
  ui.recDot.hidden = false;
  ui.recStatus.textContent = "Recording";
}

async function pumpUploads() {
  if (s.uploading) return;
  s.uploading = true;
  let delay = 1000;
  while (s.queue.length) {
    const item = s.queue[0];
    const query = `chunk=${item.chunk}` + (s.part ? `&part=${s.part}` : "");
    let status = 0;
    try {
      const response = await fetch(`${root.dataset.upload}?${query}`, {
        method: "POST", body: item.blob, headers: csrfHeaders({ "Content-Type": item.type }),
      });
      status = response.status;
      if (response.ok) {
        const body = await response.json();
        s.part = body.part;
        s.queue.shift();
        delay = 1000;
        ui.recStatus.textContent = "Recording";
        continue;
      }
      // The browser's CSRF cookie changed (e.g. someone signed in or out in another tab):
      // fetch the new token once and send the same chunk again.
      if (status === 403 && !item.csrfRenewed && (await renewCsrf(response))) {
        item.csrfRenewed = true;
        continue;
      }
    } catch (_) { /* network down: retry below */ }
    if (status >= 400 && status < 500 && status !== 429 && status !== 408) {
      s.queue.shift(); // refused for good (e.g. interview over): do not retry
      continue;
    }
    ui.recStatus.textContent = `Recording (saving ${s.queue.length} part${s.queue.length > 1 ? "s" : ""}…)`;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(10000, delay * 2);
  }
  s.uploading = false;
}

async function finish() {
  s.finished = true;
  s.streaming = false;
  setState("finished", false);
  ui.repeat.disabled = true;
  ui.state.textContent = "Finished. Saving your recording…";
  if (s.recorder && s.recorder.state !== "inactive") {
    await new Promise((resolve) => {
      s.recorder.addEventListener("stop", resolve, { once: true });
      s.recorder.stop();
    });
  }
  const deadline = performance.now() + 20000;
  while ((s.queue.length || s.uploading) && performance.now() < deadline) {
    pumpUploads();
    await new Promise((r) => setTimeout(r, 250));
  }
  if (s.stream) s.stream.getTracks().forEach((t) => t.stop());
  location.href = root.dataset.done;
}

// --- start ----------------------------------------------------------------------------------

async function openMedia() {
  const stream = await turnOnCameraAndMic(ui, openMedia, { checkSupport: true });
  if (!stream) return;
  s.stream = stream;
  ui.start.focus();
}

ui.start.addEventListener("click", async () => {
  ui.start.disabled = true;
  ui.startStatus.textContent = "Connecting…";
  try {
    await startAudio();
  } catch (err) {
    ui.start.disabled = false;
    return showProblem({
      code: "audio",
      title: "Sound could not start",
      message: String((err && err.message) || err),
      next: "Reload the page and press Start again; if it keeps failing, try another browser.",
    }, null);
  }
  ui.startPanel.hidden = true;
  ui.stage.hidden = false;
  startIntegrity();
  setState("preparing");
  ui.question.focus();
  connect();
});

ui.repeat.addEventListener("click", () => {
  send({ type: "repeat" });
  ui.repeat.disabled = true;
  setTimeout(() => { if (s.streaming) ui.repeat.disabled = false; }, 3000);
});

ui.moreTime.addEventListener("click", () => {
  send({ type: "more_time" });
  ui.moreTime.disabled = true; // the agent's next status offers it again
});

ui.notFinished.addEventListener("click", () => {
  send({ type: "continue" });
  ui.notFinished.disabled = true;
});

ui.fullscreen.addEventListener("click", () => {
  document.documentElement.requestFullscreen().catch(() => {
    banner("Full screen is not available in this browser; please keep this window in front.", 8000);
  });
});

window.addEventListener("pagehide", () => {
  // leaving while hidden (tab closed from the background): the duration is unknown
  if (integ.hiddenAt !== null) report("tab_hidden", { t_ms: integ.hiddenAt, duration_ms: null }, integ.hiddenQ);
  s.finished = true;
  if (s.ws) s.ws.close(1000);
});

openMedia();
