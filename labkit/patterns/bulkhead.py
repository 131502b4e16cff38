"""Bulkhead: cap how many calls run at once, so one slow dependency cannot eat every worker.

Introduced in chapter 05 (retries). `async with bulkhead:` admits up to `max_concurrent`
calls; further callers wait in a FIFO queue of at most `max_queue` for at most `max_wait_s`
seconds (float), else they are rejected at once with `BulkheadFull` (an unavailable-kind,
definite error: the call never started). Waiting uses loop timers, so it runs unchanged under
labkit.sim's virtual clock.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Callable

from labkit.patterns.deadline import loop_time
from labkit.patterns.errors import ErrorKind, ServiceError


class BulkheadFull(ServiceError):
    def __init__(self, message: str = "bulkhead full"):
        super().__init__(ErrorKind.UNAVAILABLE, message)


@dataclass(frozen=True)
class BulkheadEvent:
    at: float
    what: str  # "admitted", "queued", "rejected", "timed_out", "released"
    in_use: int
    queued: int
    waited_s: float


class Bulkhead:
    """Concurrency limit with an optional bounded, time-limited FIFO queue."""

    def __init__(self, max_concurrent: int, *, max_queue: int = 0, max_wait_s: float = 0.0,
                 name: str = "bulkhead", clock: Callable[[], float] | None = None):
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an int >= 1, got {max_concurrent!r}")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 0:
            raise ValueError(f"max_queue must be an int >= 0, got {max_queue!r}")
        if not (isinstance(max_wait_s, (int, float)) and max_wait_s >= 0):
            raise ValueError(f"max_wait_s must be a number of seconds >= 0, got {max_wait_s!r}")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.max_wait_s = float(max_wait_s)
        self.name = name
        self._clock = clock or loop_time
        self.in_use = 0
        self._waiters: deque[asyncio.Future] = deque()
        self.events: list[BulkheadEvent] = []

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def _event(self, what, waited=0.0):
        self.events.append(BulkheadEvent(self._clock(), what, self.in_use, self.queued, waited))

    async def acquire(self) -> None:
        if self.in_use < self.max_concurrent and not self.queued:
            self.in_use += 1
            self._event("admitted")
            return
        if self.queued >= self.max_queue or self.max_wait_s <= 0:
            self._event("rejected")
            raise BulkheadFull(f"bulkhead {self.name!r}: {self.in_use} running, {self.queued} queued")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        start = self._clock()
        self._event("queued")
        timer = loop.call_later(self.max_wait_s, self._expire, fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release_slot()  # the slot was handed to us just as we were cancelled
            raise
        finally:
            timer.cancel()
            try:
                self._waiters.remove(fut)
            except ValueError:
                pass
        self._event("admitted", self._clock() - start)

    def _expire(self, fut):
        if not fut.done():
            fut.set_exception(BulkheadFull(f"bulkhead {self.name!r}: waited {self.max_wait_s}s"))
            self.events.append(BulkheadEvent(self._clock(), "timed_out", self.in_use,
                                             self.queued, self.max_wait_s))

    def release(self) -> None:
        self._release_slot()
        self._event("released")

    def _release_slot(self):
        for w in self._waiters:
            if not w.done():
                w.set_result(True)  # hand the slot over directly: FIFO, no barging
                return
        self.in_use -= 1

    async def __aenter__(self):
        await self.acquire()
        return self

    async def __aexit__(self, *exc):
        self.release()
        return False

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for e in self.events:
            counts[e.what] = counts.get(e.what, 0) + 1
        waits = [e.waited_s for e in self.events if e.what == "admitted" and e.waited_s > 0]
        return {"name": self.name, "max_concurrent": self.max_concurrent, "max_queue": self.max_queue,
                "max_wait_s": self.max_wait_s, "in_use": self.in_use, "queued": self.queued,
                "counts": counts, "max_waited_s": max(waits, default=0.0)}
