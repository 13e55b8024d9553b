// The applicant page: transcript words follow the answer's audio, a click on a word or a quoted
// piece of evidence seeks there, and the camera video (muted) follows the audio.
// Times in data-s / data-e / data-start are seconds from the start of that answer's recording.

const LINGER_S = 0.35; // keep a word lit through the short gap before the next one
const DRIFT_S = 0.3; // re-align the camera when it is further off than this

function setupAnswer(block) {
  const audio = block.querySelector("audio");
  const video = block.querySelector("video");
  const words = [...block.querySelectorAll(".w")];
  const starts = words.map((w) => parseFloat(w.dataset.s));
  const ends = words.map((w) => parseFloat(w.dataset.e));
  const offset = parseFloat(block.dataset.videoOffset || "NaN");
  let lit = -1;

  function indexAt(t) {
    let lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    if (found >= 0 && t > ends[found] + LINGER_S) return -1;
    return found;
  }

  function highlight() {
    if (!audio) return;
    const i = indexAt(audio.currentTime);
    if (i === lit) return;
    if (lit >= 0) words[lit].classList.remove("now");
    lit = i;
    if (i >= 0) words[i].classList.add("now");
    block.dataset.word = String(i);
  }

  function syncVideo(force) {
    if (!video || !audio || Number.isNaN(offset)) return;
    const want = offset + audio.currentTime;
    if (force || Math.abs(video.currentTime - want) > DRIFT_S) {
      try { video.currentTime = want; } catch (_) { /* not seekable yet */ }
    }
  }

  function tick() {
    highlight();
    syncVideo(false);
    if (audio && !audio.paused) requestAnimationFrame(tick);
  }

  if (audio) {
    audio.addEventListener("play", () => {
      // One answer at a time: starting this one pauses any other.
      for (const other of document.querySelectorAll("audio")) if (other !== audio) other.pause();
      syncVideo(true);
      if (video) video.play().catch(() => {});
      requestAnimationFrame(tick);
    });
    audio.addEventListener("pause", () => { if (video) video.pause(); highlight(); });
    audio.addEventListener("seeked", () => { highlight(); syncVideo(true); });
    audio.addEventListener("timeupdate", highlight);
    audio.addEventListener("error", () => {
      const note = document.createElement("p");
      note.className = "hint media-error";
      note.textContent = "This recording could not be loaded. Reload the page; if it keeps failing, the file may have been deleted.";
      audio.replaceWith(note);
    });
  }
  if (video) {
    video.addEventListener("loadedmetadata", () => syncVideo(true));
    if (!audio) video.controls = true;
  }
  block.seek = (t) => {
    if (!audio) return false;
    audio.currentTime = Math.max(0, t);
    highlight();
    syncVideo(true);
    audio.play().catch(() => {});
    return true;
  };
  for (const [i, w] of words.entries()) {
    w.addEventListener("click", () => block.seek(starts[i]));
  }
}

for (const block of document.querySelectorAll(".answer[data-answer]")) setupAnswer(block);

for (const button of document.querySelectorAll("button.quote")) {
  button.addEventListener("click", () => {
    const block = document.querySelector(`.answer[data-answer="${button.dataset.answer}"]`);
    if (!block || !block.seek) return;
    const start = parseFloat(button.dataset.start || "0");
    block.scrollIntoView({ block: "nearest", behavior: "smooth" });
    block.seek(Number.isNaN(start) ? 0 : start);
  });
}

document.documentElement.dataset.reportReady = "1";
