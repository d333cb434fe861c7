// The transcription page: live from the microphone over /api/stream (partials while you speak,
// finals as you pause), or an uploaded file sent to /api/transcribe (the frontend proxies both to ASR).
import { startLive } from "/static/live.js";

const $ = (id) => document.getElementById(id);
const recordBtn = $("record"), stopBtn = $("stop"), fileInput = $("file");
let live = null;
let streamPath = "/api/stream";

function setStatus(text, state) { $("status").textContent = text; $("status").dataset.state = state; }
function showError(text) { $("error").textContent = text || ""; if (text) setStatus("Failed.", "error"); }

async function send(blob, name) {
  showError("");
  $("transcript").textContent = "";
  setStatus(`Transcribing ${name}…`, "busy");
  const form = new FormData();
  form.append("file", blob, name);
  let response, body;
  try {
    response = await fetch("/api/transcribe", { method: "POST", body: form });
    body = await response.json();
  } catch (err) {
    return showError(`The frontend did not answer: ${err.message}`);
  }
  if (!response.ok) return showError(body.detail || `Error ${response.status}`);
  const text = (body.text ?? body.transcript ?? "").trim();
  $("transcript").textContent = text;
  const secs = typeof body.duration_s === "number" ? ` (${body.duration_s.toFixed(1)} s of audio)` : "";
  setStatus(text ? `Done${secs}.` : `Done${secs}: no words recognised.`, "done");
}

// Finals are kept as they come (they never change); the partial after them is replaced each time.
function showEvent(event) {
  const transcript = $("transcript");
  let partial = transcript.querySelector(".partial");
  if (!partial) {
    partial = document.createElement("span");
    partial.className = "partial";
    transcript.append(partial);
  }
  if (event.type === "partial") {
    partial.textContent = event.text;
    transcript.dataset.partials = String(Number(transcript.dataset.partials || 0) + 1);
  } else if (event.type === "final") {
    const final = document.createElement("span");
    final.className = "final";
    final.textContent = event.text + " ";
    final.title = `${event.start.toFixed(2)}–${event.end.toFixed(2)} s`;
    transcript.insertBefore(final, partial);
    partial.textContent = "";
  } else if (event.type === "summary") {
    setStatus(`Done (${event.audio_s.toFixed(1)} s of audio, ${event.finals} final${event.finals === 1 ? "" : "s"}).`, "done");
  } else if (event.type === "error") {
    showError(event.detail);
  }
}

function endLive() {
  live = null;
  $("level").value = 0;
  recordBtn.disabled = false; stopBtn.disabled = true;
}

recordBtn.addEventListener("click", async () => {
  showError("");
  $("transcript").textContent = "";
  $("transcript").dataset.partials = "0";
  try {
    live = await startLive(streamPath, {
      onEvent: showEvent,
      onLevel: (rms, seconds) => {
        $("level").value = Math.min(1, rms * 4);
        $("elapsed").textContent = `${seconds.toFixed(1)} s`;
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
  recordBtn.disabled = true; stopBtn.disabled = false; stopBtn.focus();
  setStatus("Listening… the transcript appears as you speak; press Stop when you are done.", "recording");
});

stopBtn.addEventListener("click", () => {
  if (!live) return;
  stopBtn.disabled = true;
  setStatus("Finishing…", "busy");
  live.stop();
});

fileInput.addEventListener("change", () => {
  const file = fileInput.files[0];
  if (file) send(file, file.name);
});

fetch("/api/config").then((r) => r.json()).then((config) => {
  if (!config.asr_url) {
    showError("No ASR server is configured for this frontend (set ASR_URL).");
  } else {
    $("asr-endpoint").textContent = `ASR server: ${config.asr_url} (reached through this frontend)`;
    streamPath = config.asr_stream_path || streamPath;
  }
  if (!window.isSecureContext) {
    $("mic-hint").textContent = "The microphone needs HTTPS or http://localhost; on this address, upload a file instead.";
  }
});
