"""The WS /stream contract and the latency arithmetic, as data (milliseconds; the real sessions are
in test_asr_stream.py)."""

from __future__ import annotations

import array

import pytest

from duplex.asr_stream import StreamRun, latency_figures, passage, speech_spans, stream_url
from servers.asr import stream_protocol as proto


def test_a_good_start_message_and_every_refusal():
    assert proto.parse_start({"type": "start", "sample_rate": 16000}) == proto.Start(16000, "pcm_s16le", None)
    assert proto.parse_start({"type": "start", "sample_rate": 44100, "language": "en"}).language == "en"
    for message, code in (({"sample_rate": 16000, "encoding": "opus"}, proto.UNSUPPORTED),
                          ({"sample_rate": 7999}, proto.BAD_RATE), ({"sample_rate": 16000.0}, proto.BAD_RATE),
                          ({"sample_rate": True}, proto.BAD_RATE), ({}, proto.BAD_RATE),
                          ({"sample_rate": 16000, "language": 3}, proto.BAD_MESSAGE)):
        with pytest.raises(proto.StreamError) as refused:
            proto.parse_start(message)
        assert refused.value.close_code == code and refused.value.detail
    for text in ("{", "[]", '{"type": "audio"}'):
        with pytest.raises(proto.StreamError):
            proto.parse_message(text)


def test_every_close_code_has_a_name_and_reasons_fit_a_close_frame():
    assert set(proto.CLOSE_CODES) == {1000, 1011, 4400, 4408, 4413, 4415, 4422, 4429, 4501, 4503}
    error = proto.StreamError(proto.BAD_RATE, "é" * 200)
    assert len(error.reason().encode()) <= 123 and error.reason().startswith("bad_sample_rate: ")
    assert error.event() == {"type": "error", "code": "bad_sample_rate", "close_code": 4422, "detail": "é" * 200}
    with pytest.raises(proto.StreamError):
        proto.check_frame(b"\0" * 3)


def test_speech_spans_find_the_loud_stretches_and_bridge_short_gaps():
    rate = 1000
    loud, quiet = [9000] * 500, [0] * 300
    pcm = array.array("h", quiet + loud + [0] * 200 + loud + [0] * 1000 + loud).tobytes()
    assert speech_spans(pcm, rate) == [(0.3, 1.5), (2.5, 3.0)]  # the 0.2 s pause is bridged


def test_latency_figures_match_each_span_with_its_final():
    run = StreamRun(events=[
        (0.5, {"type": "partial", "text": "a", "start": 0.3, "end": 0.5}),
        (0.8, {"type": "partial", "text": "a b", "start": 0.3, "end": 0.8}),
        (1.3, {"type": "final", "text": "a b", "start": 0.3, "end": 1.0}),
        (3.6, {"type": "final", "text": "c", "start": 2.0, "end": 3.0}),
    ])
    figures = latency_figures([(run, [(0.3, 1.0), (2.0, 3.0)])])
    assert figures["end_to_final_s"] == {"p50": 0.45, "p95": 0.6, "n": 2}
    assert figures["onset_to_partial_s"] == {"p50": 0.2, "p95": 0.2, "n": 1}  # the second span had none
    assert figures["partial_gap_s"]["n"] == 2  # 0.5 -> 0.8 -> the final at 1.3
    assert stream_url("https://h:1") == "wss://h:1" and len(passage(b"\1\0", 10, 3, 0.5)) == 3 * (2 + 10)
