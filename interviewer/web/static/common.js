// Shared by the device check and the interview page: what the browser can do, and what a
// person should do about each media problem. Every message says what happened and what next.

export function unsupportedReason() {
  if (!window.isSecureContext) {
    return {
      title: "This page must be opened over a secure connection",
      message: "Browsers only allow the camera and microphone on https:// pages.",
      next: "Ask the recruiter for an https:// link, then open it again.",
    };
  }
  const missing = [];
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) missing.push("camera access");
  if (!window.AudioContext || !window.AudioWorkletNode) missing.push("audio processing");
  if (!window.MediaRecorder) missing.push("recording");
  if (!window.WebSocket) missing.push("live connection");
  if (!missing.length) return null;
  return {
    title: "Your browser can't run this interview",
    message: `It does not support ${missing.join(" and ")}, which the interview needs.`,
    next: "Open this link in a recent Chrome, Edge, Firefox or Safari (on a phone, the built-in browser), then try again.",
  };
}

export function mediaProblem(err) {
  const name = (err && err.name) || "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return {
      code: "denied",
      title: "Camera and microphone are blocked",
      message: "The browser was not allowed to use your camera and microphone, so the interview cannot be recorded.",
      next: "Click the camera icon in the address bar (or open the site settings), choose Allow for the camera and the microphone, then press Try again.",
    };
  }
  if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
    return {
      code: "no-device",
      title: "No microphone or camera found",
      message: "This interview needs a microphone and a camera, and the browser could not find one of them.",
      next: "Connect a headset or webcam (or use a laptop or phone that has them), then press Try again.",
    };
  }
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
    return {
      code: "busy",
      title: "Your camera or microphone is busy",
      message: "Another app or tab is using it.",
      next: "Close video-call apps and other tabs that use the camera, then press Try again.",
    };
  }
  return {
    code: "media",
    title: "The camera or microphone could not start",
    message: String((err && err.message) || err || "Unknown error"),
    next: "Reload the page and try again; if it keeps failing, try another browser.",
  };
}

export async function openCameraAndMic() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 30 } },
  });
  if (!stream.getAudioTracks().length) throw Object.assign(new Error("no microphone"), { name: "NotFoundError" });
  if (!stream.getVideoTracks().length) throw Object.assign(new Error("no camera"), { name: "NotFoundError" });
  return stream;
}

// The interview pages' first step (interview.js, livekit-interview.js): camera and microphone
// on, shown in the preview, the Start button enabled. Resolves to the stream, or to null once
// the problem is on screen; `retry` is what its Try again button runs.
export async function turnOnCameraAndMic(ui, retry, { checkSupport = false } = {}) {
  hideProblem();
  ui.start.disabled = true;
  ui.startStatus.textContent = "Turning on your camera and microphone…";
  const unsupported = checkSupport ? unsupportedReason() : null;
  if (unsupported) {
    ui.startStatus.textContent = "";
    showProblem({ code: "unsupported", ...unsupported }, null);
    return null;
  }
  let stream;
  try {
    stream = await openCameraAndMic();
  } catch (err) {
    ui.startStatus.textContent = "";
    showProblem(mediaProblem(err), retry);
    return null;
  }
  ui.preview.srcObject = stream;
  ui.start.disabled = false;
  ui.startStatus.textContent = "Camera and microphone are on.";
  return stream;
}

export function showProblem(problem, onRetry) {
  const box = document.getElementById("problem");
  box.querySelector("[data-slot=title]").textContent = problem.title;
  box.querySelector("[data-slot=message]").textContent = problem.message;
  box.querySelector("[data-slot=next]").textContent = problem.next;
  box.dataset.problem = problem.code || "error";
  const retry = box.querySelector("[data-action=retry]");
  retry.hidden = !onRetry;
  retry.onclick = onRetry ? () => { hideProblem(); onRetry(); } : null;
  box.hidden = false;
  box.focus();
}

export function hideProblem() {
  document.getElementById("problem").hidden = true;
}

// RMS of an analyser's current window, 0..1, for level meters.
export function levelOf(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (let i = 0; i < buffer.length; i++) sum += buffer[i] * buffer[i];
  return Math.min(1, Math.sqrt(sum / buffer.length) * 4);
}

// Every state-changing request carries the page's CSRF token (see interviewer/web/auth.py).
export function csrfHeaders(headers = {}) {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? { ...headers, "X-CSRF-Token": meta.content } : headers;
}

// After a 403 that names a CSRF problem, fetch this browser's current token into the page's
// <meta>; true when the request is worth sending again.
export async function renewCsrf(response) {
  try {
    const body = await response.clone().json();
    if (!body || !body.csrf) return false;
    const fresh = await fetch("/csrf", { cache: "no-store", headers: { Accept: "application/json" } });
    if (!fresh.ok) return false;
    const { token } = await fresh.json();
    let meta = document.querySelector('meta[name="csrf-token"]');
    if (!meta) {
      meta = document.createElement("meta");
      meta.name = "csrf-token";
      document.head.append(meta);
    }
    meta.content = token;
    return true;
  } catch (_) {
    return false;
  }
}
