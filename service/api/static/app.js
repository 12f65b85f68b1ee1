// Tongyeok's translation page: talks to this server only (same origin), nothing else.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { pairs: new Map(), limit: 5000, maxTexts: 128, keyRequired: false, controller: null, timer: 0 };

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function showMessage(text) { $("message").textContent = text || ""; }

function askForKey(text) {
  $("key-row").hidden = false;
  showMessage(text);
}

// What the user reads for each failure: the server's own words where it gave them.
async function describeFailure(response) {
  let detail = "";
  try { detail = (await response.json()).error || ""; } catch (e) { detail = ""; }
  const s = response.status;
  if (s === 401 || s === 403) {
    $("key-row").hidden = false;
    return "This server needs a valid API key: enter it above. " + detail;
  }
  if (s === 429) {
    const wait = response.headers.get("Retry-After");
    return "The server is busy right now" + (wait ? "; try again in " + wait + " s." : "; try again in a moment.");
  }
  if (s === 413) return "The text is too large for this server. " + detail;
  if (s >= 500) return "The server failed (" + s + "). " + (detail || "Try again later.");
  return "The server refused the text (" + s + "): " + (detail || response.statusText);
}

async function getJSON(url) {
  const response = await fetch(url, { headers: headers() });
  if (!response.ok) throw response;
  return response.json();
}

async function loadSettings() {
  try {
    const s = await getJSON("/frontend/settings");
    state.keyRequired = Boolean(s.keyRequired);
    if (s.charLimit > 0) state.limit = s.charLimit;
  } catch (e) { /* an older server: the models' limits below are enough */ }
  if (state.keyRequired) $("key-row").hidden = false;
}

async function loadModels() {
  let body;
  try {
    body = await getJSON("/v1/models");
  } catch (failure) {
    showMessage(failure instanceof Response ? await describeFailure(failure) : "Cannot reach the server.");
    return false;
  }
  state.pairs.clear();
  for (const m of body.models) {
    if (!state.pairs.has(m.source)) state.pairs.set(m.source, new Set());
    state.pairs.get(m.source).add(m.target);
    state.limit = Math.min(state.limit, m.max_text_chars || state.limit);
    state.maxTexts = Math.min(state.maxTexts, m.max_texts || state.maxTexts);
  }
  if (!state.pairs.size) { showMessage("This server has no model loaded."); return false; }
  showMessage("");
  const source = $("source");
  const previous = source.value;
  source.replaceChildren(...[...state.pairs.keys()].sort().map((code) => option(code)));
  if (state.pairs.has(previous)) source.value = previous;
  fillTargets();
  updateCount();
  return true;
}

function languageName(code) {
  try { return new Intl.DisplayNames(["en"], { type: "language" }).of(code) || code; }
  catch (e) { return code; }
}

function option(code) {
  const o = document.createElement("option");
  o.value = code;
  o.textContent = languageName(code) + " (" + code + ")";
  return o;
}

function fillTargets(wanted) {
  const target = $("target");
  const targets = [...(state.pairs.get($("source").value) || [])].sort();
  const keep = wanted || target.value;
  target.replaceChildren(...targets.map((code) => option(code)));
  if (targets.includes(keep)) target.value = keep;
  updateSwap();
}

function updateSwap() {
  const back = state.pairs.get($("target").value);
  $("swap").disabled = !(back && back.has($("source").value));
}

function swap() {
  const source = $("source").value, target = $("target").value;
  const translated = outputText();
  $("source").value = target;
  fillTargets(source);
  if (translated) $("input").value = translated;
  schedule(0);
}

function updateCount() {
  const n = $("input").value.length;
  $("count").textContent = n + " / " + state.limit + " characters";
  $("count").classList.toggle("over", n > state.limit);
  return n <= state.limit;
}

function outputText() {
  return [...$("output").children].map((p) => p.textContent).join("\n");
}

function render(lines) {
  $("output").replaceChildren(...lines.map((line) => {
    const p = document.createElement("p");
    p.textContent = line;
    return p;
  }));
  $("copy").disabled = !lines.some((line) => line);
}

function renderAlternatives(alternatives) {
  $("alternatives").replaceChildren(...alternatives.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  $("alternatives-box").hidden = alternatives.length === 0;
}

function schedule(delay) {
  clearTimeout(state.timer);
  state.timer = setTimeout(translate, delay === undefined ? 300 : delay);
}

// One request at a time: a newer keystroke aborts the one in flight, whose answer is stale.
async function translate() {
  if (state.controller) state.controller.abort();
  const text = $("input").value;
  if (!updateCount()) { showMessage("The text is longer than this server's limit of " + state.limit + " characters."); return; }
  const lines = text.split("\n");
  const wanted = lines.map((line, i) => [i, line]).filter(([, line]) => line.trim());
  if (!wanted.length || !$("target").value) {
    render(lines.map(() => "")); renderAlternatives([]); showMessage(""); return;
  }
  if (wanted.length > state.maxTexts) { showMessage("At most " + state.maxTexts + " paragraphs at a time."); return; }
  const controller = new AbortController();
  state.controller = controller;
  $("output").setAttribute("aria-busy", "true");
  try {
    const response = await fetch("/v1/translate", {
      method: "POST", headers: headers(), signal: controller.signal,
      body: JSON.stringify({
        texts: wanted.map(([, line]) => line), source: $("source").value,
        target: $("target").value, beam_size: 4, nbest: 3,
      }),
    });
    if (!response.ok) { showMessage(await describeFailure(response)); return; }
    const body = await response.json();
    const out = lines.map(() => "");
    wanted.forEach(([i], k) => { out[i] = body.translations[k].text; });
    render(out);
    renderAlternatives(wanted.length === 1 ? body.translations[0].alternatives || [] : []);
    showMessage("");
  } catch (e) {
    if (e.name !== "AbortError") showMessage("Cannot reach the server: " + e.message);
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      $("output").setAttribute("aria-busy", "false");
    }
  }
}

async function copy() {
  const text = outputText();
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const range = document.createRange();
    range.selectNodeContents($("output"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    document.execCommand("copy");
  }
  $("copied").textContent = "Copied.";
  setTimeout(() => { $("copied").textContent = ""; }, 2000);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("input").addEventListener("input", () => { updateCount(); schedule(); });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); schedule(0); }
  });
  $("source").addEventListener("change", () => { fillTargets(); schedule(0); });
  $("target").addEventListener("change", () => { updateSwap(); schedule(0); });
  $("swap").addEventListener("click", swap);
  $("copy").addEventListener("click", copy);
  // With keys set the models need the key too: translate only once they loaded (else the
  // message saying why stays).
  $("api-key").addEventListener("change", async () => { if (await loadModels()) schedule(0); });
  $("translator").addEventListener("submit", (e) => { e.preventDefault(); schedule(0); });
  await loadSettings();
  await loadModels();
});
