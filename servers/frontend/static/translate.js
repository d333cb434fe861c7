// The translation page: the microphone streams over /api/stream (relayed to asr's WS /stream,
// docs/streaming.md); partials show while you speak, and each final goes over /api/translate
// (relayed to mt's /ws/translate) and is translated beside its transcript as soon as it is settled.
// Each row carries its timings as data-* attributes: asr-ms (end of that speech → final),
// mt-ms (mt's processing) and end-ms (end of that speech → translation shown).
import { startLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);
const rows = new Map();
let socket = null, live = null, nextId = 1, streamPath = "/api/stream";
let audioZero = Infinity;  // the page's clock at the stream's audio time 0
let waiting = [];          // finals to send once the translator's socket is open again
// mt closes a session idle for MT_WS_IDLE_SECONDS (4408) or older than MT_WS_MAX_WALL_SECONDS (4413):
// the page opens a new one with the next final rather than calling the translator unreachable.
const REOPEN = new Set([4408, 4413]);
const BUSY = 4429; // every translator replica's every session is taken (the frontend's relay says how many)

function setStatus(text, state) { $("status").textContent = text; $("status").dataset.state = state; }
function showError(text) { $("error").textContent = text || ""; if (text) setStatus("Failed.", "error"); }

function connect(first = true) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/translate`);
  socket.onopen = () => {
    if (first) { $("record").disabled = false; setStatus("Ready.", "idle"); }
    for (const message of waiting.splice(0)) socket.send(message);
  };
  socket.onclose = (event) => {
    socket = null;
    if (REOPEN.has(event.code)) { if (waiting.length) connect(false); return; }
    $("record").disabled = true;
    if (event.code === BUSY) return showError(`The translator is full: ${event.reason} (reload the page).`);
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
    row.cells[1].textContent = msg.translation;
    row.dataset.mtMs = Math.round(msg.processing_s * 1000);
    row.dataset.endMs = Math.round(performance.now() - row.ended);
    row.cells[2].textContent = `asr ${row.dataset.asrMs} ms · mt ${row.dataset.mtMs} ms · ${msg.output_tokens} tokens ` +
      `(${msg.tokens_per_s ?? "–"} tok/s) · end of speech → text ${row.dataset.endMs} ms`;
    row.dataset.state = "translated";
  };
}

function translateFinal(event) {
  const text = event.text.trim();
  if (!text) return;
  const id = nextId++;
  const row = $("lines").tBodies[0].insertRow();
  row.ended = audioZero + event.end * 1000;  // where this speech ended, on the page's clock
  row.dataset.id = id; row.dataset.state = "transcribed";
  row.dataset.asrMs = Math.round(performance.now() - row.ended);
  row.insertCell().textContent = text; row.insertCell(); row.insertCell();
  rows.set(id, row);
  const message = JSON.stringify({ type: "final", id, text, source: $("source").value, target: $("target").value });
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(message);
  else { waiting.push(message); if (!socket) connect(false); }
}

function onEvent(event) {
  if (event.type === "partial") $("partial").textContent = event.text;
  else if (event.type === "final") { $("partial").textContent = ""; translateFinal(event); }
  else if (event.type === "summary") setStatus(`Done (${event.audio_s.toFixed(1)} s of audio, ${event.finals} final${event.finals === 1 ? "" : "s"}).`, "done");
  else if (event.type === "error") showError(event.detail);
}

function endLive() {
  live = null; $("level").value = 0; $("partial").textContent = "";
  $("record").disabled = false; $("stop").disabled = true;
}

$("record").addEventListener("click", async () => {
  showError("");
  audioZero = Infinity;
  try {
    live = await startLive(streamPath, {
      onEvent,
      // the earliest estimate is the best: a late callback only adds delay
      onLevel: (rms, seconds) => {
        $("level").value = Math.min(1, rms * 4);
        audioZero = Math.min(audioZero, performance.now() - seconds * 1000);
      },
      onClose: (code, reason) => {
        endLive();
        if (code !== 1000 && !$("error").textContent) showError(`The stream ended: ${reason || `code ${code}`}`);
      },
    });
  } catch (err) {
    live = null;
    return showError(`Live transcription unavailable: ${err.message}`);
  }
  $("record").disabled = true; $("stop").disabled = false; $("stop").focus();
  setStatus("Listening… each sentence is translated as you pause; press Stop when you are done.", "recording");
});

$("stop").addEventListener("click", () => {
  if (!live) return;
  $("stop").disabled = true;
  setStatus("Finishing…", "busy");
  live.stop();
});

fetch("/api/config").then((r) => r.json()).then((config) => {
  if (!config.asr_url) return showError("No ASR server is configured for this frontend (set ASR_URL).");
  streamPath = config.asr_stream_path || streamPath;
  if (!config.translate_relay_path) return showError("No translator is configured for this frontend (set MT_WS_URL).");
  if (!window.isSecureContext) {
    $("mic-hint").textContent = "The microphone needs HTTPS or http://localhost: run with tls (`inv certs`) for a remote browser.";
  }
  connect();
});
