// The translation page: record → /api/transcribe (asr) → each final over /api/translate (relayed to
// mt's /ws/translate) → the translation beside its transcript. Each row carries its timings as data-*
// attributes: asr-ms, mt-ms and end-ms (end of speech → translation shown).
import { startRecording } from "/static/wav.js";

const $ = (id) => document.getElementById(id);
const rows = new Map();
let socket = null, recording = null, nextId = 1;

function setStatus(text, state) { $("status").textContent = text; $("status").dataset.state = state; }
function showError(text) { $("error").textContent = text || ""; if (text) setStatus("Failed.", "error"); }

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/translate`);
  socket.onopen = () => { $("record").disabled = false; setStatus("Ready.", "idle"); };
  socket.onclose = (event) => {
    $("record").disabled = true;
    showError(`The translator is not reachable (${event.reason || event.code}); reload the page once it runs.`);
  };
  socket.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    const row = rows.get(msg.id);
    if (!row) return;
    if (msg.type === "error") {
      row.cells[1].textContent = `(${msg.error}: ${msg.detail})`;
      return showError(msg.detail);
    }
    const end = performance.now() - row.ended;
    row.cells[1].textContent = msg.translation;
    row.dataset.mtMs = Math.round(msg.processing_s * 1000);
    row.dataset.endMs = Math.round(end);
    row.cells[2].textContent = `asr ${row.dataset.asrMs} ms · mt ${row.dataset.mtMs} ms · ${msg.output_tokens} tokens ` +
      `(${msg.tokens_per_s ?? "–"} tok/s) · end of speech → text ${row.dataset.endMs} ms`;
    row.dataset.state = "translated";
    setStatus("Translated.", "done");
  };
}

async function finalOf(wav, ended) {
  const form = new FormData();
  form.append("file", wav, "speech.wav");
  setStatus("Transcribing…", "busy");
  const response = await fetch("/api/transcribe", { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) return showError(body.detail || `Error ${response.status}`);
  const text = (body.text || "").trim();
  if (!text) return setStatus("No words recognised.", "done");
  const id = nextId++;
  const row = $("lines").tBodies[0].insertRow();
  row.dataset.id = id; row.dataset.state = "transcribed"; row.ended = ended;
  row.dataset.asrMs = Math.round(performance.now() - ended);
  row.insertCell().textContent = text; row.insertCell(); row.insertCell();
  rows.set(id, row);
  setStatus("Translating…", "busy");
  socket.send(JSON.stringify({ type: "final", id, text, source: $("source").value, target: $("target").value }));
}

$("record").addEventListener("click", async () => {
  showError("");
  try {
    recording = await startRecording((rms) => { $("level").value = Math.min(1, rms * 4); });
  } catch (err) {
    return showError(`Microphone unavailable: ${err.message}`);
  }
  $("record").disabled = true; $("stop").disabled = false; $("stop").focus();
  setStatus("Recording… press Stop when you are done.", "recording");
});

$("stop").addEventListener("click", async () => {
  if (!recording) return;
  $("stop").disabled = true;
  const wav = await recording.stop();
  const ended = performance.now();  // end of speech: what the timings count from
  recording = null; $("level").value = 0; $("record").disabled = false;
  try { await finalOf(wav, ended); } catch (err) { showError(`The frontend did not answer: ${err.message}`); }
});

fetch("/api/config").then((r) => r.json()).then((config) => {
  if (!config.asr_url) showError("No ASR server is configured for this frontend (set ASR_URL).");
  if (!config.translate_relay_path) return showError("No translator is configured for this frontend (set MT_WS_URL).");
  connect();
});
