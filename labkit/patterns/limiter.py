"""Adaptive concurrency limits: let the measured latency decide how many calls may run at once.

Chapter 06 (overload control). A fixed limit (chapter 05's `Bulkhead`) must be guessed: too
high and a queue builds inside the service, so latency grows without bound; too low and
capacity is wasted. An adaptive limit treats the service like TCP treats a network path and
finds the limit from what each call's round-trip time (RTT: admission to release) shows:

- `AIMD`: additive increase, multiplicative decrease. Each fast success adds
  `increase / limit` (so about `increase` per limit's worth of calls, one "round trip", as TCP
  grows its window); a timeout, an overload answer or an RTT above `latency_threshold_s`
  multiplies the limit by `backoff_ratio`, at most once per congestion event (a call admitted
  before the last cut does not cut again).
- `Gradient`: in the style of Netflix's concurrency-limits (GradientLimit). With `rtt` a
  smoothed RTT and `min_rtt` the lowest it has been lately (the no-load RTT),
  ``gradient = clamp(tolerance * min_rtt / rtt, 0.5, 1)``,
  ``target = limit * gradient + queue_allowance``, and the limit moves a `smoothing` share
  of the way to the target. With no queueing the gradient is 1 and the limit creeps up by the
  allowance; once calls queue inside the service, rtt rises and the limit settles near
  (capacity x tolerance + allowance). While fewer than half the permits are in use the limit
  does not grow (an idle service proves nothing about its capacity).
- `FixedLimit`: a constant, for comparison and for plain load shedding.

`Limiter(algorithm, max_queue=, max_wait_s=)` enforces the current limit: it is a `Bulkhead`
whose cap follows the algorithm, with the same bounded FIFO wait queue. A call it cannot
admit at once or within `max_wait_s` gets `Overloaded` (503-kind, definite: the work never
started); nothing waits forever. Use it as::

    async with limiter.admit() as permit:      # Overloaded if refused
        await call()                             # success -> an RTT sample; timeout -> a drop

Times are seconds as floats from the running loop (virtual under labkit.sim).
"""
from __future__ import annotations

import asyncio
import math
from typing import Callable

from labkit._core.validate import integer, number
from labkit.patterns.bulkhead import Bulkhead, BulkheadFull
from labkit.patterns.errors import ErrorKind, EventLog, ServiceError

__all__ = ["AIMD", "FixedLimit", "Gradient", "Limiter", "Overloaded", "Permit", "is_overload"]


class Overloaded(BulkheadFull):
    """The limiter refused the call (at its limit, queue full, or the wait ran out).

    An unavailable-kind, definite error (HTTP 503): the work never started, so retrying later
    is safe; `retry_after_s` says when, if the limiter knows.
    """

    def __init__(self, message: str = "overloaded", *, retry_after_s: float | None = None):
        ServiceError.__init__(self, ErrorKind.UNAVAILABLE, message, status=503,
                              retry_after_s=retry_after_s)


