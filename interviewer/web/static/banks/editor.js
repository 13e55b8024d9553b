// The bank editor: a structured form over the bank's data and a raw YAML mode, both checked
// live by the server's validator (the same one as `interviewer bank validate`).
// The server is the only judge: this script never decides whether a bank is valid.

const script = document.getElementById("editor-script");
const bankId = script.dataset.bank;
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const $ = (id) => document.getElementById(id);

let data = JSON.parse($("bank-data").textContent);
let mode = data ? "form" : "yaml";
let baseSha = $("base-sha").value;
let dirty = false;
let seq = 0;
let timer = null;
let conflictShown = false;
let lastIssues = JSON.parse($("bank-issues").textContent) || [];

// --- helpers ------------------------------------------------------------------------------

function el(tag, attrs = {}, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid) node.append(kid);
  return node;
}

function parts(path) {
  return path.split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

function getAt(obj, path) {
  let cur = obj;
  for (const p of parts(path)) {
    if (cur === null || cur === undefined) return undefined;
    cur = cur[p];
  }
  return cur;
}

function setAt(obj, path, value) {
  const ps = parts(path);
  let cur = obj;
  ps.slice(0, -1).forEach((p, i) => {
    if (cur[p] === null || typeof cur[p] !== "object") cur[p] = typeof ps[i + 1] === "number" ? [] : {};
    cur = cur[p];
  });
  cur[ps[ps.length - 1]] = value;
}

function list(path) {
  let arr = getAt(data, path);
  if (!Array.isArray(arr)) {
    arr = [];
    setAt(data, path, arr);
  }
  return arr;
}

function convert(kind, raw) {
  const t = raw.trim();
  if (kind === "int" && /^-?\d+$/.test(t)) return parseInt(t, 10);
  if (kind === "number" && /^-?(\d+\.?\d*|\.\d+)$/.test(t)) return parseFloat(t);
  return raw; // the validator says what is wrong with it
}

function label(path) {
  const ps = parts(path);
  const out = [];
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i];
    if (typeof p === "number") {
      const item = getAt(data, ps.slice(0, i + 1).join("."));
      const name = { questions: "Question", criteria: "Criterion", levels: "Level", key_points: "Key point", red_flags: "Red flag", follow_ups: "Follow-up" }[ps[i - 1]] || "Item";
      out.pop();
      out.push(`${name} ${p + 1}${item && item.id ? ` (${item.id})` : ""}`);
    } else if (p !== "rubric") {
      out.push(p.replaceAll("_", " "));
    }
  }
  return out.join(" › ") || "bank";
}

// --- the form -----------------------------------------------------------------------------

function field(text, path, kind = "text", opts = {}) {
  const value = getAt(data, path);
  const id = "f-" + path.replaceAll(".", "-");
  const attrs = { id, "data-path": path, "aria-describedby": `${id}-err`, readonly: opts.readonly, list: opts.list, placeholder: opts.placeholder };
  let input;
  if (kind === "textarea" || kind === "line") {
    // "line": one line of text that wraps (and grows) instead of scrolling out of sight.
    input = el("textarea", { ...attrs, rows: kind === "line" ? 1 : opts.rows || 3, class: kind === "line" ? "line" : null });
    input.value = value ?? "";
    if (kind === "line") input.addEventListener("keydown", (e) => { if (e.key === "Enter") e.preventDefault(); });
    input.addEventListener("input", () => grow(input));
    requestAnimationFrame(() => grow(input));
  } else {
    input = el("input", { ...attrs, type: "text", inputmode: kind === "int" ? "numeric" : kind === "number" ? "decimal" : null, class: kind !== "text" ? "short" : null, autocomplete: "off" });
    input.value = value ?? "";
  }
  input.addEventListener("input", () => {
    setAt(data, path, kind === "int" || kind === "number" ? convert(kind, input.value) : input.value);
    changed();
  });
  input.addEventListener("blur", () => validateSoon(0));
  return el("div", { class: `field ${opts.cls || ""}`, "data-field": path },
    el("label", { for: id, text }), input, opts.after, el("p", { class: "field-error", id: `${id}-err`, hidden: true }));
}

