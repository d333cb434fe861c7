"""Cut long audio into chunks at pauses, so each decodes as one bounded utterance (and in parallel)."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


def speech_regions(pcm: bytes) -> list[tuple[float, float]]:
    """(start_s, end_s) of each speech region found by pocketsphinx's voice activity detector."""
    from pocketsphinx import Endpointer

    ep = Endpointer(sample_rate=SAMPLE_RATE)
    regions, start = [], None
    step = ep.frame_bytes
    for offset in range(0, len(pcm), step):
        frame = pcm[offset:offset + step]
        speech = ep.process(frame) if len(frame) == step else ep.end_stream(frame)
        if speech is not None and start is None:
            start = ep.speech_start
        if start is not None and not ep.in_speech:
            regions.append((start, ep.speech_end))
            start = None
    if start is not None:
        regions.append((start, len(pcm) / 2 / SAMPLE_RATE))
    return regions


def cut_points(regions: list[tuple[float, float]], total_s: float, max_chunk_s: float) -> list[float]:
    """Chunk boundaries (seconds): the middle of a pause, each chunk at most ~max_chunk_s long.

    Pure: a chunk grows region by region and is closed in the pause before the region that would
    make it too long. A single region longer than max_chunk_s is cut blindly every max_chunk_s.
    """
    cuts, chunk_start, prev_end = [0.0], 0.0, 0.0
    for start, end in regions:
        if end - chunk_start > max_chunk_s and start > chunk_start:
            cut = (prev_end + start) / 2 if prev_end > chunk_start else start
            cuts.append(cut)
            chunk_start = cut
        while end - chunk_start > max_chunk_s:
            chunk_start += max_chunk_s
            cuts.append(chunk_start)
        prev_end = end
    cuts.append(total_s)
    return sorted(set(c for c in cuts if 0 <= c <= total_s))


def chunks(samples: np.ndarray, max_chunk_s: float = 30.0) -> list[np.ndarray]:
    """Split 16 kHz float32 audio at pauses; audio up to max_chunk_s comes back whole."""
    total_s = len(samples) / SAMPLE_RATE
    if total_s <= max_chunk_s:
        return [samples]
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    bounds = cut_points(speech_regions(pcm), total_s, max_chunk_s)
    pieces = [samples[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] for a, b in zip(bounds, bounds[1:], strict=False)]
    return [p for p in pieces if len(p) > SAMPLE_RATE // 10]
