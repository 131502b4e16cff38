"""Backoff strategies: how long to wait before the next attempt.

Introduced in chapter 05 (retries). The formulas are exactly those of Marc Brooker's AWS
Architecture Blog post "Exponential Backoff And Jitter" (2015):

    exponential   min(cap, base * 2**attempt)
    full jitter   uniform(0, min(cap, base * 2**attempt))
    equal jitter  temp/2 + uniform(0, temp/2)      with temp = min(cap, base * 2**attempt)
    decorrelated  min(cap, uniform(base, prev * 3))  with prev starting at base

One numbering everywhere in labkit: `attempt` is the number of the retry about to be made,
which is the number of failed calls so far, so the first retry uses attempt=1 and waits up to
min(cap, 2 * base). That is the post's simulator (aws-arch-backoff-simulator): after a failed
write it does `self.attempt += 1`, then sleeps `backoff(self.attempt)`. In `labkit.patterns.retry`
the event of failed call number n (`RetryEvent.attempt == n`) carries the wait before retry n,
`delay(n)`.

Pure functions: no sleeping, no clock; randomness comes from the `random.Random` you pass.
`Backoff` (one caller's state) makes its own stream when you give none
(`labkit._core.seeding.stream`), so separately built callers do not wait in lock-step.
Times are seconds as floats.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from labkit._core import seeding
from labkit._core.validate import integer, number

__all__ = ["Strategy", "NoBackoff", "Constant", "Exponential", "FullJitter", "EqualJitter",
           "DecorrelatedJitter", "STRATEGIES", "make", "Backoff", "schedule"]


def _check_attempt(attempt: int) -> None:
    # Fast path for the hot loop of labkit.labs.contention; validate words the error.
    if type(attempt) is not int or attempt < 1:
        integer("attempt", attempt, 1, unit=" (1 for the first retry: failed calls so far)")


def _expo(base: float, cap: float, attempt: int) -> float:
    # 2.0**1023 is the largest finite power; beyond it the cap wins anyway.
    return min(cap, base * 2.0 ** min(attempt, 1023))


@dataclass(frozen=True)
class Strategy:
    """Base of all strategies: `base` and `cap` in seconds, finite, 0 <= base <= cap."""

    base: float = 0.1
    cap: float = 10.0

    _base_open = False  # DecorrelatedJitter needs base > 0

    def __post_init__(self):
        base = number("base", self.base, 0.0, lo_open=self._base_open, unit=" seconds")
        cap = number("cap", self.cap, base, unit=f" seconds (cap >= base = {base:g} s)")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "cap", cap)

    name = "base"

    def delay(self, attempt: int, rng: random.Random, prev: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1 = the first retry, after the first
        failure); `prev` is the previous wait (decorrelated jitter only)."""
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
    """min(cap, uniform(base, prev * 3)); `prev` is the previous wait (base the first time).

    `base` must be > 0: with base 0 every wait would be uniform(0, 0) = 0 for ever.
    """

    name = "decorrelated"
    _base_open = True

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
    """Stateful helper: remembers the attempt count and previous wait for one caller.

    Without `rng` it makes a stream of its own (`seeding.stream`): two Backoffs built alike
    draw different jitters, and the same cells after `labkit.set_seed` draw the same ones.
    """

    def __init__(self, strategy: Strategy, rng: random.Random | None = None):
        if not isinstance(strategy, Strategy):
            raise ValueError(f"strategy must be a backoff Strategy such as FullJitter(), got {strategy!r}")
        if rng is None:
            rng = seeding.stream(f"backoff:{strategy.name}")
        elif not isinstance(rng, random.Random):
            raise ValueError(f"rng must be a random.Random (or None for a stream of its own), got {rng!r}")
        self.strategy = strategy
        self.rng = rng
        self.attempt = 0
        self.prev: float | None = None

    def next_delay(self) -> float:
        """The wait after one more failure: before retry number `attempt` (counted from 1)."""
        self.attempt += 1
        d = self.strategy.delay(self.attempt, self.rng, self.prev)
        self.prev = d
        return d

    def reset(self) -> None:
        self.attempt = 0
        self.prev = None


def schedule(strategy: Strategy | str, n: int, seed: int | None = None) -> list[float]:
    """The first `n` waits of `strategy` for one client (for plotting).

    With `seed`, always the same client; without, a new client each call (its own stream).
    """
    integer("n", n, 0, 100_000)
    if seed is not None:
        integer("seed", seed)
    if isinstance(strategy, str):
        strategy = make(strategy)
    name = f"backoff.schedule:{getattr(strategy, 'name', strategy)}"
    b = Backoff(strategy, seeding.stream(name) if seed is None else seeding.rng(name, seed))
    return [b.next_delay() for _ in range(n)]
