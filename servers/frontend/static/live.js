// Live transcription: microphone -> AudioWorklet -> 16 kHz pcm_s16le frames -> WebSocket /api/stream
// (relayed to the ASR server's WS /stream, docs/streaming.md) -> partial and final events.
export const TARGET_RATE = 16000;
const FRAME_SAMPLES = TARGET_RATE / 20; // 50 ms frames: each waits half as long to be sent as 100 ms did

// Average each output sample's span of input samples (a box filter: enough for speech at 16 kHz).
function downsample(samples, inRate, outRate = TARGET_RATE) {
  if (outRate >= inRate) return samples;
  const ratio = inRate / outRate;
  const out = new Float32Array(Math.floor(samples.length / ratio));
  for (let i = 0; i < out.length; i++) {
    const start = Math.floor(i * ratio), end = Math.min(samples.length, Math.floor((i + 1) * ratio));
    let sum = 0;
    for (let j = start; j < end; j++) sum += samples[j];
    out[i] = end > start ? sum / (end - start) : 0;
  }
  return out;
}

function toPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return out;
}

// Open the stream and the microphone. handlers: onEvent(event), onLevel(rms, seconds), onClose(code, reason).
// Returns { stop() } which sends {"type": "stop"}; the server answers with its last finals and a summary.
export async function startLive(path, handlers) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioWorkletNode) {
    throw new Error("This browser offers no microphone here: it needs HTTPS or http://localhost. Upload a file instead.");
  }
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  // Ask for a 16 kHz context: the browser resamples the microphone itself (well). Where it keeps its
  // own rate, each 50 ms is box-filtered down here, leftovers carried so no sample is lost.
  let context;
  try {
    context = new AudioContext({ sampleRate: TARGET_RATE });
  } catch (err) {
    context = new AudioContext();
  }
  await context.audioWorklet.addModule("/static/pcm-worklet.js");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${path}`);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("could not open the live transcription stream"));
  });
  const rate = Math.min(context.sampleRate, TARGET_RATE);
  ws.send(JSON.stringify({ type: "start", sample_rate: rate, encoding: "pcm_s16le" }));
  ws.onmessage = (message) => handlers.onEvent(JSON.parse(message.data));
  ws.onclose = (event) => { cleanup(); handlers.onClose(event.code, event.reason); };

  const source = context.createMediaStreamSource(media);
  const tap = new AudioWorkletNode(context, "pcm-tap");
  let pending = [], pendingLength = 0, total = 0, stopped = false;
  tap.port.onmessage = (event) => {
    if (stopped) return;
    const block = event.data;
    total += block.length;
    let sum = 0;
    for (const v of block) sum += v * v;
    handlers.onLevel(Math.sqrt(sum / block.length), total / context.sampleRate);
    pending.push(block); pendingLength += block.length;
    if (pendingLength * rate / context.sampleRate < FRAME_SAMPLES) return;
    const all = new Float32Array(pendingLength);
    let offset = 0;
    for (const b of pending) { all.set(b, offset); offset += b.length; }
    const ratio = context.sampleRate / rate;
    const used = Math.floor(Math.floor(all.length / ratio) * ratio);  // whole output samples only
    pending = used < all.length ? [all.slice(used)] : [];
    pendingLength = all.length - used;
    if (ws.readyState === WebSocket.OPEN) ws.send(toPcm16(downsample(all.subarray(0, used), context.sampleRate, rate)).buffer);
  };
  source.connect(tap);

  function cleanup() {
    if (stopped) return;
    stopped = true;
    source.disconnect(); tap.disconnect();
    media.getTracks().forEach((track) => track.stop());
    context.close();
  }
  return {
    stop() {
      cleanup();
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
    },
  };
}