def is_overload(exc: BaseException) -> bool:
    """True for the failures that mean "too much load": a timeout, a 503/429-kind answer."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return True
    return isinstance(exc, ServiceError) and exc.kind in (
        ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMIT)


def _bounds(initial_limit, min_limit, max_limit) -> tuple[float, float, float]:
    lo = number("min_limit", min_limit, 1.0)
    hi = number("max_limit", max_limit, lo, unit=f" (>= min_limit {lo:g})")
    start = number("initial_limit", initial_limit, lo, hi, unit=" (between min_limit and max_limit)")
    return start, lo, hi


class FixedLimit:
    """A limit that never moves (plain load shedding with a fixed cap)."""

    def __init__(self, limit: int):
        self.limit = float(integer("limit", limit, 1))
        self.min_limit = self.max_limit = self.limit

    def on_sample(self, *, rtt_s: float, in_flight: int, dropped: bool, started_s: float,
                  now_s: float) -> float:
        return self.limit


class AIMD:
    """Additive increase on a fast success, multiplicative decrease on a slow call or a drop."""

    def __init__(self, *, initial_limit: float = 10, min_limit: float = 1, max_limit: float = 200,
                 latency_threshold_s: float = 0.1, increase: float = 1.0,
                 backoff_ratio: float = 0.9):
        self.limit, self.min_limit, self.max_limit = _bounds(initial_limit, min_limit, max_limit)
        self.latency_threshold_s = number("latency_threshold_s", latency_threshold_s, 0.0,
                                          lo_open=True, unit=" seconds")
        self.increase = number("increase", increase, 0.0, lo_open=True)
        self.backoff_ratio = number("backoff_ratio", backoff_ratio, 0.0, 1.0,
                                    lo_open=True, hi_open=True)
        self.last_cut_s = -math.inf  # loop time of the last decrease

    def on_sample(self, *, rtt_s: float, in_flight: int, dropped: bool, started_s: float,
                  now_s: float) -> float:
        """Update the limit from one finished call; return the new limit."""
        if dropped or rtt_s > self.latency_threshold_s:
            if started_s >= self.last_cut_s:  # one cut per congestion event
                self.limit = max(self.min_limit, self.limit * self.backoff_ratio)
                self.last_cut_s = now_s
        elif 2 * in_flight >= self.limit:     # only grow when the limit is actually used
            self.limit = min(self.max_limit, self.limit + self.increase / self.limit)
        return self.limit


class Gradient:
    """Netflix-style gradient limit: shrink as the RTT rises above the no-load RTT."""

    def __init__(self, *, initial_limit: float = 10, min_limit: float = 1, max_limit: float = 200,
                 smoothing: float = 0.2, queue_allowance: float = 4.0, tolerance: float = 1.5,
                 rtt_smoothing: float = 0.1, min_rtt_window_s: float = 30.0,
                 backoff_ratio: float = 0.9):
        self.limit, self.min_limit, self.max_limit = _bounds(initial_limit, min_limit, max_limit)
        self.smoothing = number("smoothing", smoothing, 0.0, 1.0, lo_open=True)
        self.queue_allowance = number("queue_allowance", queue_allowance, 0.0)
        self.tolerance = number("tolerance", tolerance, 1.0)
        self.rtt_smoothing = number("rtt_smoothing", rtt_smoothing, 0.0, 1.0, lo_open=True)
        self.min_rtt_window_s = number("min_rtt_window_s", min_rtt_window_s, 0.0, lo_open=True,
                                       unit=" seconds")
        self.backoff_ratio = number("backoff_ratio", backoff_ratio, 0.0, 1.0,
                                    lo_open=True, hi_open=True)
        self.rtt_s: float | None = None      # smoothed RTT (exponentially weighted)
        # lowest smoothed RTT in the current and the previous window: O(1), forgets in 2 windows
        self._min_now = self._min_before = math.inf
        self._window_start_s: float | None = None
        self.gradient = 1.0

    @property
    def min_rtt_s(self) -> float | None:
        m = min(self._min_now, self._min_before)
        return None if m == math.inf else m

    def _observe(self, rtt_s: float, now_s: float) -> None:
        a = self.rtt_smoothing
        self.rtt_s = rtt_s if self.rtt_s is None else (1 - a) * self.rtt_s + a * rtt_s
        if self._window_start_s is None:
            self._window_start_s = now_s
        elif now_s - self._window_start_s >= self.min_rtt_window_s:
            self._min_before, self._min_now = self._min_now, math.inf
            self._window_start_s = now_s
        self._min_now = min(self._min_now, self.rtt_s)

    def on_sample(self, *, rtt_s: float, in_flight: int, dropped: bool, started_s: float,
                  now_s: float) -> float:
        """Update the limit from one finished call; return the new limit."""
        if dropped:
            target = self.limit * self.backoff_ratio
        else:
            self._observe(rtt_s, now_s)
            min_rtt, rtt = self.min_rtt_s, self.rtt_s
            self.gradient = 1.0 if rtt <= 0 else max(0.5, min(1.0, self.tolerance * min_rtt / rtt))
            if self.gradient == 1.0 and 2 * in_flight < self.limit:
                return self.limit  # app-limited: no evidence that more would be fine
            target = self.limit * self.gradient + self.queue_allowance
        new = (1 - self.smoothing) * self.limit + self.smoothing * target
        self.limit = max(self.min_limit, min(self.max_limit, new))
        return self.limit


class Permit:
    """One admitted call. Say how it went once: `success()`, `dropped()` or `ignore()`."""

    __slots__ = ("_limiter", "started_s", "_done")

    def __init__(self, limiter: "Limiter", started_s: float):
        self._limiter = limiter
        self.started_s = started_s
        self._done = False

    def success(self) -> None:
        """The call finished normally: its RTT is a sample for the algorithm."""
        self._finish("success")

    def dropped(self) -> None:
        """The call timed out or was refused downstream: a congestion signal."""
        self._finish("dropped")

    def ignore(self) -> None:
        """Release without teaching the algorithm anything (a bug, a cancelled caller)."""
        self._finish("ignored")

    def _finish(self, outcome: str) -> None:
        if not self._done:  # releasing twice must not free two slots
            self._done = True
            self._limiter._finish(self, outcome)


class _Admission:
    """`async with limiter.admit() as permit`: release with the outcome the block had."""

    __slots__ = ("_limiter", "_permit")

    def __init__(self, limiter):
        self._limiter = limiter
        self._permit = None

    async def __aenter__(self) -> Permit:
        self._permit = await self._limiter.acquire()
        return self._permit

    async def __aexit__(self, exc_type, exc, tb):
        if exc is None:
            self._permit.success()
        elif is_overload(exc):
            self._permit.dropped()
        else:
            self._permit.ignore()
        return False


class Limiter(Bulkhead):
    """A `Bulkhead` whose cap is `algorithm.limit` (rounded down, at least 1), updated per call.

    `max_queue` callers may wait up to `max_wait_s` for a permit (default: none, reject at
    once); the rest get `Overloaded` with `retry_after_s`. `history` keeps the newest 1000
    (loop time, limit) points, one per change of the whole-number limit.
    """

    def __init__(self, algorithm=None, *, max_queue: int = 0, max_wait_s: float = 0.0,
                 retry_after_s: float | None = 1.0, name: str = "limiter",
                 clock: Callable[[], float] | None = None):
        self.algorithm = AIMD() if algorithm is None else algorithm
        if not callable(getattr(self.algorithm, "on_sample", None)):
            raise ValueError(f"algorithm must be AIMD(...), Gradient(...) or FixedLimit(...) "
                             f"(something with on_sample), got {algorithm!r}")
        super().__init__(self._cap(), max_queue=max_queue, max_wait_s=max_wait_s, name=name,
                         clock=clock)
        self.retry_after_s = None if retry_after_s is None else number(
            "retry_after_s", retry_after_s, 0.0, unit=" seconds")
        self.history: EventLog = EventLog()
        self.samples = 0

    def _cap(self) -> int:
        return max(1, int(self.algorithm.limit))

    @property
    def limit(self) -> int:
        """How many calls may run at once right now."""
        return self.max_concurrent

    async def acquire(self) -> Permit:
        """Wait (bounded) for a permit; `Overloaded` if refused."""
        try:
            await super().acquire()
        except BulkheadFull as e:
            raise Overloaded(f"limiter {self.name!r} at limit {self.limit}: {e}",
                             retry_after_s=self.retry_after_s) from None
        return Permit(self, self._clock())

    def admit(self) -> _Admission:
        """`async with limiter.admit() as permit:` acquire, then release with the outcome."""
        return _Admission(self)

    async def __aenter__(self):
        raise TypeError("use `async with limiter.admit() as permit:` (a limiter needs each "
                        "call's start time and outcome)")

    def release(self) -> None:  # Bulkhead's argument-less release would lose the sample
        raise TypeError("release a Limiter's permit with permit.success(), .dropped() or .ignore()")

    def _finish(self, permit: Permit, outcome: str) -> None:
        now = self._clock()
        if outcome != "ignored":
            self.samples += 1
            self.algorithm.on_sample(rtt_s=max(0.0, now - permit.started_s), in_flight=self.in_use,
                                     dropped=outcome == "dropped", started_s=permit.started_s,
                                     now_s=now)
            cap = self._cap()
            if cap != self.max_concurrent:
                self.max_concurrent = cap
                self.history.append((now, cap))
        self.counts[outcome] += 1
        self._release_slot()
        self._event("released")
        self._fill()

    def _release_slot(self):
        # Hand the slot to the next waiter only while we are within the (maybe lowered) limit.
        if self.in_use <= self.max_concurrent:
            for w in self._waiters:
                if not w.done():
                    w.set_result(True)
                    return
        self.in_use -= 1

    def _fill(self):
        # A raised limit admits waiters at once, not only as calls finish.
        for w in self._waiters:
            if self.in_use >= self.max_concurrent:
                return
            if not w.done():
                self.in_use += 1
                w.set_result(True)

    def summary(self) -> dict:
        return {**super().summary(), "limit": self.limit, "samples": self.samples,
                "algorithm": type(self.algorithm).__name__}
