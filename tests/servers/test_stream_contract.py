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
    assert set(proto.CLOSE_CODES) == {1000, 1011, 4400, 4408, 4409, 4413, 4415, 4422, 4429, 4501, 4503}
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


ORIGIN_CASES = [  # (Origin, Host, allowed?): the servers' one rule (servers/origins.py)
    (None, "127.0.0.1:8000", True),                        # not a browser: curl, the relay, inv smoke
    ("http://127.0.0.1:8000", "127.0.0.1:8000", True),     # the page this server served
    ("https://127.0.0.1:8000", "127.0.0.1:8000", True),    # the same behind TLS
    ("http://localhost:8000", "127.0.0.1:8000", True),     # loopback names of the same port
    ("http://[::1]:8000", "localhost:8000", True),
    ("HTTP://LOCALHOST:8000", "127.0.0.1:8000", True),
    ("https://speech.example.com", "speech.example.com", True),  # default port on both sides
    ("http://speech.example.com", "speech.example.com:80", True),
    ("https://app.example.com", "127.0.0.1:8000", True),   # listed
    ("http://127.0.0.1:3000", "127.0.0.1:8000", False),    # another port: another site
    ("http://evil.example", "127.0.0.1:8000", False),
    ("null", "127.0.0.1:8000", False),                     # a sandboxed frame, a file: page
    ("file://", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000.evil.example", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000/path", "127.0.0.1:8000", False),
    ("http://evil.example:8000", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000", None, False),                 # no Host: nothing to be the same as
    ("http://127.0.0.1:x", "127.0.0.1:8000", False),
    ("", "127.0.0.1:8000", False),
]


@pytest.mark.parametrize("origin, host, allowed", ORIGIN_CASES)
def test_the_origin_rule(origin, host, allowed):
    from servers import origins
    listed = origins.origins_from_env({"DUPLEX_ALLOWED_ORIGINS": " https://app.example.com , "})
    why = origins.refusal(origin, host, listed)
    assert (why is None) == allowed, why
    if why:
        assert "DUPLEX_ALLOWED_ORIGINS" in why


@pytest.mark.parametrize("value", ["evil.example", "http://", "ftp://x", "http://a.example/path", "null",
                                   "http://a.example:99999"])
def test_a_bad_allowed_origin_is_a_bad_setting(value):
    from servers import origins
    from servers.envvars import SettingsError
    with pytest.raises(SettingsError, match="DUPLEX_ALLOWED_ORIGINS entry"):
        origins.origins_from_env({"DUPLEX_ALLOWED_ORIGINS": value})
    assert origins.origins_from_env({"DUPLEX_ALLOWED_ORIGINS": "*"}).any