function grow(area) {
  area.style.height = "auto";
  area.style.height = `${area.scrollHeight + 2}px`;
}

function controls(arrPath, i, n, what) {
  const move = (d) => () => {
    const arr = list(arrPath);
    [arr[i], arr[i + d]] = [arr[i + d], arr[i]];
    changed();
    render();
  };
  return el("span", { class: "row-controls" },
    el("button", { type: "button", class: "icon", "aria-label": `Move ${what} ${i + 1} up`, title: "Move up", disabled: i === 0, onclick: move(-1) }, "↑"),
    el("button", { type: "button", class: "icon", "aria-label": `Move ${what} ${i + 1} down`, title: "Move down", disabled: i === n - 1, onclick: move(1) }, "↓"),
    el("button", { type: "button", class: "icon danger", "aria-label": `Remove ${what} ${i + 1}`, title: "Remove", onclick: () => {
      list(arrPath).splice(i, 1);
      changed();
      render();
    } }, "✕"));
}

function rows(title, arrPath, what, make, fresh, cls = "") {
  const arr = list(arrPath);
  return el("div", { class: `rows ${cls}`, "data-path": arrPath },
    el("h4", { text: title }),
    el("p", { class: "field-error", hidden: true }),
    arr.map((_, i) => el("div", { class: "row", "data-path": `${arrPath}.${i}` },
      make(`${arrPath}.${i}`, i), controls(arrPath, i, arr.length, what),
      el("p", { class: "field-error", hidden: true }))),
    el("button", { type: "button", class: "add", onclick: () => {
      arr.push(fresh());
      changed();
      render();
      const added = document.querySelector(`[data-path="${arrPath}.${arr.length - 1}"] input, [data-path="${arrPath}.${arr.length - 1}"] textarea`);
      if (added) added.focus();
    } }, `+ Add ${what}`));
}

