"""Retry policy: try again, but only when it is useful, safe and affordable.

Introduced in chapter 05 (retries). `Retry` retries a failed async call with a backoff
strategy (labkit.patterns.backoff), bounded both by `max_attempts` and by `max_total_s`: an
attempt still running when the total time runs out is cancelled (`TotalTimeout`). It honours
Retry-After (waits max(backoff, retry_after), still within the total time), never retries
kinds that cannot succeed (validation, auth, not found, conflict, an open breaker) nor bugs in
our own code, never repeats a POST/PATCH unless the caller marks it idempotent or gives an
idempotency key, and can share a RetryBudget. Each policy draws its jitter from a stream of
its own (`labkit._core.seeding.stream`), so clients built alike do not retry in lock-step.
Sleep and clock are injectable (defaults: asyncio.sleep, the loop's time), so the same policy
runs on real sockets and instantly under labkit.sim. Times are seconds as floats.

Numbering: call number n is `RetryEvent.attempt == n` (1 = the first call); when it fails and
the policy retries, the wait before retry number n (call n + 1) is `backoff.delay(n)`, as in
labkit.patterns.backoff and the AWS post's simulator.

The bottom of the module has corrected counterparts of the source tutorial's
`retry_on_failure`, `ExponentialBackoffRetry`, `CircuitBreakerRetry` and `AdaptiveRetry`.
"""
from __future__ import annotations

import asyncio
import functools
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from labkit._core import seeding
from labkit._core.validate import boolean, integer, number, optional_number
from labkit.patterns import span_events
from labkit.patterns.backoff import Backoff, FullJitter, Strategy, make
from labkit.patterns.breaker import CircuitBreaker, _Breaker
from labkit.patterns.budget import RetryBudget
from labkit.patterns.deadline import loop_time
from labkit.patterns.errors import (ErrorKind, EventLog, ServiceError, classify,
                                    is_service_failure)

__all__ = ["RetryEvent", "Retry", "TotalTimeout", "IDEMPOTENT_METHODS", "retry_on_failure",
           "ExponentialBackoffRetry", "CircuitBreakerRetry", "AdaptiveRetry"]

#: RFC 9110 idempotent methods; POST and PATCH are not.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryEvent:
    """One finished call and what the policy decided.

    `attempt` is the call's number (1 = the first call, 2 = the first retry). For outcome
    "retry", `wait_s` is the sleep before retry number `attempt`: `backoff.delay(attempt)`
    (or Retry-After, if longer).
    """

    attempt: int  # 1 for the first call
    at: float  # loop time (s) when the attempt finished
    outcome: str  # "success", "retry" or "give_up"
    kind: str | None  # ErrorKind value of the failure, None on success
    wait_s: float  # sleep before the next attempt (0 unless outcome == "retry")
    cause: str  # short human reason


class TotalTimeout(ServiceError, TimeoutError):
    """`max_total_s` ran out while an attempt was running; the attempt was cancelled.

    A timeout-kind ServiceError (and a TimeoutError). `last_error` is the failure of the
    attempt before (None if the first attempt was cut); it is also `__cause__`.
    """

    def __init__(self, message: str, *, attempts: int, last_error: BaseException | None):
        super().__init__(ErrorKind.TIMEOUT, message)
        self.attempts = attempts
        self.last_error = last_error


def _optional(name, value, kind, what):
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{name} must be {what} or None, got {value!r}")
    return value


