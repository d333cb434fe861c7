// AudioWorklet: hands each 128-sample render quantum of the microphone to the page (main thread),
// which resamples it to 16 kHz and streams it. Runs on the audio thread: no work here beyond a copy.
class PcmTap extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor("pcm-tap", PcmTap);
