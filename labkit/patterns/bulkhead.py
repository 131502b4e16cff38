"""Bulkhead: cap how many calls run at once, so one slow dependency cannot eat every worker.

Introduced in chapter 05 (retries). `async with bulkhead:` admits up to `max_concurrent`
calls; further callers wait in a FIFO queue of at most `max_queue` for at most `max_wait_s`
seconds (float), else they are rejected at once with `BulkheadFull` (an unavailable-kind,
definite error: the call never started). Waiting uses loop timers, so it runs unchanged under
labkit.sim's virtual clock. `events` keeps the newest 1000 (`EVENTS_KEPT`); the counts and the
longest wait in `summary()` are running totals.
"""
from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

from labkit._core.validate import integer, number
from labkit.patterns.deadline import loop_time
from labkit.patterns.errors import ErrorKind, EventLog, ServiceError


class BulkheadFull(ServiceError):
    """The bulkhead refused the call (full, or the wait ran out): it never started."""

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
        self.max_concurrent = integer("max_concurrent", max_concurrent, 1)
        self.max_queue = integer("max_queue", max_queue, 0)
        self.max_wait_s = number("max_wait_s", max_wait_s, 0.0, unit=" seconds")
        self.name = name
        self._clock = clock or loop_time
        self.in_use = 0
        self._waiters: deque[asyncio.Future] = deque()
        self.events: EventLog = EventLog()
        self.counts: Counter = Counter()  # what -> how many, since creation
        self.max_waited_s = 0.0           # longest wait of an admitted caller

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def _event(self, what, waited=0.0):
        self.counts[what] += 1
        if what == "admitted" and waited > self.max_waited_s:
            self.max_waited_s = waited
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
            self._event("timed_out", self.max_wait_s)

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
        return {"name": self.name, "max_concurrent": self.max_concurrent, "max_queue": self.max_queue,
                "max_wait_s": self.max_wait_s, "in_use": self.in_use, "queued": self.queued,
                "counts": dict(self.counts), "max_waited_s": self.max_waited_s}
