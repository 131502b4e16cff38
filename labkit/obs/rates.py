"""Counting events as they happen: rates over a sliding window, totals, and duplicates.

Chapter 02 (the live kitchen, `labkit.labs.kitchen`) shows "acked per second over the last
2 s" and "orders handled more than once"; any live view that reads a stream of event records
can use the same two counters. Pure and bounded: event times are seconds on the loop clock,
passed in by the caller (a journal event's `t`), and `now` defaults to the running loop's time,
so the counters also work in labkit.sim's virtual time. Each keeps at most a fixed number of
entries; the docstrings say what that bound costs.
"""
from __future__ import annotations

import asyncio
import collections
from collections.abc import Hashable, Iterable

from labkit._core import validate

__all__ = ["WindowedRates", "DuplicateCounter"]


class WindowedRates:
    """Totals and per-second rates over the last `window_s` seconds for a fixed set of kinds.

    `record(kind, t_s)` with event times in order (as a journal emits them). Per kind the
    latest `max_events` times are kept, so a rate reads at most max_events / window_s per
    second; totals are exact."""

    def __init__(self, kinds: Iterable[str], *, window_s: float = 2.0, max_events: int = 20_000):
        if isinstance(kinds, str) or not isinstance(kinds, Iterable):
            raise ValueError(f"kinds must be a list of event kinds (str), got {kinds!r}")
        kinds = list(kinds)
        if not kinds or not all(isinstance(k, str) and k for k in kinds) or \
                len(set(kinds)) != len(kinds):
            raise ValueError(f"kinds must be distinct non-empty names, at least one, got {kinds!r}")
        self.window_s = validate.number("window_s", window_s, 0, 86_400, lo_open=True, unit=" s")
        self.max_events = validate.integer("max_events", max_events, 1, 10_000_000)
        self._times = {k: collections.deque(maxlen=self.max_events) for k in kinds}
        self._totals = dict.fromkeys(kinds, 0)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._times)

    def record(self, kind: str, t_s: float) -> bool:
        """Count one event of `kind` at loop time `t_s`; False (not counted) for a kind this
        counter does not track, so a whole event stream can be fed in."""
        times = self._times.get(kind)
        if times is None:
            return False
        times.append(t_s)
        self._totals[kind] += 1
        return True

    def _kind(self, kind: str) -> str:
        if kind not in self._times:
            raise ValueError(f"kind must be one of {list(self._times)}, got {kind!r}")
        return kind

    def total(self, kind: str) -> int:
        """Every event of `kind` recorded so far."""
        return self._totals[self._kind(kind)]

    def rate_per_s(self, kind: str, *, now_s: float | None = None) -> float:
        """Events of `kind` in the window (now_s - window_s, now_s], per second. `now_s`:
        seconds on the loop clock, default the running loop's time."""
        times = self._times[self._kind(kind)]
        start = self._now(now_s) - self.window_s
        recent = 0
        for t in reversed(times):          # newest first: stop at the first one too old
            if t <= start:
                break
            recent += 1
        return recent / self.window_s

    def summary(self, *, now_s: float | None = None) -> dict:
        """`{kind}_per_s` and `{kind}` (the total) for every kind, in the order given."""
        now_s = self._now(now_s)
        out = {}
        for kind in self._times:
            out[f"{kind}_per_s"] = self.rate_per_s(kind, now_s=now_s)
            out[kind] = self._totals[kind]
        return out

    @staticmethod
    def _now(now_s) -> float:
        if now_s is None:
            return asyncio.get_running_loop().time()
        return validate.number("now_s", now_s, unit=" s")

    def __repr__(self):
        return f"<WindowedRates window_s={self.window_s:g} totals={self._totals}>"


class DuplicateCounter:
    """Counts ids seen more than once (a message handled twice).

    Remembers the latest `max_ids` distinct ids, dropping the oldest beyond that;
    a duplicate of an id dropped that way is not counted (the bound is the price)."""

    def __init__(self, *, max_ids: int = 200_000):
        self.max_ids = validate.integer("max_ids", max_ids, 1, 100_000_000)
        self._ids: collections.OrderedDict = collections.OrderedDict()
        self.duplicates = 0

    def add(self, key: Hashable) -> bool:
        """Record one occurrence of `key`; True if it was seen before (a duplicate)."""
        if key in self._ids:
            self.duplicates += 1
            return True
        self._ids[key] = None
        if len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)
        return False

    def __contains__(self, key) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def summary(self) -> dict:
        return {"duplicates": self.duplicates, "remembered": len(self._ids),
                "max_ids": self.max_ids}

    def __repr__(self):
        return f"<DuplicateCounter duplicates={self.duplicates} remembered={len(self._ids)}>"
