"""Backoff strategies: how long to wait before the next attempt.

Introduced in chapter 05 (retries). The formulas are exactly those of Marc Brooker's AWS
Architecture Blog post "Exponential Backoff And Jitter" (2015):

    exponential   min(cap, base * 2**attempt)
    full jitter   uniform(0, min(cap, base * 2**attempt))
    equal jitter  temp/2 + uniform(0, temp/2)      with temp = min(cap, base * 2**attempt)
    decorrelated  min(cap, uniform(base, prev * 3))  with prev starting at base

`attempt` counts failed attempts so far: the wait after the first failure uses attempt=1
(as in the post's simulator). Pure functions: no sleeping, no clock; randomness comes from
the `random.Random` you pass (see `labkit._core.seeding.rng`). Times are seconds as floats.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from labkit._core import seeding

__all__ = ["Strategy", "NoBackoff", "Constant", "Exponential", "FullJitter", "EqualJitter",
           "DecorrelatedJitter", "STRATEGIES", "make", "Backoff", "schedule"]


def _check_attempt(attempt: int) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an int >= 1 (failures so far), got {attempt!r}")


def _expo(base: float, cap: float, attempt: int) -> float:
    # 2.0**1023 is the largest finite power; beyond it the cap wins anyway.
    return min(cap, base * 2.0 ** min(attempt, 1023))


@dataclass(frozen=True)
class Strategy:
    """Base of all strategies: `base` and `cap` in seconds, 0 <= base <= cap."""

    base: float = 0.1
    cap: float = 10.0

    def __post_init__(self):
        if not (isinstance(self.base, (int, float)) and self.base >= 0):
            raise ValueError(f"base must be a number of seconds >= 0, got {self.base!r}")
        if not (isinstance(self.cap, (int, float)) and self.cap >= self.base):
            raise ValueError(f"cap must be a number of seconds >= base ({self.base}), got {self.cap!r}")

    name = "base"

    def delay(self, attempt: int, rng: random.Random, prev: float | None = None) -> float:
        """Seconds to wait after the `attempt`-th failure; `prev` is the previous wait."""
        raise NotImplementedError


@dataclass(frozen=True)
class NoBackoff(Strategy):
    """Retry immediately (the post's 'no backoff' baseline)."""

    name = "none"

    def delay(self, attempt, rng, prev=None):
        _check_attempt(attempt)
        return 0.0


@dataclass(frozen=True)
class Constant(Strategy):
    """Always wait `base` seconds."""

    name = "constant"

    def delay(self, attempt, rng, prev=None):
        _check_attempt(attempt)
        return float(self.base)


@dataclass(frozen=True)
class Exponential(Strategy):
    """min(cap, base * 2**attempt): no jitter, so clients that fail together retry together."""

    name = "exponential"

    def delay(self, attempt, rng, prev=None):
        _check_attempt(attempt)
        return _expo(self.base, self.cap, attempt)


@dataclass(frozen=True)
class FullJitter(Strategy):
    """uniform(0, min(cap, base * 2**attempt))."""

    name = "full"

    def delay(self, attempt, rng, prev=None):
        _check_attempt(attempt)
        return rng.uniform(0.0, _expo(self.base, self.cap, attempt))


@dataclass(frozen=True)
class EqualJitter(Strategy):
    """temp/2 + uniform(0, temp/2) with temp = min(cap, base * 2**attempt)."""

    name = "equal"

    def delay(self, attempt, rng, prev=None):
        _check_attempt(attempt)
        temp = _expo(self.base, self.cap, attempt)
        return temp / 2 + rng.uniform(0.0, temp / 2)


@dataclass(frozen=True)
class DecorrelatedJitter(Strategy):
    """min(cap, uniform(base, prev * 3)); `prev` is the previous wait (base the first time)."""

    name = "decorrelated"

    def delay(self, attempt, rng, prev=None):
        _check_attempt(attempt)
        p = self.base if prev is None else prev
        return min(self.cap, rng.uniform(self.base, p * 3))


STRATEGIES: dict[str, type[Strategy]] = {
    c.name: c for c in (NoBackoff, Constant, Exponential, FullJitter, EqualJitter, DecorrelatedJitter)
}


def make(name: str, base: float = 0.1, cap: float = 10.0) -> Strategy:
    """A strategy by name: one of none, constant, exponential, full, equal, decorrelated."""
    try:
        cls = STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {name!r}") from None
    return cls(base=base, cap=cap)


class Backoff:
    """Stateful helper: remembers the attempt count and previous wait for one caller."""

    def __init__(self, strategy: Strategy, rng: random.Random):
        self.strategy = strategy
        self.rng = rng
        self.attempt = 0
        self.prev: float | None = None

    def next_delay(self) -> float:
        """The wait after one more failure."""
        self.attempt += 1
        d = self.strategy.delay(self.attempt, self.rng, self.prev)
        self.prev = d
        return d

    def reset(self) -> None:
        self.attempt = 0
        self.prev = None


def schedule(strategy: Strategy | str, n: int, seed: int | None = None) -> list[float]:
    """The first `n` waits of `strategy` for one client (for plotting), seeded."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if isinstance(strategy, str):
        strategy = make(strategy)
    b = Backoff(strategy, seeding.rng(f"backoff.schedule:{strategy.name}", seed))
    return [b.next_delay() for _ in range(n)]
