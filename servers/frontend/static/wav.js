// Resampling for the microphone's audio (live.js streams it at 16 kHz): no libraries, no build step.

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
