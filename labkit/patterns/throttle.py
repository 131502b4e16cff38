"""Client-side adaptive throttling (Google SRE book, "Handling Overload"): stop sending what
the backend will refuse anyway.

Chapter 06 (overload control). A backend that sheds load still pays for every refusal: a
connection, a parse, a reply. When most requests are refused, the refusals themselves become
the load. Each client therefore remembers, over a sliding window, how many requests it tried
(`requests`, including the ones it refused itself) and how many the backend accepted
(`accepts`), and refuses a new request locally with probability

    max(0, (requests - k * accepts) / (requests + 1))

With k = 2 nothing is refused until the backend refuses more than half; then the client sends
the backend about k times what it accepts. Lower k throttles harder; higher k wastes more.

The window is `window_s` seconds kept as `buckets` running counts (memory is bounded whatever
the request rate). Time comes from the running loop (virtual under labkit.sim); the random
draws from one seeded stream per instance (`labkit._core.seeding.stream`, or `seed=`).
"""
from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any, Awaitable, Callable

from labkit._core import seeding
from labkit._core.validate import integer, number
from labkit.patterns.deadline import loop_time
from labkit.patterns.errors import ErrorKind, ServiceError

__all__ = ["Throttle", "Throttled", "backend_refused", "reject_probability"]


class Throttled(ServiceError):
    """The client refused the request itself: the backend has been refusing most of them.

    Like an open breaker (chapter 05): refused locally, definite (nothing was sent), and not
    worth retrying in a loop.
    """

    def __init__(self, message: str = "throttled locally"):
        super().__init__(ErrorKind.BREAKER_OPEN, message)


def reject_probability(requests: float, accepts: float, k: float) -> float:
    """The SRE book's client-side rejection probability, max(0, (requests - k*accepts)/(requests+1))."""
    requests = number("requests", requests, 0.0)
    accepts = number("accepts", accepts, 0.0)
    k = number("k", k, 0.0, lo_open=True)
    return max(0.0, (requests - k * accepts) / (requests + 1.0))


def backend_refused(exc: BaseException) -> bool:
    """True if the failure means the backend did not accept the request: overloaded (503,
    429) or no answer in time. Any other answer (a 404, a 500) was accepted and processed."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return True
    return isinstance(exc, ServiceError) and exc.kind in (
        ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMIT, ErrorKind.TIMEOUT)


class Throttle:
    """Per-client adaptive throttle; see the module docstring.

    Either wrap a call, ``await throttle.call(fn)``, or do it by hand: ``throttle.check()``
    (raises `Throttled`, counts the request) and then ``throttle.record(accepted=...)``.
    """

    def __init__(self, *, k: float = 2.0, window_s: float = 120.0, buckets: int = 60,
                 seed: int | None = None, name: str = "throttle",
                 clock: Callable[[], float] | None = None):
        self.k = number("k", k, 0.0, lo_open=True)
        self.window_s = number("window_s", window_s, 0.0, lo_open=True, unit=" seconds")
        self.buckets = integer("buckets", buckets, 1, 10_000)
        self.bucket_s = self.window_s / self.buckets
        self.name = name
        self._clock = clock or loop_time
        self._random = (seeding.stream(f"throttle:{name}") if seed is None
                        else seeding.rng(f"throttle:{name}", seed)).random
        self._window: deque[list] = deque(maxlen=self.buckets)  # [bucket index, requests, accepts]
        self.requests = 0      # in the window (running totals of the buckets)
        self.accepts = 0
        self.total = {"requests": 0, "accepts": 0, "throttled": 0, "sent": 0}  # since creation

    def _bucket(self) -> list:
        index = math.floor(self._clock() / self.bucket_s)
        w = self._window
        while w and w[0][0] <= index - self.buckets:   # fell out of the window
            _, r, a = w.popleft()
            self.requests -= r
            self.accepts -= a
        if w and index <= w[-1][0]:                    # same bucket (or the clock went back)
            return w[-1]
        w.append([index, 0, 0])  # at most `buckets` distinct indexes remain: never overflows
        return w[-1]

    def probability(self) -> float:
        """The probability the next request is refused locally (the window as it is now)."""
        self._bucket()
        return max(0.0, (self.requests - self.k * self.accepts) / (self.requests + 1.0))

    def check(self) -> None:
        """Count one request; raise `Throttled` if it is refused locally."""
        p = self.probability()
        bucket = self._bucket()
        bucket[1] += 1
        self.requests += 1
        self.total["requests"] += 1
        if p > 0 and self._random() < p:
            self.total["throttled"] += 1
            raise Throttled(f"throttle {self.name!r}: refused locally (p={p:.2f}, "
                            f"{self.accepts} of {self.requests} accepted lately)")
        self.total["sent"] += 1

    def record(self, *, accepted: bool) -> None:
        """Say whether the backend accepted a request that `check` let through."""
        if accepted is True:
            bucket = self._bucket()
            bucket[2] += 1
            self.accepts += 1
            self.total["accepts"] += 1
        elif accepted is not False:
            raise ValueError(f"accepted must be True or False, got {accepted!r}")

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """`check()`, then `await fn()`, recording whether the backend accepted it."""
        self.check()
        try:
            result = await fn()
        except asyncio.CancelledError:
            raise                                       # we gave up: says nothing about them
        except Exception as exc:
            self.record(accepted=not backend_refused(exc))
            raise
        self.record(accepted=True)
        return result

    def summary(self) -> dict:
        return {"name": self.name, "k": self.k, "window_s": self.window_s,
                "requests_in_window": self.requests, "accepts_in_window": self.accepts,
                "probability": self.probability(), **self.total}
