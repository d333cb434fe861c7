"""The load test's pure parts: levels, percentiles, judging a level, the capacity, the capacity file."""

from __future__ import annotations

import json

import pytest

from duplex.capacity import CapacityError, ServiceCapacity, document, parse, read_capacity
from duplex.loadtest import ramp
from duplex.loadtest.report import page, summary
from duplex.loadtest.speech import RATE, Clip, passages


def level(n, p95=0.4, refused=0, errors=0, wer=0.1, cpu=5.0, lag=0.0):
    return {"sessions": n, "ok": n - refused - errors, "refused": refused, "errors": errors,
            "error_share": (refused + errors) / n, "final_s": ramp.spread([p95 * 0.5, p95]), "wer": wer,
            "generator": {"cpu": cpu, "lag_p95": lag}, "services": {}, "broken": []}


def test_levels_double_up_to_the_limit_and_include_it():
    assert list(ramp.levels(1, 64)) == [1, 2, 4, 8, 16, 32, 64]
    assert list(ramp.levels(1, 12)) == [1, 2, 4, 8, 12]
    assert list(ramp.levels(1, 1)) == [1]


def test_spread_is_nearest_rank_and_empty_is_none():
    values = [i / 100 for i in range(1, 101)]
    assert ramp.spread(values) == {"p50": 0.505, "p95": 0.95, "p99": 0.99, "n": 100}
    assert ramp.spread([]) == {"p50": None, "p95": None, "p99": None, "n": 0}


def test_a_level_is_judged_by_every_budget_key_set_and_always_by_errors():
    assert ramp.judge(level(4), {"final_p95": 0.5}) == []
    assert ramp.judge(level(4, p95=0.8), {"final_p95": 0.5}) == ["end of speech -> final p95 0.8 s > 0.5 s"]
    assert ramp.judge(level(4, wer=0.4), {"wer": 0.3}) == ["word error rate 0.4 > 0.3"]
    assert ramp.judge(level(8, refused=2), {}) == ["2 refused of 8 sessions (25% > 0% allowed)"]
    assert ramp.judge(level(8, refused=1, errors=1), {"errors": 0.25}) == []  # within the allowed share
    nothing = {**level(2), "final_s": ramp.spread([])}
    assert ramp.judge(nothing, {"final_p95": 1.0}) == ["end of speech -> final p95: nothing measured "
                                                      "(no session got that far)"]


def test_the_generator_is_named_when_it_is_the_limit():
    assert ramp.generator_limit(level(1)) is None
    assert "95% of a core" in ramp.generator_limit(level(64, cpu=95.0))
    assert "80 ms late" in ramp.generator_limit(level(64, lag=0.08))


def test_capacity_is_the_most_served_below_every_level_that_was_not():
    judged = [level(1), level(2), {**level(4), "broken": ["x"]}, level(8)]
    assert ramp.capacity(judged) == 2  # 8 passing above a failed 4 is noise, not capacity
    assert ramp.capacity([{**level(1), "broken": ["x"]}]) is None
    assert ramp.capacity([level(1), level(2)]) == 2


def test_the_ramp_bisects_between_the_last_served_and_the_first_not():
    bad = {"broken": ["x"]}
    ramp8 = [level(1), level(2), level(4), level(8), {**level(16), **bad}]
    assert ramp.between(ramp8) == 12
    assert ramp.between([*ramp8, {**level(12), **bad}]) == 10
    assert ramp.between([*ramp8, level(12)]) == 14
    assert ramp.between([*ramp8, level(12), {**level(14), **bad}]) is None  # 12 to 14: within a quarter
    assert ramp.between([level(1), {**level(2), **bad}]) is None  # nothing between 1 and 2
    assert ramp.between([{**level(1), **bad}]) is None and ramp.between([level(1), level(2)]) is None


def test_passages_give_users_voices_in_turn_and_last_long_enough():
    found = [Clip(v, f"{v} {i}", b"\x10\x27" * RATE) for v in ("a", "b") for i in range(3)]  # 1 s of loud audio
    made = passages(found, 5, seconds=4.0)
    assert [p.voice for p in made] == ["a", "b", "a", "b", "a"]
    assert all(p.seconds >= 4.0 for p in made) and made[0].texts[0] == "a 0" and made[2].texts[0] == "a 1"
    assert len(made[0].spans) == len(made[0].texts)  # each clip one span: the pauses split them


def test_the_capacity_file_round_trips_and_bad_files_say_how_to_make_one(tmp_path):
    cap = ServiceCapacity("asr", 2, 8, {"final_p95": 1.0}, 5, "refused at 8", [level(1)])
    doc = document("duplex", [cap], generator={"via": "frontend"}, machine={"cpus": 2})
    (tmp_path / "lt.json").write_text(json.dumps(doc))
    back = read_capacity(tmp_path / "lt.json")["asr"]
    assert (back.capacity, back.per_replica, back.replicas, back.sessions) == (5, 2, 2, 8)
    assert doc["services"]["asr"]["per_replica"] == 2
    for text, words in (("{", "is not JSON"), ('{"format": 9, "services": {}}', "not a duplex capacity file"),
                        ('{"format": 1, "services": {"asr": {"replicas": 0}}}', "services.asr is malformed")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(CapacityError, match=words) as err:
            read_capacity(tmp_path / "bad.json")
        assert "inv loadtest" in err.value.fix
    with pytest.raises(CapacityError, match="no such file"):
        read_capacity(tmp_path / "missing.json")
    assert parse(doc, "x")["asr"].levels[0]["sessions"] == 1


def test_the_report_names_the_capacity_and_draws_the_budget():
    cap = ServiceCapacity("asr", 1, None, {"final_p95": 1.0}, 2, "final p95 4.4 s > 1 s at 4 sessions",
                          [level(1), level(2), {**level(4, p95=4.4), "broken": ["over"]}])
    doc = document("duplex", [cap], generator={"via": "direct"}, machine={"cpus": 2})
    assert summary(doc) == ["asr: capacity 2 sessions; stopped: final p95 4.4 s > 1 s at 4 sessions"]
    html = page(doc)
    assert html.count("<polyline") == 3 and "budget final_p95 1 s" in html and 'class="bad"' in html
    none = document("duplex", [ServiceCapacity("asr", 1, None, {}, None, "x", [])], {}, {})
    assert "not even one session met the budget" in summary(none)[0] and "nothing measured" in page(none)
