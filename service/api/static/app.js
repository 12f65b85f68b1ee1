// Tongyeok's translation page: talks to this server only (same origin), nothing else.
// Its one rule: the output pane shows the translation of the text now in the input, for the pair
// now chosen, or nothing; every failure says why, next to the output (docs/decisions.md #45).
"use strict";

const $ = (id) => document.getElementById(id);
const AUTO = "auto";
const state = {
  pairs: new Map(), models: [], limit: 5000, maxTexts: 128, keyRequired: false,
  controller: null, timer: 0, blocker: "", loadedKey: null, detected: "",
  nativeAuto: true,  // false once the native API refused source "auto": LibreTranslate's then
};

function key() { return $("api-key").value.trim(); }

function headers(json = true) {
  const h = json ? { "Content-Type": "application/json" } : {};
  if (key()) h.Authorization = "Bearer " + key();
  return h;
}

// A message where the user is looking: beside the output, scrolled into view (on a phone the
// output pane is below the input, often below the fold).
function showMessage(text, where = "message") {
  const box = $(where);
  box.textContent = text || "";
  if (!text) return;
  const at = box.getBoundingClientRect();
  if (at.top < 0 || at.bottom > window.innerHeight) box.scrollIntoView({ block: "center" });
}

// What the user reads for each failure: the server's own words where it gave them.
async function describeFailure(response) {
  let detail = "";
  try { detail = (await response.json()).error || ""; } catch (e) { detail = ""; }
  const s = response.status;
  if (s === 401 || s === 403) {
    $("key-row").hidden = false;
    const why = s === 401 ? "This server needs an API key" : "This server refused the API key";
    return why + (detail ? ": “" + detail + "”" : "") + ". Enter a valid API key above.";
  }
  if (s === 429) {
    const wait = response.headers.get("Retry-After");
    return "The server is busy right now" + (wait ? "; try again in " + wait + " s." : "; try again in a moment.");
  }
  if (s === 413) return "The text is too large for this server. " + detail;
  if (s >= 500) return "The server failed (" + s + "). " + (detail || "Try again later.");
  return "The server refused the text (" + s + "): " + (detail || response.statusText);
}