class Retry:
    """An async retry policy. Use `await policy.call(fn, *args)` or `@policy` on an async def.

    Every attempt runs under a loop timer: `attempt_timeout_s` (a retryable timeout) or, when
    less is left, the rest of `max_total_s`, which ends the call with `TotalTimeout`.
    `events` keeps the newest 1000 RetryEvents (`EVENTS_KEPT`); `summary()` counts every
    attempt since the policy was made. Without `seed`, the policy draws from a stream of its
    own (different for every policy, reproducible after `labkit.set_seed` or in a labkit.sim
    run); with `seed`, always the same stream for that seed and name.
    """

    def __init__(self, *, max_attempts: int = 3, max_total_s: float = 10.0,
                 backoff: Strategy | str = FullJitter(base=0.1, cap=5.0),
                 honour_retry_after: bool = True, budget: RetryBudget | None = None,
                 method: str | None = None, idempotent: bool | None = None,
                 idempotency_key: str | None = None, attempt_timeout_s: float | None = None,
                 seed: int | None = None, name: str = "retry",
                 sleep: Callable[[float], Awaitable[Any]] | None = None,
                 clock: Callable[[], float] | None = None,
                 on_event: Callable[[RetryEvent], Any] | None = None):
        self.max_attempts = integer("max_attempts", max_attempts, 1)
        self.max_total_s = number("max_total_s", max_total_s, 0.0, lo_open=True, unit=" seconds")
        self.attempt_timeout_s = optional_number("attempt_timeout_s", attempt_timeout_s, 0.0,
                                                 lo_open=True, unit=" seconds")
        if isinstance(backoff, str):
            backoff = make(backoff)
        elif not isinstance(backoff, Strategy):
            raise ValueError(f"backoff must be a Strategy such as FullJitter(base=0.1, cap=5.0) or "
                             f"one of its names, got {backoff!r}")
        self.backoff = backoff
        self.honour_retry_after = boolean("honour_retry_after", honour_retry_after)
        self.budget = _optional("budget", budget, RetryBudget, "a RetryBudget")
        method = _optional("method", method, str, "an HTTP method name like 'GET'")
        self.method = method.upper() if method else None
        self.idempotent = None if idempotent is None else boolean("idempotent", idempotent)
        self.idempotency_key = _optional("idempotency_key", idempotency_key, str, "a str")
        if not isinstance(name, str):
            raise ValueError(f"name must be a str, got {name!r}")
        self.name = name
        if seed is None:
            self.rng = seeding.stream(f"retry:{name}")
        else:
            self.rng = seeding.rng(f"retry:{name}", integer("seed", seed))
        for label, fn in (("sleep", sleep), ("clock", clock), ("on_event", on_event)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{label} must be callable or None, got {fn!r}")
        self._sleep = sleep or asyncio.sleep
        self._clock = clock or loop_time
        self.on_event = on_event
        self.events: EventLog = EventLog()
        self._outcomes: Counter = Counter()
        self._give_up_causes: Counter = Counter()
        self._total_wait_s = 0.0

    # -- decisions (pure) ---------------------------------------------------------------
    def repeat_is_safe(self) -> bool:
        """May the operation run twice? Idempotent methods yes; POST/PATCH only with a key."""
        if self.idempotency_key is not None or self.idempotent:
            return True
        if self.idempotent is False:
            return False
        return self.method is None or self.method in IDEMPOTENT_METHODS

    def _give_up_reason(self, kind: ErrorKind, attempt: int) -> str | None:
        if not kind.retryable:
            return f"{kind.value} is not retryable"
        if not self.repeat_is_safe():
            return f"{self.method or 'call'} is not idempotent and has no idempotency key"
        if attempt >= self.max_attempts:
            return f"max_attempts={self.max_attempts} reached"
        return None

    def _next_wait(self, backoff: Backoff, exc: BaseException) -> float:
        wait = backoff.next_delay()
        retry_after = getattr(exc, "retry_after_s", None)
        if self.honour_retry_after and retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def _observe(self, ok: bool) -> None:
        """Hook for subclasses: one call per finished attempt."""

    # -- async shell -------------------------------------------------------------------
    async def call(self, fn: Callable[..., Awaitable[Any]], /, *args, **kwargs) -> Any:
        """Await fn(*args, **kwargs), retrying per the policy; re-raises the last error."""
        clock = self._clock
        deadline = clock() + self.max_total_s
        backoff = None  # created on the first failure: the happy path stays cheap
        budget = self.budget
        per_attempt = self.attempt_timeout_s
        attempt = 0
        last_error = None
        while True:
            attempt += 1
            # Every attempt runs under a loop timer: the shorter of attempt_timeout_s and what
            # is left of max_total_s. Only the second one ends the whole call.
            remaining = deadline - clock()
            total_cuts = per_attempt is None or remaining <= per_attempt
            timer = asyncio.timeout(max(0.0, remaining) if total_cuts else per_attempt)
            try:
                async with timer:
                    result = await fn(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = clock()
                if total_cuts and isinstance(exc, TimeoutError) and timer.expired():
                    raise self._total_timeout(attempt, now, last_error) from (last_error or exc)
                last_error = exc
                if not is_service_failure(exc):
                    self._emit(RetryEvent(attempt, now, "give_up", None, 0.0,
                                          f"{type(exc).__name__} is not a service failure"))
                    raise
                self._observe(False)
                kind = classify(exc=exc)
                if budget is not None and kind.retryable:
                    budget.record_failure(now)
                reason = self._give_up_reason(kind, attempt)
                wait = 0.0
                if reason is None:
                    if backoff is None:
                        backoff = Backoff(self.backoff, self.rng)
                    wait = self._next_wait(backoff, exc)
                    if now + wait >= deadline:
                        reason = f"the next wait would pass max_total_s={self.max_total_s:g} s"
                    elif budget is not None and not budget.can_retry(now):
                        reason = "retry budget exhausted"
                if reason is not None:
                    self._emit(RetryEvent(attempt, now, "give_up", kind.value, 0.0, reason))
                    raise
                self._emit(RetryEvent(attempt, now, "retry", kind.value, wait, str(exc) or kind.value))
                await self._sleep(wait)
            else:
                self._observe(True)
                if budget is not None:
                    budget.record_success()
                self._emit(RetryEvent(attempt, clock(), "success", None, 0.0, "ok"))
                return result

    def __call__(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """Decorator form: `@Retry(...)` on an async function."""
        if not asyncio.iscoroutinefunction(fn):
            raise ValueError(f"Retry decorates async functions; {fn!r} is not one")

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            return await self.call(fn, *args, **kwargs)

        wrapper.retry = self
        return wrapper

    def _total_timeout(self, attempt: int, now: float, last_error) -> TotalTimeout:
        """Record the cut attempt and build the error that ends the call."""
        self._observe(False)
        if self.budget is not None:
            self.budget.record_failure(now)
        self._emit(RetryEvent(attempt, now, "give_up", ErrorKind.TIMEOUT.value, 0.0,
                              f"max_total_s={self.max_total_s:g} s ran out during an attempt"))
        before = "" if last_error is None else \
            f"; the attempt before failed with {type(last_error).__name__}: {last_error}"
        return TotalTimeout(f"retry policy {self.name!r}: max_total_s={self.max_total_s:g} s ran "
                            f"out during attempt {attempt}, which was cancelled{before}",
                            attempts=attempt, last_error=last_error)

    def _emit(self, event: RetryEvent) -> None:
        self.events.append(event)
        self._outcomes[event.outcome] += 1
        if event.outcome == "give_up":
            self._give_up_causes[event.cause] += 1
        self._total_wait_s += event.wait_s
        if self.on_event is not None:
            self.on_event(event)
        if event.outcome != "success" or event.attempt > 1:          # chapter 07: span event
            span_events.emit(f"retry.{event.outcome}", policy=self.name, attempt=event.attempt,
                             wait_s=event.wait_s, kind=event.kind, cause=event.cause)

    def summary(self) -> dict:
        """Counts since the policy was made (not only the events still kept)."""
        outcomes = self._outcomes
        return {"name": self.name, "max_attempts": self.max_attempts, "max_total_s": self.max_total_s,
                "backoff": self.backoff.name, "attempts": sum(outcomes.values()),
                "successes": outcomes["success"], "retries": outcomes["retry"],
                "give_ups": outcomes["give_up"], "give_up_causes": dict(self._give_up_causes),
                "total_wait_s": self._total_wait_s}


# -- corrected counterparts of the source tutorial ----------------------------------------

def retry_on_failure(max_attempts: int = 3, delay_s: float = 1.0, *, cap_s: float = 30.0,
                     max_total_s: float = 60.0, seed: int | None = None, sleep=None):
    """Decorator for async functions: full-jitter retries of retryable failures only.

    The original: `max_retries` actually counted attempts; it used time.sleep (blocks the event
    loop); on an async function it never saw an error (it returned the coroutine unawaited);
    it retried every exception, validation errors and bugs included; it had no jitter and no
    total time bound; and its client wrapped it around the breaker, so it retried BreakerOpen.
    `delay_s` is the ceiling of the first wait (full jitter with base = delay_s / 2).
    """
    number("delay_s", delay_s, 0.0, lo_open=True, unit=" seconds")
    number("cap_s", cap_s, 0.0, lo_open=True, unit=" seconds")
    policy = Retry(max_attempts=max_attempts, max_total_s=max_total_s,
                   backoff=FullJitter(base=delay_s / 2, cap=max(cap_s, delay_s / 2)),
                   seed=seed, sleep=sleep, name="retry_on_failure")
    return policy


class ExponentialBackoffRetry:
    """`await ExponentialBackoffRetry().retry(fn, *args)`: capped exponential backoff, full jitter.

    The original added only +-10% jitter (clients that failed together stay in lock-step),
    drew from the unseeded global `random`, retried every exception (including validation
    errors and 404s), and had no bound on total time.
    """

    def __init__(self, initial_delay_s: float = 1.0, max_delay_s: float = 60.0, max_retries: int = 3,
                 *, max_total_s: float = 120.0, seed: int | None = None, sleep=None):
        number("initial_delay_s", initial_delay_s, 0.0, lo_open=True, unit=" seconds")
        number("max_delay_s", max_delay_s, 0.0, lo_open=True, unit=" seconds")
        integer("max_retries", max_retries, 0)
        self.policy = Retry(max_attempts=max_retries + 1, max_total_s=max_total_s,
                            backoff=FullJitter(base=initial_delay_s / 2, cap=max(max_delay_s, initial_delay_s / 2)),
                            seed=seed, sleep=sleep, name="exponential_backoff")

    async def retry(self, fn, /, *args, **kwargs):
        return await self.policy.call(fn, *args, **kwargs)

    @property
    def events(self):
        return self.policy.events


class CircuitBreakerRetry:
    """`await CircuitBreakerRetry().retry_with_circuit_breaker(fn, *args)`: retry *outside*, breaker inside.

    The original never retried despite its name; it released its lock before the call, so
    HALF_OPEN let every concurrent caller through; a success merely decremented the failure
    count (neither a window nor 'consecutive'); `last_failure_time and ...` is False at time 0.0;
    it used the deprecated asyncio.get_event_loop(). Here BreakerOpen is not retryable, so an
    open breaker fails fast instead of being hammered by the retry loop.
    """

    def __init__(self, breaker: _Breaker | None = None, retry: Retry | None = None):
        self.breaker = breaker or CircuitBreaker(window_size=20, minimum_number_of_calls=10,
                                                 wait_duration_in_open_s=30.0,
                                                 permitted_calls_in_half_open=3)
        self.policy = retry or Retry(name="circuit_breaker_retry")

    async def retry_with_circuit_breaker(self, fn, /, *args, **kwargs):
        return await self.policy.call(self.breaker.call, fn, *args, **kwargs)


class AdaptiveRetry(Retry):
    """A Retry that slows down (x2 waits) when recent attempts mostly fail, plus a retry budget.

    The original recorded only successes, so its success rate was always 1.0 and it never
    adapted; it referenced an undefined `error_handler` when computing a delay (NameError on
    the first retry); it retried CIRCUIT_BREAKER_OPEN; and it slept even after the last attempt.
    """

    def __init__(self, initial_delay_s: float = 1.0, max_retries: int = 5, *, window: int = 20,
                 budget: RetryBudget | None = None, max_total_s: float = 120.0,
                 seed: int | None = None, sleep=None, clock=None):
        integer("window", window, 1)
        number("initial_delay_s", initial_delay_s, 0.0, lo_open=True, unit=" seconds")
        integer("max_retries", max_retries, 0)
        super().__init__(max_attempts=max_retries + 1, max_total_s=max_total_s,
                         backoff=FullJitter(base=initial_delay_s / 2, cap=60.0),
                         budget=budget if budget is not None else RetryBudget(10, 0.1),
                         seed=seed, sleep=sleep, clock=clock, name="adaptive")
        self.history: deque[bool] = deque(maxlen=window)

    def success_rate(self) -> float:
        return sum(self.history) / len(self.history) if self.history else 1.0

    def _observe(self, ok: bool) -> None:
        self.history.append(ok)

    def _next_wait(self, backoff: Backoff, exc: BaseException) -> float:
        wait = super()._next_wait(backoff, exc)
        return wait * 2 if self.success_rate() < 0.5 else wait

    async def adaptive_retry(self, fn, /, *args, **kwargs):
        return await self.call(fn, *args, **kwargs)
