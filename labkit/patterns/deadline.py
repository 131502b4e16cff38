"""Deadline propagation: one time budget for a whole chain of calls.

Introduced in chapter 05 (retries). A client that gives up after 1 s gains nothing if the
services behind it keep working for 10 s. A `Deadline` is an absolute time on the event-loop
clock; each hop sends what is left in the `X-Deadline-Remaining-Ms` header (a relative amount,
so hosts need not share a clock), and a callee refuses or abandons work whose deadline has
passed. Times are seconds as floats inside labkit; the header carries whole milliseconds.
Works unchanged under the virtual clock of `labkit.sim`.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit.patterns.errors import ErrorKind, ServiceError

HEADER = "X-Deadline-Remaining-Ms"


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
    if not isinstance(remaining_s, (int, float)) or math.isnan(remaining_s):
        raise ValueError(f"remaining_s must be a number of seconds, got {remaining_s!r}")
    return str(max(0, math.floor(remaining_s * 1000)))


def decode_remaining_ms(value: str) -> float:
    """Seconds left from a header value (non-negative whole milliseconds)."""
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"{HEADER} must be a whole number of milliseconds >= 0, got {value!r}")
    return int(text) / 1000


@dataclass(frozen=True)
class Deadline:
    """An absolute deadline `at` on the loop clock (seconds)."""

    at: float

    @classmethod
    def after(cls, timeout_s: float, *, now: float | None = None) -> "Deadline":
        """The deadline `timeout_s` seconds from now."""
        if not isinstance(timeout_s, (int, float)) or not timeout_s >= 0:
            raise ValueError(f"timeout_s must be a number of seconds >= 0, got {timeout_s!r}")
        return cls((loop_time() if now is None else now) + timeout_s)

    def remaining_s(self, now: float | None = None) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.at - (loop_time() if now is None else now))

    def expired(self, now: float | None = None) -> bool:
        return (loop_time() if now is None else now) >= self.at

    def shrink(self, margin_s: float) -> "Deadline":
        """An earlier deadline, leaving `margin_s` for the reply to travel back."""
        if not margin_s >= 0:
            raise ValueError(f"margin_s must be >= 0 seconds, got {margin_s!r}")
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
            return None if default_s is None else cls(t + default_s)
        return cls(t + decode_remaining_ms(value))

    def check(self, now: float | None = None) -> None:
        """Raise DeadlineExceeded if the deadline has passed (a checkpoint between steps)."""
        if self.expired(now):
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
                raise DeadlineExceeded() from None
            raise


async def within(deadline: Deadline | None, fn: Callable[..., Awaitable[Any]], /, *args, **kwargs):
    """Callee-side helper: run fn under `deadline` (or plainly when there is none)."""
    if deadline is None:
        return await fn(*args, **kwargs)
    return await deadline.run(fn, *args, **kwargs)
