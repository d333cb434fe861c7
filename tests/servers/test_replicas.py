"""The frontend's choice of replica and its reading of the replica lists: pure, no I/O
(the real processes behind it: test_front_replicas.py)."""

from __future__ import annotations

import pytest

from servers.frontend.config import endpoints_from_env
from servers.frontend.replicas import DOWN_S, Pool, Replica, pick


def replicas(*sessions: int, slots: int = 2) -> list[Replica]:
    return [Replica(f"ws://r{i}", slots, n) for i, n in enumerate(sessions)]


@pytest.mark.parametrize("sessions, turn, chosen", [
    ((0, 0, 0), 0, 0),
    ((0, 0, 0), 1, 1),   # equals: the first at or after the turn
    ((0, 0, 0), 2, 2),
    ((1, 0, 1), 0, 1),   # the least loaded wins over the turn
    ((1, 1, 0), 0, 2),
    ((0, 1, 0), 2, 2),
    ((1, 0, 0), 0, 1),
    ((2, 1, 2), 0, 1),   # full ones are skipped
    ((2, 2, 2), 0, None),
])
def test_a_session_goes_to_the_least_loaded_replica_equals_in_turn(sessions, turn, chosen):
    assert pick(replicas(*sessions), now=0, turn=turn) == chosen


def test_replicas_tried_already_are_not_chosen_again():
    group = replicas(0, 0, 0)
    assert pick(group, 0, tried={0}) == 1
    assert pick(group, 0, tried={0, 1}) == 2
    assert pick(group, 0, tried={0, 1, 2}) is None


def test_a_replica_marked_down_is_passed_over_while_another_has_room_and_tried_when_none_has():
    group = replicas(0, 1, 2)
    group[0].down_until = 10
    assert pick(group, now=5) == 1          # down: the busier one that is up goes first
    group[1].sessions = 2
    assert pick(group, now=5) == 0          # no other has room: the mark is a preference only
    assert pick(group, now=5, tried={0}) is None
    group[1].sessions = 1
    assert pick(group, now=10) == 0         # the mark has run out


def test_the_pool_counts_sessions_and_takes_equals_in_turn():
    pool = Pool("moshi", ["ws://a", "ws://b"], slots=1)
    assert [pool.take(0), pool.take(0), pool.take(0)] == [0, 1, None]
    assert pool.busy() == "every moshi replica is busy (2 of 2 sessions in use); try again shortly"
    pool.leave(1)
    assert pool.take(0) == 1                # the freed slot
    pool.leave(0), pool.leave(1)
    assert [pool.take(0), pool.take(0)] == [0, 1]  # after b, the turn is a's again
    assert [r["sessions"] for r in pool.view(0)] == [1, 1]

    wide = Pool("asr", ["http://a", "http://b"], slots=8)
    assert [wide.take(0) for _ in range(5)] == [0, 1, 0, 1, 0]


def test_a_session_refused_everywhere_is_tried_on_each_replica_once():
    pool = Pool("mt", ["ws://a", "ws://b", "ws://c"], slots=4)
    tried = []
    while (index := pool.take(now=1, tried=tried)) is not None:  # the relay's loop: every connect fails
        tried.append(index)
        pool.mark_down(index, now=1)
        pool.leave(index)
    assert tried == [0, 1, 2] and [r["down"] for r in pool.view(1)] == [True, True, True]
    assert [r["sessions"] for r in pool.view(1)] == [0, 0, 0]
    assert pool.take(now=1 + DOWN_S) is not None


def test_the_busy_reason_fits_a_close_frame():
    pool = Pool("moshi", [f"ws://moshi-{i}.example:8998/api/chat" for i in range(99)], slots=999)
    for replica in pool.replicas:
        replica.sessions = replica.slots
    assert pool.busy() == "every moshi replica is busy (98901 of 98901 sessions in use); try again shortly"
    assert len(pool.busy().encode()) <= 123
    assert Pool("asr", ["http://a"], 1).busy() == "asr is busy (0 of 1 sessions in use); try again shortly"
    assert Pool("mt", ["ws://a", "ws://b"], 1).busy(unreachable=1) == \
        "every mt replica is busy (0 of 2 sessions in use, 1 unreachable); try again shortly"


def test_one_shot_requests_take_turns_and_a_replica_marked_down_comes_last():
    pool = Pool("asr", ["http://a", "http://b", "http://c"], slots=8)
    assert [pool.post_order(0)[0] for _ in range(4)] == [0, 1, 2, 0]
    pool.mark_down(2, now=0)
    assert pool.post_order(1) == [1, 0, 2]   # b's turn: c, marked down, is tried last
    assert pool.post_order(1) == [0, 1, 2]   # c's own turn: still last while marked down
    assert pool.post_order(1) == [0, 1, 2]
    assert pool.post_order(DOWN_S) == [1, 2, 0]  # the mark has run out
    assert Pool("asr", [], 8).post_order(0) == []


# -- the environment ---------------------------------------------------------------------------

@pytest.mark.parametrize("env, asr", [
    ({"ASR_URL": "http://a:1, b:2/ ,,http://a:1"}, ("http://a:1", "http://b:2")),
    ({"services__asr__http__1": "http://b:2", "services__asr__http__0": "http://a:1",
      "services__asr__http__10": "http://k:3", "services__asr__https__0": "https://s:4"},
     ("http://a:1", "http://b:2", "http://k:3")),
    ({"services__asr__https__0": "https://s:4"}, ("https://s:4",)),
    ({"ASR_URL": "http://a:1", "services__asr__http__0": "http://b:2"}, ("http://a:1",)),
    ({"ASR_URL": " , "}, ()),
])
def test_the_asr_replicas_come_from_asr_url_else_from_service_discovery(env, asr):
    endpoints = endpoints_from_env(env)
    assert endpoints.asr_urls == asr
    assert endpoints.asr_url == (asr[0] if asr else None)


def test_moshi_and_mt_take_lists_and_the_session_counts_their_defaults():
    endpoints = endpoints_from_env({"MOSHI_WS_URL": "ws://m0:8998/api/chat,m1:8998/api/chat",
                                    "MT_WS_URL": "ws://t:8020/ws/translate", "ASR_SESSIONS": ""})
    assert endpoints.moshi_ws_urls == ("ws://m0:8998/api/chat", "ws://m1:8998/api/chat")
    assert endpoints.as_dict() == {"asr_url": None, "moshi_ws_url": "ws://m0:8998/api/chat",
                                   "mt_ws_url": "ws://t:8020/ws/translate"}
    assert (endpoints.moshi_sessions, endpoints.asr_sessions, endpoints.mt_sessions) == (1, 8, 16)
    assert endpoints.problems == ()
    set_ = endpoints_from_env({"MOSHI_SESSIONS": "2", "ASR_SESSIONS": "1", "MT_SESSIONS": "4"})
    assert (set_.moshi_sessions, set_.asr_sessions, set_.mt_sessions) == (2, 1, 4)


def test_a_session_count_that_is_not_one_keeps_the_default_and_says_so():
    endpoints = endpoints_from_env({"MOSHI_SESSIONS": "two", "MT_SESSIONS": "0"})
    assert (endpoints.moshi_sessions, endpoints.mt_sessions) == (1, 16)
    assert endpoints.problems == ("MOSHI_SESSIONS='two' is not a whole number; using 1",
                                  "MT_SESSIONS='0' must be greater than 0; using 16")
