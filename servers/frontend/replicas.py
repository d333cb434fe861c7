"""Which replica of a service takes the next session (pure: the caller passes the time, no I/O).

The frontend counts the WebSocket sessions it relays to each replica. A new session goes to the
least loaded replica with a free slot, equals taken in turn; a replica that could not be reached
is passed over for DOWN_S seconds while another has room (and tried again after, or at once when
none has: the mark is a preference, so a lone replica that came back is used without waiting).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

DOWN_S = 5.0  # how long a replica that refused a connection is passed over


@dataclass(eq=False)
class Replica:
    url: str
    slots: int              # sessions it takes at once (MOSHI_SESSIONS, ASR_SESSIONS, MT_SESSIONS)
    sessions: int = 0       # sessions relayed to it now
    down_until: float = 0.0  # monotonic time until which it is passed over

    def view(self, now: float) -> dict:
        return {"url": self.url, "sessions": self.sessions, "slots": self.slots, "down": now < self.down_until}


def pick(replicas: Sequence[Replica], now: float, tried: Collection[int] = (), turn: int = 0) -> int | None:
    """The index of the replica for a new session, None when none not yet `tried` has a free slot:
    the least loaded of those not marked down (of those marked down when no other has room); among
    equals the first at or after `turn`."""
    free = [i for i, r in enumerate(replicas) if i not in tried and r.sessions < r.slots]
    candidates = [i for i in free if replicas[i].down_until <= now] or free
    if not candidates:
        return None
    return min(candidates, key=lambda i: (replicas[i].sessions, (i - turn) % len(replicas)))


class Pool:
    """The replicas of one service and the sessions relayed to each."""

    def __init__(self, service: str, urls: Sequence[str], slots: int):
        self.service = service
        self.replicas = [Replica(url, slots) for url in urls]
        self.turn = 0       # where the search for equals starts: the one after the last chosen
        self.next_post = 0  # the replica that gets the next one-shot request (POST /api/transcribe)

    def take(self, now: float, tried: Collection[int] = ()) -> int | None:
        """Choose a replica for a new session and count the session on it (leave() gives it back)."""
        index = pick(self.replicas, now, tried, self.turn)
        if index is not None:
            self.replicas[index].sessions += 1
            self.turn = (index + 1) % len(self.replicas)
        return index

    def leave(self, index: int) -> None:
        self.replicas[index].sessions -= 1

    def mark_down(self, index: int, now: float) -> None:
        self.replicas[index].down_until = now + DOWN_S

    def post_order(self, now: float) -> list[int]:
        """The replicas to try for a one-shot request, in turn: each request starts at the next
        replica; those marked down come last (tried only when the others cannot be reached)."""
        n = len(self.replicas)
        start, self.next_post = self.next_post, (self.next_post + 1) % max(n, 1)
        order = [(start + k) % n for k in range(n)]
        return sorted(order, key=lambda i: self.replicas[i].down_until > now)  # stable: turn order kept

    def busy(self, unreachable: int = 0) -> str:
        """Why a new session is refused when every slot is taken, but on the `unreachable` replicas
        just tried (fits a close frame's 123 bytes)."""
        used = sum(r.sessions for r in self.replicas)
        slots = sum(r.slots for r in self.replicas)
        who = f"every {self.service} replica is" if len(self.replicas) > 1 else f"{self.service} is"
        down = f", {unreachable} unreachable" if unreachable else ""
        return f"{who} busy ({used} of {slots} sessions in use{down}); try again shortly"

    def view(self, now: float) -> list[dict]:
        return [r.view(now) for r in self.replicas]
