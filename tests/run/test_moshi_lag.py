"""moshi's lag figures (duplex/standalone/moshi_smoke.lag_figures): a listener's wait, from the frames
sent and the audio decoded back, whether moshi keeps up or falls behind."""

from __future__ import annotations

from duplex.standalone.moshi_smoke import FRAME, lag_figures

STEP = 0.08


def test_a_moshi_that_keeps_up_lags_by_its_step_time():
    sent = [STEP * (k + 1) for k in range(50)]
    decoded = [(t + 0.03, FRAME * (k + 1)) for k, t in enumerate(sent)]  # each frame answered 30 ms later
    got = lag_figures(sent, decoded, end_frame=30)
    assert got["lag_end_s"] == got["lag_p50_s"] == got["lag_max_s"] == 0.03
    assert got["backlog_frames"] == 0 and got["backlog_max_frames"] == 1


def test_a_moshi_that_falls_behind_shows_a_growing_lag_though_it_sends_every_step():
    # it still sends a message each step (what the old "first audio after the end of speech" saw),
    # but each holds half a frame: output runs at half real time
    sent = [STEP * (k + 1) for k in range(50)]
    decoded = [(t + 0.03, FRAME * (k + 1) // 2) for k, t in enumerate(sent)]
    got = lag_figures(sent, decoded, end_frame=20)
    assert got["lag_end_s"] > 1.5 and got["lag_max_s"] > got["lag_p50_s"] > 0.5
    assert got["backlog_frames"] == 25 and got["backlog_max_frames"] >= 25


def test_output_that_never_reaches_the_end_of_speech_has_no_end_lag():
    sent = [STEP * (k + 1) for k in range(40)]
    decoded = [(1.0, FRAME * 10)]  # one burst of ten frames, then nothing
    got = lag_figures(sent, decoded, end_frame=30)
    assert got["lag_end_s"] is None and got["backlog_frames"] == 30
    assert got["lag_p50_s"] is not None  # the ten that came


def test_messages_holding_several_frames_or_part_of_one_are_counted_by_samples():
    sent = [STEP * (k + 1) for k in range(4)]
    decoded = [(0.5, FRAME // 2), (0.6, FRAME * 3), (0.7, FRAME * 4)]
    got = lag_figures(sent, decoded, end_frame=3)
    assert got["lag_end_s"] == round(0.7 - 0.32, 3) and got["backlog_frames"] == 0
