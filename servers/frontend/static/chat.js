// The voice-chat page: a WebSocket to moshi (through this frontend's relay, or direct with ?direct=1).
// moshi's protocol: binary frames whose first byte is the kind: 0x00 handshake (server ready),
// 0x01 audio (Ogg Opus pages, 24 kHz mono), 0x02 text (UTF-8), 0x05 error (UTF-8).
import { startOpusCapture, OpusPlayer, opusSupported } from "/static/opus.js";

const $ = (id) => document.getElementById(id);
const KIND = { HANDSHAKE: 0, AUDIO: 1, TEXT: 2, ERROR: 5 };
const CLOSE_REASONS = { 4404: "moshi is not part of this run", 4502: "the frontend cannot reach moshi" };
const BUSY = 4429; // the relay's every moshi replica is in a conversation: its reason says how many
const BUSY_AFTER_MS = 3000; // open but no ready byte: moshi serves one conversation at a time
let config = null, socket = null, capture = null, player = null, framesIn = 0, framesOut = 0, busyTimer = null;

function setStatus(text, state) { $("chat-status").textContent = text; $("chat-status").dataset.state = state; }
function showError(text) { $("chat-error").textContent = text || ""; }

function chatUrl() {
  // The page's own query goes on to moshi (PersonaPlex: ?voice_prompt=NATF2.pt&text_prompt=...).
  const params = new URLSearchParams(location.search);
  const direct = params.has("direct");
  params.delete("direct");
  const query = params.toString() ? `?${params}` : "";
  if (direct) return config.moshi_ws_url + query;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${config.moshi_relay_path}${query}`;
}

async function onReady() {
  clearTimeout(busyTimer);
  setStatus("connected", "connected");
  if (!opusSupported()) {
    return showError("This browser cannot encode or decode Opus here (WebCodecs needs HTTPS or localhost): text only.");
  }
  player = new OpusPlayer((n) => { $("audio-in").dataset.decoded = n; });
  if (!$("send-mic").checked) return;
  try {
    capture = await startOpusCapture((page) => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        const frame = new Uint8Array(page.length + 1);
        frame[0] = KIND.AUDIO; frame.set(page, 1);
        socket.send(frame);
        $("audio-out").textContent = ++framesOut;
        if (framesOut === 1) $("audio-out").dataset.firstMs = performance.now(); // latency, for tests and figures
      }
    });
  } catch (err) {
    showError(`Microphone unavailable: ${err.message}. Listening only.`);
  }
}

function onMessage(event) {
  const bytes = new Uint8Array(event.data);
  if (bytes.length === 0) return;
  const payload = bytes.subarray(1);
  switch (bytes[0]) {
    case KIND.HANDSHAKE: onReady(); break;
    case KIND.AUDIO:
      $("audio-in").textContent = ++framesIn;
      if (framesIn === 1) $("audio-in").dataset.firstMs = performance.now();
      if (player) player.push(payload);
      break;
    case KIND.TEXT: $("chat-text").textContent += new TextDecoder().decode(payload); break;
    case KIND.ERROR: showError(`moshi: ${new TextDecoder().decode(payload)}`); break;
    default: break; // control, metadata, ping: nothing to show
  }
}

async function stopAudio() {
  if (capture) { await capture.stop(); capture = null; }
  if (player) { player.close(); player = null; }
}

function connect() {
  showError("");
  $("chat-text").textContent = "";
  framesIn = framesOut = 0;
  setStatus("connecting…", "busy");
  socket = new WebSocket(chatUrl());
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    setStatus("waiting for moshi to get ready…", "busy");
    // moshi is up (it listens only once loaded) but answers one conversation at a time: say so.
    busyTimer = setTimeout(() => setStatus(
      "moshi is in another conversation (it talks to one person at a time): you are next in line…", "queued"),
      BUSY_AFTER_MS);
  };
  socket.onmessage = onMessage;
  socket.onclose = (event) => {
    clearTimeout(busyTimer);
    stopAudio();
    const why = CLOSE_REASONS[event.code] || event.reason || `code ${event.code}`;
    setStatus(`disconnected (${why})`, event.code === 1000 || event.code === 1005 ? "idle" : "error");
    if (event.code === BUSY) showError(`${event.reason}.`);
    socket = null;
    $("connect").disabled = false; $("disconnect").disabled = true;
  };
  $("connect").disabled = true; $("disconnect").disabled = false;
}

$("connect").addEventListener("click", connect);
$("disconnect").addEventListener("click", () => { if (socket) socket.close(1000); });

fetch("/api/config").then((r) => r.json()).then((c) => {
  config = c;
  if (!config.moshi_ws_url) {
    setStatus("moshi is not part of this run.", "error");
    $("chat-hint").textContent = "This frontend was started without MOSHI_WS_URL, so there is no voice backend to talk to. Run the stack with the moshi service (it needs a GPU).";
    return;
  }
  const direct = new URLSearchParams(location.search).has("direct");
  $("chat-endpoint").textContent = `moshi: ${config.moshi_ws_url} (${direct ? "direct" : "relayed through this frontend"})`;
  setStatus("Ready: press Start conversation.", "idle");
  $("connect").disabled = false;
}).catch((err) => setStatus(`Cannot load /api/config: ${err.message}`, "error"));
