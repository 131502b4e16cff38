"""Retry budget, as gRPC's retry throttling (gRFC A6).

Introduced in chapter 05 (retries). Retries multiply load exactly when a service is
struggling; a budget shared by all calls of one client stops that. The token count starts at
`max_tokens`; each failed call takes 1 token, each success gives back `token_ratio` (capped at
`max_tokens`); retries are allowed only while tokens > max_tokens / 2. As in gRPC, tokens are
kept in thousandths so sums do not drift. Pure: no I/O; times (seconds, floats) only label events.
`events` keeps the newest 1000 (`EVENTS_KEPT`); the counts in `summary()` are running totals.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from labkit._core.validate import number
from labkit.patterns.errors import EventLog


@dataclass(frozen=True)
class BudgetEvent:
    """Retries switched between allowed and throttled, or a retry was denied."""

    at: float | None
    what: str  # "throttled", "allowed", "denied"
    tokens: float


class RetryBudget:
    """Token-bucket retry throttle shared by all calls of one client."""

    def __init__(self, max_tokens: float = 10, token_ratio: float = 0.1, *,
                 clock: Callable[[], float] | None = None):
        """`clock` only timestamps events (default: the running loop's time, else None)."""
        # gRPC's limits: 0 < maxTokens <= 1000, 0 < tokenRatio (kept in thousandths).
        number("max_tokens", max_tokens, 0.0, 1000.0, lo_open=True)
        number("token_ratio", token_ratio, 0.0, max_tokens, lo_open=True,
               unit=f" (at most max_tokens = {max_tokens:g})")
        self.max_tokens = max_tokens
        self.token_ratio = token_ratio
        self._clock = clock
        self._max_milli = round(max_tokens * 1000)
        self._ratio_milli = max(1, round(token_ratio * 1000))
        self._milli = self._max_milli
        self.events: EventLog = EventLog()
        self.event_counts: Counter = Counter()  # what -> how many, since creation
        self.successes = 0
        self.failures = 0
        self.denied = 0
        self._allowed = True

    @property
    def tokens(self) -> float:
        return self._milli / 1000

    def can_retry(self, now: float | None = None) -> bool:
        """True while tokens > max_tokens / 2. A False answer is counted as a denial."""
        ok = 2 * self._milli > self._max_milli
        if not ok:
            self.denied += 1
            self._event(now, "denied")
        return ok

    def record_failure(self, now: float | None = None) -> None:
        """A call failed with a retryable error: take one token."""
        self.failures += 1
        self._milli = max(0, self._milli - 1000)
        self._note(now)

    def record_success(self, now: float | None = None) -> None:
        """A call succeeded: give back token_ratio tokens (capped)."""
        self.successes += 1
        if self._milli < self._max_milli:
            self._milli = min(self._max_milli, self._milli + self._ratio_milli)
            self._note(now)

    def _note(self, now):
        allowed = 2 * self._milli > self._max_milli
        if allowed != self._allowed:
            self._allowed = allowed
            self._event(now, "allowed" if allowed else "throttled")

    def _event(self, now, what):
        self.event_counts[what] += 1
        self.events.append(BudgetEvent(self._now(now), what, self.tokens))

    def _now(self, now):
        if now is not None:
            return now
        if self._clock is not None:
            return self._clock()
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return None

    def summary(self) -> dict:
        return {"max_tokens": self.max_tokens, "token_ratio": self.token_ratio,
                "tokens": self.tokens, "retries_allowed": 2 * self._milli > self._max_milli,
                "successes": self.successes, "failures": self.failures, "denied": self.denied,
                "throttled": self.event_counts["throttled"],
                "events": sum(self.event_counts.values())}
