// Microphone capture as Float32 chunks and 16-bit PCM WAV encoding (the translate page records with it),
// and the resampling live.js streams with: no libraries, no build step.

export const TARGET_RATE = 16000;

// Average each output sample's span of input samples (a box filter: enough for speech at 16 kHz).
export function downsample(samples, inRate, outRate = TARGET_RATE) {
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

export function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const ascii = (offset, text) => { for (let i = 0; i < text.length; i++) view.setUint8(offset + i, text.charCodeAt(i)); };
  ascii(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); ascii(8, "WAVE");
  ascii(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  ascii(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

// Start capturing; returns { stop() -> Promise<Blob WAV>, context }. onLevel(rms, seconds) is called per block.
export async function startRecording(onLevel = () => {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser offers no microphone here: it needs HTTPS or http://localhost. Upload a file instead.");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext();
  await context.resume();
  const source = context.createMediaStreamSource(stream);
  // ScriptProcessorNode is deprecated but runs everywhere, also outside secure contexts' worklets.
  const processor = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  let total = 0;
  processor.onaudioprocess = (event) => {
    const block = new Float32Array(event.inputBuffer.getChannelData(0));
    chunks.push(block);
    total += block.length;
    let sum = 0;
    for (const v of block) sum += v * v;
    onLevel(Math.sqrt(sum / block.length), total / context.sampleRate);
  };
  source.connect(processor);
  processor.connect(context.destination); // Chrome fires onaudioprocess only when connected; output stays silent
  return {
    context,
    async stop() {
      processor.disconnect(); source.disconnect();
      stream.getTracks().forEach((track) => track.stop());
      const rate = context.sampleRate;
      await context.close();
      const all = new Float32Array(total);
      let offset = 0;
      for (const c of chunks) { all.set(c, offset); offset += c.length; }
      return encodeWav(downsample(all, rate), Math.min(rate, TARGET_RATE));
    },
  };
}
