"""A delivery checker in the spirit of Jepsen and Maelstrom (chapter 02).

It reads the event records of an experiment (`labkit.messaging.journal.Event`: the broker's and
the consumers') and accounts for every message id: how many were published and confirmed,
delivered and redelivered, acked, nacked/rejected, dead-lettered (per reason), dropped by the
broker (per reason), handled more than once (duplicates: a handler calls `journal.handled(msg)`
after its work), and lost: confirmed, yet never acked nor dead-lettered. Run it after the
consumers have drained their queues: a message still waiting in a queue is not settled, and
`lost` counts it with the ones the broker dropped (the verdict tells the two apart).

Feed it live (`journal.subscribe(checker.observe)`) or afterwards (`DeliveryChecker.of(events)`).
Bounded: it tracks at most `max_messages` ids; beyond that it counts events as untracked and
its verdict says the check is incomplete.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from labkit._core import validate
from labkit.messaging.journal import Event

__all__ = ["DeliveryChecker"]

# per-id counters, by index
_PUB, _CONF, _DELIV, _HANDLED, _ACKED, _DEAD, _DROPPED = range(7)
_INDEX = {"published": _PUB, "confirmed": _CONF, "delivered": _DELIV, "handled": _HANDLED,
          "acked": _ACKED, "dead_lettered": _DEAD, "dropped": _DROPPED}


class DeliveryChecker:
    """Accounts for every message of an experiment; `result()` gives counts and a verdict."""

    def __init__(self, *, max_messages: int = 1_000_000):
        self.max_messages = validate.integer("max_messages", max_messages, 1, 100_000_000)
        self.counts: Counter = Counter()
        self.dead_lettered: Counter = Counter()    # reason -> count
        self.dropped: Counter = Counter()          # reason -> count
        self.untracked = 0
        self._ids: dict[str, list[int]] = {}

    @classmethod
    def of(cls, events: Iterable[Event], **kw) -> "DeliveryChecker":
        checker = cls(**kw)
        for e in events:
            checker.observe(e)
        return checker

    def observe(self, event: Event) -> None:
        """Take one event (this is the journal listener)."""
        kind = event.kind
        self.counts[kind] += 1
        if kind == "delivered" and event.redelivered:
            self.counts["redelivered"] += 1
        elif kind == "dead_lettered":
            self.dead_lettered[event.reason] += 1
        elif kind == "dropped":
            self.dropped[event.reason] += 1
        i = _INDEX.get(kind)
        if i is None:
            return
        mid = event.message_id
        state = self._ids.get(mid) if mid is not None else None
        if state is None:
            if mid is None or len(self._ids) >= self.max_messages:
                self.untracked += 1
                return
            state = self._ids[mid] = [0] * 7
        state[i] += 1

    def lost_ids(self) -> list[str]:
        """Ids confirmed by the broker but never acked nor dead-lettered."""
        return [mid for mid, s in self._ids.items()
                if s[_CONF] and not s[_ACKED] and not s[_DEAD]]

    def duplicate_ids(self) -> list[str]:
        """Ids whose handler did its work more than once."""
        return [mid for mid, s in self._ids.items() if s[_HANDLED] > 1]

    def result(self, *, allow_duplicates: bool = True, show: int = 10) -> dict:
        """Counts and the verdict. `ok` is False if a message was lost, or (with
        `allow_duplicates=False`) handled twice; at-least-once delivery allows duplicates."""
        validate.boolean("allow_duplicates", allow_duplicates)
        show = validate.integer("show", show, 0, 1000)
        lost, dups = self.lost_ids(), self.duplicate_ids()
        dropped = [m for m in lost if self._ids[m][_DROPPED]]
        unsettled = [m for m in lost if not self._ids[m][_DROPPED]]
        duplicates = sum(self._ids[m][_HANDLED] - 1 for m in dups)
        c = self.counts
        out = {k: c[k] for k in ("published", "confirmed", "delivered", "redelivered", "acked",
                                 "nacked", "rejected", "requeued", "returned", "unroutable")}
        out.update(dead_lettered=dict(self.dead_lettered), dropped=dict(self.dropped),
                   handled=c["handled"], duplicates=duplicates, duplicate_ids=dups[:show],
                   lost=len(lost), lost_ids=lost[:show], unsettled=len(unsettled),
                   unsettled_ids=unsettled[:show], untracked=self.untracked)
        ok = not lost and (allow_duplicates or not duplicates) and not self.untracked
        if self.untracked:
            verdict = (f"INCOMPLETE: {self.untracked} events had no message id or went past "
                       f"max_messages={self.max_messages}")
        elif lost:
            verdict = "; ".join(_lost_parts(lost, dropped, c["confirmed"]))
        elif duplicates and not allow_duplicates:
            verdict = f"DUPLICATES: {duplicates} extra handlings of {len(dups)} messages"
        else:
            verdict = (f"OK: all {len(self._ids)} messages accounted for"
                       + (f" ({duplicates} duplicate handlings)" if duplicates else ""))
        out.update(ok=ok, verdict=verdict)
        return out


def _lost_parts(lost: list, dropped: list, confirmed: int) -> list[str]:
    """The verdict's words for messages not accounted for: dropped by the broker (lost), or
    never settled (still in a queue or a consumer's hands when the check ran, or lost)."""
    parts = []
    if dropped:
        parts.append(f"LOST {len(dropped)} of {confirmed} confirmed messages (dropped by the "
                     f"broker), e.g. {dropped[:3]}")
    unsettled = [m for m in lost if m not in set(dropped)]
    if unsettled:
        parts.append(f"NOT SETTLED {len(unsettled)} of {confirmed} confirmed messages (never "
                     "acked nor dead-lettered: still in a queue or a consumer's hands, or lost), "
                     f"e.g. {unsettled[:3]}")
    return parts
