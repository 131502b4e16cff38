"""Deadline propagation: one time budget for a whole chain of calls.

Introduced in chapter 05 (retries). A client that gives up after 1 s gains nothing if the
services behind it keep working for 10 s. A `Deadline` is an absolute time on the event-loop
clock; each hop sends what is left in the `X-Deadline-Remaining-Ms` header (a relative amount,
so hosts need not share a clock), and a callee refuses or abandons work whose deadline has
passed. Times are seconds as floats inside labkit; the header carries whole milliseconds, an
optionally signed integer (0 or less: already expired). `decode_remaining_ms` is the one parser
of that header: labkit's services (labkit.services.http) use it too, so a malformed value is
refused the same way everywhere. Works unchanged under the virtual clock of `labkit.sim`.
"""
from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit._core import validate
from labkit.patterns import span_events
from labkit.patterns.errors import ErrorKind, ServiceError

HEADER = "X-Deadline-Remaining-Ms"
# ASCII digits only ("1e3", "nan", "1.5" are refused); 15 digits are 31 000 years, and a longer
# number would overflow the float of seconds.
_WHOLE_MS = re.compile(r"[+-]?[0-9]{1,15}")


def loop_time() -> float:
    """The running event loop's clock (virtual under labkit.sim)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        raise RuntimeError("no running event loop: pass now=... or a clock=... explicitly") from None


class DeadlineExceeded(ServiceError):
    """The deadline passed before (or while) doing the work: a timeout-kind error."""

    def __init__(self, message: str = "deadline exceeded"):
        super().__init__(ErrorKind.TIMEOUT, message, status=504)


def encode_remaining_ms(remaining_s: float) -> str:
    """Header value for `remaining_s` seconds: whole milliseconds, rounded down, never < 0."""
    remaining_s = validate.number("remaining_s", remaining_s, unit=" seconds")
    return str(max(0, math.floor(remaining_s * 1000)))


def decode_remaining_ms(value: str) -> float:
    """Seconds left from a header value: an optionally signed whole number of milliseconds.

    0 or less means the deadline has already passed (a caller whose clock ran out on the way).
    Anything else ("abc", "", "1e3", "nan", "1.5") raises ValueError naming the header: a
    service answers that with 400 before doing any work.
    """
    text = value.strip() if isinstance(value, str) else None
    if text is None or not _WHOLE_MS.fullmatch(text):
        raise ValueError(f"{HEADER} must be a whole number of milliseconds, at most 15 digits "
                         f"(0 or less: already expired), got {value!r}")
    return int(text) / 1000


@dataclass(frozen=True)
class Deadline:
    """An absolute deadline `at` on the loop clock (seconds)."""

    at: float

    @classmethod
    def after(cls, timeout_s: float, *, now: float | None = None) -> "Deadline":
        """The deadline `timeout_s` seconds from now."""
        timeout_s = validate.number("timeout_s", timeout_s, 0, unit=" seconds")
        return cls((loop_time() if now is None else now) + timeout_s)

    def remaining_s(self, now: float | None = None) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.at - (loop_time() if now is None else now))

    def expired(self, now: float | None = None) -> bool:
        return (loop_time() if now is None else now) >= self.at

    def shrink(self, margin_s: float) -> "Deadline":
        """An earlier deadline, leaving `margin_s` for the reply to travel back."""
        margin_s = validate.number("margin_s", margin_s, 0, unit=" seconds")
        return Deadline(self.at - margin_s)

    def earliest(self, other: "Deadline | None") -> "Deadline":
        return self if other is None or self.at <= other.at else other

    def to_headers(self, now: float | None = None) -> dict[str, str]:
        """{HEADER: remaining ms} to send on an outgoing request."""
        return {HEADER: encode_remaining_ms(self.remaining_s(now))}

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *, now: float | None = None,
                     default_s: float | None = None) -> "Deadline | None":
        """The deadline a caller sent (case-insensitive lookup), or `default_s` from now, or None."""
        value = headers.get(HEADER)
        if value is None:
            lower = HEADER.lower()
            value = next((v for k, v in headers.items() if k.lower() == lower), None)
        t = loop_time() if now is None else now
        if value is None:
            if default_s is None:
                return None
            return cls(t + validate.number("default_s", default_s, 0, unit=" seconds"))
        return cls(t + decode_remaining_ms(value))

    def check(self, now: float | None = None) -> None:
        """Raise DeadlineExceeded if the deadline has passed (a checkpoint between steps)."""
        if self.expired(now):
            span_events.emit("deadline.exceeded", where="check")            # chapter 07
            raise DeadlineExceeded()

    async def run(self, fn: Callable[..., Awaitable[Any]], /, *args, **kwargs) -> Any:
        """Await fn(*args, **kwargs) but stop it at the deadline (raises DeadlineExceeded).

        Work whose deadline already passed is never started.
        """
        self.check()
        cm = asyncio.timeout_at(self.at)
        try:
            async with cm:
                return await fn(*args, **kwargs)
        except TimeoutError:
            if cm.expired():
                span_events.emit("deadline.exceeded", where="run")          # chapter 07
                raise DeadlineExceeded() from None
            raise


async def within(deadline: Deadline | None, fn: Callable[..., Awaitable[Any]], /, *args, **kwargs):
    """Callee-side helper: run fn under `deadline` (or plainly when there is none)."""
    if deadline is None:
        return await fn(*args, **kwargs)
    return await deadline.run(fn, *args, **kwargs)
