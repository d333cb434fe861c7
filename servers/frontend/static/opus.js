// Opus in the browser without libraries: WebCodecs encodes and decodes, a small Ogg muxer and
// demuxer carry the packets in the Ogg pages moshi reads and writes (24 kHz mono).

export const RATE = 24000;
const GRANULE_RATE = 48000; // Ogg Opus granule positions always count 48 kHz samples

export function opusSupported() {
  return typeof AudioEncoder !== "undefined" && typeof AudioDecoder !== "undefined";
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    table[i] = r >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ b) & 0xff]) >>> 0;
  return crc;
}

// One Ogg page holding exactly one packet (packets here are far below the 64 KiB page limit).
export function oggPage(packet, { serial, sequence, granule, flags = 0 }) {
  const lacing = [];
  for (let left = packet.length; ; left -= 255) { lacing.push(Math.min(left, 255)); if (left < 255) break; }
  const page = new Uint8Array(27 + lacing.length + packet.length);
  const view = new DataView(page.buffer);
  page.set([0x4f, 0x67, 0x67, 0x53], 0); // "OggS"
  page[5] = flags;
  view.setBigUint64(6, BigInt(granule), true);
  view.setUint32(14, serial, true);
  view.setUint32(18, sequence, true);
  page[26] = lacing.length;
  page.set(lacing, 27);
  page.set(packet, 27 + lacing.length);
  view.setUint32(22, crc32(page), true);
  return page;
}

function opusHead(preSkip) {
  const head = new Uint8Array(19), view = new DataView(head.buffer);
  head.set(new TextEncoder().encode("OpusHead"), 0);
  head[8] = 1; head[9] = 1; // version 1, mono
  view.setUint16(10, preSkip, true); view.setUint32(12, RATE, true);
  return head;
}

function opusTags() {
  const vendor = new TextEncoder().encode("duplex-frontend");
  const tags = new Uint8Array(8 + 4 + vendor.length + 4), view = new DataView(tags.buffer);
  tags.set(new TextEncoder().encode("OpusTags"), 0);
  view.setUint32(8, vendor.length, true); tags.set(vendor, 12);
  return tags;
}

// Capture the microphone, encode 20 ms Opus packets, hand each as one Ogg page to onPage(Uint8Array).
export async function startOpusCapture(onPage) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  const context = new AudioContext({ sampleRate: RATE });
  await context.resume();
  const serial = (Math.random() * 2 ** 32) >>> 0;
  let sequence = 0, granule = 0, timestamp = 0;
  onPage(oggPage(opusHead(312), { serial, sequence: sequence++, granule: 0, flags: 2 }));
  onPage(oggPage(opusTags(), { serial, sequence: sequence++, granule: 0 }));
  const encoder = new AudioEncoder({
    output: (chunk) => {
      const packet = new Uint8Array(chunk.byteLength);
      chunk.copyTo(packet);
      granule += Math.round(((chunk.duration || 20000) * GRANULE_RATE) / 1e6);
      onPage(oggPage(packet, { serial, sequence: sequence++, granule }));
    },
    error: (err) => console.error("opus encoder:", err),
  });
  encoder.configure({ codec: "opus", sampleRate: RATE, numberOfChannels: 1, bitrate: 32000 });
  const source = context.createMediaStreamSource(stream);
  const processor = context.createScriptProcessor(2048, 1, 1);
  processor.onaudioprocess = (event) => {
    const data = new Float32Array(event.inputBuffer.getChannelData(0));
    encoder.encode(new AudioData({ format: "f32-planar", sampleRate: RATE, numberOfFrames: data.length,
                                   numberOfChannels: 1, timestamp, data }));
    timestamp += (data.length * 1e6) / RATE;
  };
  source.connect(processor);
  processor.connect(context.destination);
  return {
    async stop() {
      processor.disconnect(); source.disconnect();
      stream.getTracks().forEach((t) => t.stop());
      try { await encoder.flush(); encoder.close(); } catch (_) { /* already closed */ }
      await context.close();
    },
  };
}

// Play moshi's Ogg Opus stream: split pages into packets, decode, schedule back to back.
export class OpusPlayer {
  constructor(onPlayed = () => {}) {
    this.onPlayed = onPlayed;
    this.played = 0;
    this.context = new AudioContext();
    this.pending = new Uint8Array(0);
    this.packet = [];
    this.nextTime = 0;
    this.decoder = new AudioDecoder({ output: (data) => this.play(data), error: (e) => console.error("opus decoder:", e) });
    this.decoder.configure({ codec: "opus", sampleRate: GRANULE_RATE, numberOfChannels: 1 });
    this.timestamp = 0;
  }

  push(bytes) {
    const joined = new Uint8Array(this.pending.length + bytes.length);
    joined.set(this.pending); joined.set(bytes, this.pending.length);
    let offset = 0;
    while (joined.length - offset >= 27) {
      const segments = joined[offset + 26], bodyStart = offset + 27 + segments;
      if (joined.length < bodyStart) break;
      const lacing = joined.subarray(offset + 27, bodyStart);
      const size = lacing.reduce((a, b) => a + b, 0);
      if (joined.length < bodyStart + size) break;
      let at = bodyStart;
      for (const len of lacing) {
        this.packet.push(joined.subarray(at, at + len)); at += len;
        if (len < 255) this.decodePacket(); // a lacing value below 255 ends a packet
      }
      offset = bodyStart + size;
    }
    this.pending = joined.slice(offset);
  }

  decodePacket() {
    const size = this.packet.reduce((a, p) => a + p.length, 0), data = new Uint8Array(size);
    let at = 0;
    for (const p of this.packet) { data.set(p, at); at += p.length; }
    this.packet = [];
    const magic = new TextDecoder().decode(data.subarray(0, 8));
    if (magic === "OpusHead" || magic === "OpusTags" || this.decoder.state !== "configured") return;
    this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: this.timestamp, data }));
    this.timestamp += 20000;
  }

  play(audioData) {
    const samples = new Float32Array(audioData.numberOfFrames);
    audioData.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
    const buffer = this.context.createBuffer(1, samples.length, audioData.sampleRate);
    buffer.copyToChannel(samples, 0);
    audioData.close();
    const node = this.context.createBufferSource();
    node.buffer = buffer; node.connect(this.context.destination);
    this.nextTime = Math.max(this.nextTime, this.context.currentTime + 0.05);
    node.start(this.nextTime);
    this.nextTime += buffer.duration;
    this.onPlayed(++this.played);
  }

  close() {
    try { this.decoder.close(); } catch (_) { /* closed */ }
    this.context.close();
  }
}