function listenButton(path) {
  const audio = el("audio", { controls: true, preload: "auto", hidden: true, class: "listen-audio", "data-for": path });
  const note = el("span", { class: "hint listen-note", role: "status" });
  const button = el("button", { type: "button", class: "secondary small listen", "data-for": path, onclick: async () => {
    const text = getAt(data, path);
    button.disabled = true;
    note.textContent = "Rendering speech…";
    try {
      const res = await post(`/api/banks/${bankId}/audio`, { text: typeof text === "string" ? text : "" });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
      audio.src = body.url;
      audio.hidden = false;
      note.textContent = "";
      audio.play().catch(() => { note.textContent = "Press play to listen."; });
    } catch (err) {
      note.textContent = `Could not render the audio: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  } }, "▶ Listen");
  return el("div", { class: "listen-row" }, button, note, audio);
}

function question(qp, qi, n) {
  const q = getAt(data, qp);
  const kpIds = (q.rubric?.criteria || []).flatMap((c) => (c.key_points || []).map((k) => k.id)).filter(Boolean);
  const dl = `kp-${qi}`;
  return el("section", { class: "q-block panel", "data-path": qp },
    el("div", { class: "question-head" },
      el("h3", { text: `Question ${qi + 1}${q.id ? " · " + q.id : ""}` }),
      controls("questions", qi, n, "question")),
    el("p", { class: "field-error", hidden: true }),
    el("datalist", { id: dl }, kpIds.map((k) => el("option", { value: k }))),
    el("div", { class: "grid2" }, field("Id", `${qp}.id`), field("Time limit (seconds)", `${qp}.time_limit_s`, "int", { placeholder: "180 (default)" })),
    field("Prompt (spoken word for word)", `${qp}.prompt`, "textarea", { after: listenButton(`${qp}.prompt`) }),
    field("Reference answer (for the scorer)", `${qp}.reference_answer`, "textarea", { rows: 4 }),
    el("h4", { class: "group", text: "Rubric criteria" }),
    el("div", { class: "criteria", "data-path": `${qp}.rubric.criteria` },
      el("p", { class: "field-error", hidden: true }),
      list(`${qp}.rubric.criteria`).map((_, ci, arr) => criterion(`${qp}.rubric.criteria.${ci}`, ci, arr.length, `${qp}.rubric.criteria`)),
      el("button", { type: "button", class: "add", onclick: () => {
        list(`${qp}.rubric.criteria`).push({ id: "", description: "", weight: 1, levels: [{ score: 0, descriptor: "" }, { score: 1, descriptor: "" }], key_points: [] });
        changed();
        render();
      } }, "+ Add criterion")),
    rows("Follow-ups (asked when the answer misses the key point)", `${qp}.follow_ups`, "follow-up",
      (p) => [field("Key point", `${p}.trigger`, "text", { list: dl, cls: "narrow" }), field("Prompt (spoken)", `${p}.prompt`, "line", { cls: "wide", after: listenButton(`${p}.prompt`) })],
      () => ({ trigger: kpIds[0] || "", prompt: "" })),
    rows("Red flags", `${qp}.rubric.red_flags`, "red flag",
      (p) => [field("Id", `${p}.id`, "text", { cls: "narrow" }), field("Misconception or unsafe claim", `${p}.description`, "line", { cls: "wide" }), field("Penalty (0-1)", `${p}.penalty`, "number", { cls: "tiny", placeholder: "0.25" })],
      () => ({ id: "", description: "", penalty: 0.25 })));
}

function criterion(cp, ci, n, arrPath) {
  return el("fieldset", { class: "criterion", "data-path": cp },
    el("legend", {}, `Criterion ${ci + 1}`, controls(arrPath, ci, n, "criterion")),
    el("p", { class: "field-error", hidden: true }),
    el("div", { class: "grid3" }, field("Id", `${cp}.id`), field("Weight", `${cp}.weight`, "number")),
    field("What it measures", `${cp}.description`, "textarea", { rows: 2 }),
    rows("Levels", `${cp}.levels`, "level",
      (p) => [field("Score", `${p}.score`, "int", { cls: "tiny" }), field("What an answer at this level looks like", `${p}.descriptor`, "line", { cls: "wide" })],
      () => ({ score: list(`${cp}.levels`).length, descriptor: "" })),
    rows("Key points", `${cp}.key_points`, "key point",
      (p) => [field("Id", `${p}.id`, "text", { cls: "narrow" }), field("Point a strong answer makes", `${p}.text`, "line", { cls: "wide" })],
      () => ({ id: "", text: "" })));
}

function render() {
  const root = $("bank-form");
  const focused = document.activeElement?.dataset?.path;
  root.replaceChildren(
    el("section", { class: "panel", "data-path": "" },
      el("h2", { text: "Bank" }),
      el("div", { class: "grid3" }, field("Id", "id", "text", { readonly: true }), field("Version", "version", "int"), field("Language", "language", "text", { placeholder: "en (default)" })),
      el("div", { class: "grid2" }, field("Title", "title"), field("Domain", "domain")),
      field("Who it is for", "description", "textarea", { rows: 2 }),
      field("Practice question (not scored)", "practice_question", "textarea", { rows: 2, placeholder: "To check your microphone, please tell me briefly about your current role. (default)", after: listenButton("practice_question") })),
    el("h2", { text: "Questions" }),
    el("div", { "data-path": "questions" }, el("p", { class: "field-error", hidden: true }),
      list("questions").map((_, qi, arr) => question(`questions.${qi}`, qi, arr.length))),
    el("button", { type: "button", class: "add", onclick: () => {
      list("questions").push({ id: "", prompt: "", time_limit_s: 180, reference_answer: "", follow_ups: [], rubric: { criteria: [{ id: "", description: "", weight: 1, levels: [{ score: 0, descriptor: "" }, { score: 1, descriptor: "" }], key_points: [] }], red_flags: [] } });
      changed();
      render();
    } }, "+ Add question"));
  showIssues(lastIssues);
  if (focused) document.querySelector(`[data-path="${focused}"]`)?.focus();
}

// --- talking to the server ------------------------------------------------------------------

function post(url, body) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
}

function payload() {
  return mode === "form" ? { bank: data } : { yaml: $("yaml").value };
}

function setStatus(text, cls = "") {
  $("status").textContent = text;
  $("status").className = `status ${cls}`;
}

function changed() {
  dirty = true;
  setStatus("Unsaved changes", "dirty");
  validateSoon(600);
}

function validateSoon(ms) {
  clearTimeout(timer);
  timer = setTimeout(validate, ms);
}

async function validate() {
  const mine = ++seq;
  let res;
  try {
    res = await post(`/api/banks/${bankId}/validate`, payload());
  } catch {
    setStatus("Cannot reach the server to check the bank; your changes are still here.", "error");
    return null;
  }
  const body = await res.json().catch(() => ({}));
  if (mine !== seq) return null; // a newer check is on its way
  if (!res.ok) {
    setStatus(body.error || `Check failed (HTTP ${res.status})`, "error");
    return null;
  }
  showIssues(body.issues);
  if (body.disk_sha && body.disk_sha !== baseSha && !conflictShown) {
    setStatus("The draft file changed elsewhere since you opened it; saving will show both versions.", "error");
  } else if (dirty) {
    setStatus(body.ok ? "Unsaved changes · no problems" : "Unsaved changes", "dirty");
  }
  return body;
}

// "questions[colour].rubric.criteria[clarity].weight: Input should be..." -> "Input should be...":
// next to a field (or under its label) the path says nothing new.
function short(message) {
  return message.replace(/^[A-Za-z_]+(\[[^\]]*\]|\.[A-Za-z_]+)*: /, "");
}

function showIssues(issues) {
  lastIssues = issues || [];
  document.querySelectorAll(".field-error").forEach((p) => { p.hidden = true; p.textContent = ""; });
  document.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
  const listEl = $("problems-list");
  listEl.replaceChildren();
  for (const issue of lastIssues) {
    const where = mode === "form" && issue.path !== null ? label(issue.path) : issue.line ? `line ${issue.line}` : "";
    const message = mode === "form" && issue.path !== null ? short(issue.message) : issue.message;
    const item = el("li", {}, where ? el("span", { class: "line", text: where }) : null, ` ${message} `, el("span", { class: "fix", text: `Fix: ${issue.fix}` }));
    item.addEventListener("click", () => goTo(issue));
    listEl.append(item);
    if (mode === "form" && issue.path !== null) attach(issue);
  }
  $("problems").hidden = lastIssues.length === 0;
  $("problems-title").textContent = `${lastIssues.length} problem${lastIssues.length === 1 ? "" : "s"}`;
}

function target(path) {
  let p = path;
  while (true) {
    const node = document.querySelector(`#bank-form [data-path="${p}"]`);
    if (node) return node;
    if (!p.includes(".")) return document.querySelector('#bank-form [data-path=""]');
    p = p.slice(0, p.lastIndexOf("."));
  }
}

function attach(issue) {
  const node = target(issue.path);
  if (!node) return;
  let slot;
  if (node.matches("input, textarea")) {
    node.setAttribute("aria-invalid", "true");
    slot = node.parentElement.querySelector(":scope > .field-error");
  } else {
    slot = node.querySelector(":scope > .field-error");
  }
  if (!slot) return;
  slot.hidden = false;
  slot.append((slot.textContent ? " · " : "") + `${short(issue.message)} (fix: ${issue.fix})`);
  const next = issue.path === "version" && /version: (\d+)/.exec(issue.fix);
  if (next) {
    slot.append(" ", el("button", { type: "button", class: "secondary small", id: "bump-version", onclick: () => {
      data.version = Number(next[1]);
      changed();
      render();
    } }, `Set version to ${next[1]}`));
  }
}

function goTo(issue) {
  if (mode === "form" && issue.path !== null) {
    const node = target(issue.path);
    node?.scrollIntoView({ block: "center" });
    if (node?.matches("input, textarea")) node.focus();
    return;
  }
  const ta = $("yaml");
  const lines = ta.value.split("\n");
  const start = lines.slice(0, Math.max(0, issue.line - 1)).join("\n").length + (issue.line > 1 ? 1 : 0);
  ta.focus();
  ta.setSelectionRange(start, start + (lines[issue.line - 1] || "").length);
}

async function save() {
  setStatus("Saving…");
  let res;
  try {
    res = await post(`/api/banks/${bankId}/draft`, { ...payload(), base_sha: baseSha });
  } catch {
    setStatus("Not saved: cannot reach the server. Your changes are still here; try again.", "error");
    return null;
  }
  const body = await res.json().catch(() => ({}));
  if (res.status === 409) {
    conflictShown = true;
    $("conflict").hidden = false;
    $("conflict-message").textContent = body.error;
    $("conflict-diff").textContent = body.diff || "";
    $("conflict").dataset.sha = body.current_sha || "";
    setStatus("Not saved: the file changed. Choose below.", "error");
    $("conflict").scrollIntoView({ block: "start" });
    return null;
  }
  if (!res.ok) {
    setStatus(`Not saved: ${body.error || "HTTP " + res.status}`, "error");
    return null;
  }
  baseSha = body.sha;
  $("base-sha").value = body.sha;
  $("publish-sha").value = body.sha;
  $("yaml").value = body.yaml;
  dirty = false;
  conflictShown = false;
  $("conflict").hidden = true;
  showIssues(body.issues);
  setStatus(`Saved. ${body.message}`, body.ok ? "ok" : "");
  return body;
}

async function switchMode(next) {
  if (next === mode) return;
  const body = await validate();
  if (!body) return;
  if (next === "yaml") {
    $("yaml").value = body.yaml;
  } else {
    if (!body.data) {
      setStatus("The form can open only when the YAML has the shape of a bank (lists and sections where the format has them): fix the problems listed first.", "error");
      return;
    }
    data = body.data;
  }
  mode = next;
  $("form-mode").hidden = mode !== "form";
  $("yaml-mode").hidden = mode !== "yaml";
  $("mode-form").setAttribute("aria-pressed", String(mode === "form"));
  $("mode-yaml").setAttribute("aria-pressed", String(mode === "yaml"));
  if (mode === "form") render();
  else showIssues(body.issues);
}

// --- wiring -------------------------------------------------------------------------------

$("yaml").addEventListener("input", () => { if (mode === "yaml") changed(); });
$("yaml").addEventListener("blur", () => { if (mode === "yaml") validateSoon(0); });
$("mode-form").addEventListener("click", () => switchMode("form"));
$("mode-yaml").addEventListener("click", () => switchMode("yaml"));
$("save").addEventListener("click", save);
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
    event.preventDefault(); // the browser's "save page" would not save the bank
    save();
  }
});
$("conflict-reload").addEventListener("click", () => { dirty = false; });
$("conflict-overwrite").addEventListener("click", () => {
  baseSha = $("conflict").dataset.sha || null;
  save();
});
$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (dirty) {
    const saved = await save();
    if (!saved) return;
  }
  if (lastIssues.length) {
    setStatus("Fix the problems listed before publishing.", "error");
    $("problems").scrollIntoView({ block: "start" });
    return;
  }
  dirty = false;
  event.target.submit();
});
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => document.querySelectorAll("#bank-form textarea").forEach(grow), 150);
});
window.addEventListener("beforeunload", (event) => {
  if (dirty) {
    event.preventDefault();
    event.returnValue = "";
  }
});

if (mode === "form") render();
else { $("mode-form").setAttribute("aria-pressed", "false"); $("mode-yaml").setAttribute("aria-pressed", "true"); showIssues(lastIssues); }
