// The transcription page: record or upload, send to /api/transcribe (the frontend proxies to ASR).
import { startRecording } from "/static/wav.js";

const $ = (id) => document.getElementById(id);
const recordBtn = $("record"), stopBtn = $("stop"), fileInput = $("file");
let recording = null;

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

recordBtn.addEventListener("click", async () => {
  showError("");
  try {
    recording = await startRecording((rms, seconds) => {
      $("level").value = Math.min(1, rms * 4);
      $("elapsed").textContent = `${seconds.toFixed(1)} s`;
    });
  } catch (err) {
    return showError(`Microphone unavailable: ${err.message}`);
  }
  recordBtn.disabled = true; stopBtn.disabled = false; stopBtn.focus();
  setStatus("Recording… press Stop when you are done.", "recording");
});

stopBtn.addEventListener("click", async () => {
  if (!recording) return;
  stopBtn.disabled = true;
  const wav = await recording.stop();
  recording = null;
  $("level").value = 0;
  recordBtn.disabled = false;
  await send(wav, "recording.wav");
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
  }
  if (!window.isSecureContext) {
    $("mic-hint").textContent = "The microphone needs HTTPS or http://localhost; on this address, upload a file instead.";
  }
});