async function failureText(failure) {
  if (failure instanceof Response) return describeFailure(failure);
  return "Cannot reach the server" + (failure && failure.message ? ": " + failure.message : ".");
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

// The languages come from /v1/models, which needs the key when keys are set: until it answers,
// its failure is the page's message (`blocker`) and nothing is sent for translation.
async function loadModels() {
  state.loadedKey = key();
  let body;
  try {
    body = await getJSON("/v1/models");
  } catch (failure) {
    state.blocker = await failureText(failure);
    clearOutput();
    $("swap-reason").textContent = "No languages to swap until the server lists its models.";
    $("swap-reason").hidden = false;
    showMessage(state.blocker);
    return false;
  }
  state.models = body.models || [];
  state.pairs.clear();
  for (const m of state.models) {
    if (!state.pairs.has(m.source)) state.pairs.set(m.source, new Set());
    state.pairs.get(m.source).add(m.target);
    state.limit = Math.min(state.limit, m.max_text_chars || state.limit);
    state.maxTexts = Math.min(state.maxTexts, m.max_texts || state.maxTexts);
  }
  state.blocker = state.pairs.size ? "" : "This server has no model loaded.";
  showMessage(state.blocker);
  if (!state.pairs.size) return false;
  const source = $("source");
  const previous = source.value;
  const detect = option(AUTO, "Detect language");
  source.replaceChildren(detect, ...[...state.pairs.keys()].sort().map((code) => option(code)));
  source.value = state.pairs.has(previous) || previous === AUTO ? previous : source.options[1].value;
  fillTargets();
  updateCount();
  return true;
}

function languageName(code) {
  try { return new Intl.DisplayNames(["en"], { type: "language" }).of(code) || code; }
  catch (e) { return code; }
}

function label(code) { return languageName(code) + " (" + code + ")"; }

function option(code, text) {
  const o = document.createElement("option");
  o.value = code;
  o.textContent = text || label(code);
  return o;
}

function targetsOf(source) {
  if (source !== AUTO) return [...(state.pairs.get(source) || [])];
  return [...new Set([...state.pairs.values()].flatMap((targets) => [...targets]))];
}

function fillTargets(wanted) {
  const target = $("target");
  const targets = targetsOf($("source").value).sort();
  const keep = wanted || target.value;
  target.replaceChildren(...targets.map((code) => option(code)));
  if (targets.includes(keep)) target.value = keep;
  updatePair();
}

// The source the translation came from: the one chosen, or the one detected.
function effectiveSource() {
  const source = $("source").value;
  return source === AUTO ? state.detected : source;
}

// The swap button, the reason it is disabled, and what the chosen pair's model is for.
function updatePair() {
  const source = effectiveSource(), target = $("target").value;
  let reason = "";
  if (!source) reason = "Swap needs a source language: choose one, or translate to detect it.";
  else if (!(state.pairs.get(target) || new Set()).has(source)) {
    reason = "No model translates " + target + "→" + source + ", so the languages cannot be swapped.";
  }
  $("swap").disabled = Boolean(reason);
  $("swap").title = reason || "Swap languages";
  $("swap-reason").textContent = reason;
  $("swap-reason").hidden = !reason;
  const model = state.models.find((m) => m.source === source && m.target === target);
  let note = "";
  if (model) {
    note = "Model " + model.name + (model.description ? ": " + model.description : ".");
    if (model.ready === false) note += " It is not ready: its requests fail until it is reloaded.";
  } else if ($("source").value === AUTO && target) {
    const from = [...state.pairs.keys()].filter((s) => state.pairs.get(s).has(target)).sort();
    note = "The source is detected among the languages translated into " + languageName(target)
      + ": " + from.map(label).join(", ") + ".";
  }
  $("model-note").textContent = note;
}

// The glossaries of this key (DeepL's /v3/glossaries); the choice shows only those with a
// dictionary for the chosen pair, and only where there are some.
async function loadGlossaries() {
  state.glossaries = [];
  try {
    const response = await fetch("/v3/glossaries", { headers: headers() });
    if (response.ok) {
      const body = await response.json();
      state.glossaries = Array.isArray(body.glossaries) ? body.glossaries : [];
    }
  } catch (e) { /* a server without glossaries: no choice to show */ }
  updateGlossaries();
}

function updateGlossaries() {
  const source = $("source").value, target = $("target").value;
  const select = $("glossary"), chosen = select.value;
  const usable = (state.glossaries || []).filter((g) => source !== AUTO && (g.dictionaries || [])
    .some((d) => d.source_lang === source && d.target_lang === target));
  select.replaceChildren(option("", "None"), ...usable.map((g) => option(g.glossary_id, g.name)));
  select.value = usable.some((g) => g.glossary_id === chosen) ? chosen : "";
  $("glossary-row").hidden = usable.length === 0;
}

function swap() {
  const source = effectiveSource(), target = $("target").value;
  const translated = outputText();
  state.detected = "";
  $("source").value = target;
  fillTargets(source);
  if (translated) $("input").value = translated;
  updateGlossaries();
  changed(0);
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

function renderList(id, items) {
  $(id).replaceChildren(...items.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
}

function renderAlternatives(alternatives) {
  renderList("alternatives", alternatives);
  $("alternatives-box").hidden = alternatives.length === 0;
}

// What belongs to a translation goes with it: output, alternatives, notes, detected language.
function clearOutput() {
  render([]);
  renderAlternatives([]);
  renderList("notes", []);
  $("detected").textContent = "";
  if (state.detected) { state.detected = ""; updatePair(); }
}

function fail(text) {
  clearOutput();
  showMessage(text);
}

// The text or the pair changed: what is shown translates something else, so it goes at once.
function changed(delay) {
  if (state.controller) state.controller.abort();
  clearOutput();
  if (!state.blocker) showMessage("");
  schedule(delay);
}

function schedule(delay) {
  clearTimeout(state.timer);
  state.timer = setTimeout(translate, delay === undefined ? 300 : delay);
}

async function post(url, body, signal) {
  return fetch(url, { method: "POST", headers: headers(), signal, body: JSON.stringify(body) });
}

// One translation as {texts, alternatives, warnings, detected}, or a Response that failed. With
// source "auto" the native API is asked first; a server whose native API does not take it is
// asked through LibreTranslate's /translate, which does (no alternatives there).
async function request(texts, source, target, signal) {
  if (source !== AUTO || state.nativeAuto) {
    const payload = { texts, source, target, beam_size: 4, nbest: 3 };
    if ($("glossary").value && source !== AUTO) payload.glossary = $("glossary").value;
    const response = await post("/v1/translate", payload, signal);
    if (response.ok) {
      const body = await response.json();
      const detected = body.detected_source;
      return {
        texts: body.translations.map((t) => t.text),
        alternatives: texts.length === 1 ? body.translations[0].alternatives || [] : [],
        warnings: Array.isArray(body.warnings) ? body.warnings : [],
        detected: typeof detected === "string" ? detected : (detected && detected.language) || "",
      };
    }
    if (source !== AUTO || response.status !== 400 || !(await refusesAuto(response.clone()))) {
      return response;
    }
    state.nativeAuto = false;
  }
  const response = await post("/translate", { q: texts, source, target }, signal);
  if (!response.ok) return response;
  const body = await response.json();
  return {
    texts: body.translatedText, alternatives: [], warnings: [],
    detected: (body.detectedLanguage && body.detectedLanguage.language) || "",
  };
}

// An older server's native API: "no model translates auto→de" (a pair it does not have).
async function refusesAuto(response) {
  try {
    const body = await response.json();
    return body.error_type === "unsupported_language_pair" && String(body.error).includes(AUTO + "→");
  } catch (e) { return false; }
}

// One request at a time: a newer keystroke aborts the one in flight, whose answer is stale.
async function translate() {
  if (state.controller) state.controller.abort();
  if (state.blocker) { fail(state.blocker); return; }
  const text = $("input").value, source = $("source").value, target = $("target").value;
  if (!updateCount()) { fail("The text is longer than this server's limit of " + state.limit + " characters."); return; }
  const lines = text.split("\n");
  const wanted = lines.map((line, i) => [i, line]).filter(([, line]) => line.trim());
  if (!wanted.length || !target) { clearOutput(); showMessage(""); return; }
  if (wanted.length > state.maxTexts) { fail("At most " + state.maxTexts + " paragraphs at a time."); return; }
  const controller = new AbortController();
  state.controller = controller;
  $("output").setAttribute("aria-busy", "true");
  try {
    const result = await request(wanted.map(([, line]) => line), source, target, controller.signal);
    if (controller.signal.aborted) return;
    if (result instanceof Response) { fail(await describeFailure(result)); return; }
    const out = lines.map(() => "");
    wanted.forEach(([i], k) => { out[i] = result.texts[k]; });
    render(out);
    renderAlternatives(result.alternatives);
    renderList("notes", result.warnings.map((w) => (w && w.message) || "").filter(Boolean));
    if (source === AUTO && result.detected) {
      state.detected = result.detected;
      $("detected").textContent = "Detected language: " + label(result.detected) + ".";
      updatePair();
    }
    showMessage("");
  } catch (e) {
    if (e.name !== "AbortError") fail("Cannot reach the server: " + e.message);
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

// A file through LibreTranslate's /translate_file (.txt line by line, .html text nodes, the
// office and subtitle formats with their formatting); the
// answer is a link to /download_file, kept by the server for its last 32 files.
async function translateFile(event) {
  event.preventDefault();
  const file = $("file").files[0];
  resetFile();
  if (state.blocker) { showMessage(state.blocker, "file-message"); return; }
  if (!file) { showMessage("Choose a document first.", "file-message"); return; }
  const target = $("target").value;
  const form = new FormData();
  form.append("file", file);
  form.append("source", $("source").value);
  form.append("target", target);
  $("file-submit").disabled = true;
  $("file-status").textContent = "Translating " + file.name + " into " + languageName(target) + "…";
  try {
    const response = await fetch("/translate_file", { method: "POST", headers: headers(false), body: form });
    $("file-status").textContent = "";
    if (!response.ok) { showMessage(await describeFailure(response), "file-message"); return; }
    const url = (await response.json()).translatedFileUrl;
    // Fetched here, with the key a plain link would not send (with keys, /download_file needs it).
    const download = await fetch(url, { headers: headers(false) });
    if (!download.ok) { showMessage(await describeFailure(download), "file-message"); return; }
    if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
    state.fileUrl = URL.createObjectURL(await download.blob());
    const dot = file.name.lastIndexOf(".");
    const name = file.name.slice(0, dot) + "." + target + file.name.slice(dot);
    $("file-link").href = state.fileUrl;
    $("file-link").download = name;
    $("file-link").textContent = "Download " + name + " (" + languageName(target) + ")";
    $("file-result").hidden = false;
    $("file-link").scrollIntoView({ block: "nearest" });
  } catch (e) {
    $("file-status").textContent = "";
    showMessage("Cannot reach the server: " + e.message, "file-message");
  } finally {
    $("file-submit").disabled = false;
  }
}

function resetFile() {
  $("file-result").hidden = true;
  $("file-status").textContent = "";
  showMessage("", "file-message");
}

// A key typed (and committed with Enter or by leaving the field): the languages again, then
// the text; a failure says why and stays until a key works.
async function keyChanged() {
  if (key() === state.loadedKey) return false;
  if (await loadModels()) { await loadGlossaries(); changed(0); }
  return true;
}

document.addEventListener("DOMContentLoaded", async () => {
  $("input").addEventListener("input", () => { updateCount(); changed(); });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); schedule(0); }
  });
  $("source").addEventListener("change", () => {
    state.detected = ""; fillTargets(); updateGlossaries(); changed(0);
  });
  $("target").addEventListener("change", () => { updatePair(); updateGlossaries(); changed(0); });
  $("glossary").addEventListener("change", () => changed(0));
  $("swap").addEventListener("click", swap);
  $("copy").addEventListener("click", copy);
  $("api-key").addEventListener("change", keyChanged);
  $("translator").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!(await keyChanged())) schedule(0);
  });
  $("file").addEventListener("change", resetFile);
  $("file-form").addEventListener("submit", translateFile);
  await loadSettings();
  if (await loadModels()) await loadGlossaries();
});
