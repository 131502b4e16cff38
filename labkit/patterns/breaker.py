"""Circuit breakers: stop calling a service that is failing, then probe it carefully.

Introduced in chapter 05 (retries). `CircuitBreaker` follows resilience4j (its
CircuitBreakerStateMachine and CircuitBreakerMetrics; the differences are listed in the class
docstring): a count-based sliding window of the last `window_size` outcomes; it trips
CLOSED -> OPEN when at least `minimum_number_of_calls` are recorded and the failure rate is
>= `failure_rate_threshold` percent; the first call strictly after `wait_duration_in_open_s`
moves it to HALF_OPEN, which admits `permitted_calls_in_half_open` trial calls (more concurrent
ones are rejected) and goes back to CLOSED or OPEN by the failure rate of the first
min(minimum_number_of_calls, permitted_calls_in_half_open) trial outcomes.
`ConsecutiveFailureBreaker` is the source tutorial's simple breaker, corrected. Both share one
copy of the OPEN -> HALF_OPEN -> verdict logic (`_Breaker`).

The state machine is pure: `acquire` / `record_success` / `record_failure` take `now`
(seconds, float) or read it from an injectable clock (default: the running loop's time, so it
works under labkit.sim's virtual clock). `call(fn)` is the thin async wrapper. Listeners are
pybreaker-style objects with optional `state_change(old, new)`, `success()`, `failure(exc)`,
`rejected()` methods. `events` keeps the newest 1000 transitions (`EVENTS_KEPT`); the counts
in `summary()` are running totals.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from labkit._core.validate import integer, number
from labkit.patterns import span_events
from labkit.patterns.deadline import loop_time
from labkit.patterns.errors import (BreakerOpen, ErrorKind, EventLog, classify,
                                    is_service_failure)

__all__ = ["State", "StateChange", "BreakerListener", "CircuitBreaker",
           "ConsecutiveFailureBreaker", "BreakerOpen", "counts_as_failure"]


class State(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class StateChange:
    """The breaker moved from `old` to `new` at time `at` (seconds)."""

    at: float
    old: str
    new: str
    failure_rate: float | None  # percent, over the outcomes that caused the move


class BreakerListener:
    """pybreaker-style listener; override what you need."""

    def state_change(self, old: State, new: State) -> None: ...
    def success(self) -> None: ...
    def failure(self, exc: BaseException | None) -> None: ...
    def rejected(self) -> None: ...


_FAILURE_KINDS = frozenset({ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.INTERNAL,
                            ErrorKind.UNAVAILABLE, ErrorKind.GATEWAY, ErrorKind.RATE_LIMIT})


def counts_as_failure(exc: BaseException) -> bool:
    """Default: service failures that say the callee is unhealthy (not 400/401/403/404/409:
    it answered; and never a bug in our own code, such as a FileNotFoundError)."""
    return is_service_failure(exc) and classify(exc=exc) in _FAILURE_KINDS


class _Breaker:
    """Shared machinery: the one copy of OPEN -> HALF_OPEN admission and the half-open verdict;
    tickets, clock, listeners, bounded events, async call().

    Subclasses set `_wait_s` (how long OPEN lasts), `_permits` (trial calls per HALF_OPEN),
    `_quorum` (trial outcomes that decide) and `_threshold_pct` (failure rate of the trials that
    re-opens), and handle outcomes while CLOSED (`_closed_outcome`, `_reset_closed`).
    """

    _wait_s: float
    _permits: int
    _quorum: int
    _threshold_pct: float

    def __init__(self, name, clock, listeners, is_failure):
        if not isinstance(name, str):
            raise ValueError(f"name must be a str, got {name!r}")
        self.name = name
        self._clock = clock or loop_time
        self.listeners = list(listeners)
        self.is_failure = is_failure or counts_as_failure
        self.events: EventLog = EventLog()
        self.transition_counts: Counter = Counter()  # new state value -> transitions into it
        self.state = State.CLOSED
        self._gen = 0  # bumped on every transition; a ticket is the generation it was issued in
        self._opened_at = 0.0
        self._trial_permits = 0
        self._trial_done = 0
        self._trial_failed = 0
        self.calls_permitted = 0
        self.calls_rejected = 0
        self.successes = 0
        self.failures = 0
        self.late_outcomes = 0  # outcomes of calls admitted before the last transition

    # -- pure state machine -------------------------------------------------------------
    def acquire(self, now: float | None = None) -> int:
        """Admit one call (returns a ticket for record_*) or raise BreakerOpen."""
        t = self._clock() if now is None else now
        if self._admit(t):
            self.calls_permitted += 1
            return self._gen
        self.calls_rejected += 1
        for listener in self.listeners:
            getattr(listener, "rejected", _noop)()
        raise BreakerOpen(f"breaker {self.name!r} is {self.state.value}",
                          retry_after_s=self._retry_after(t))

    def allow(self, now: float | None = None) -> bool:
        """acquire() as a bool, for sequential use without tickets."""
        try:
            self.acquire(now)
            return True
        except BreakerOpen:
            return False

    def record_success(self, ticket: int | None = None, now: float | None = None) -> None:
        self.successes += 1
        for listener in self.listeners:
            getattr(listener, "success", _noop)()
        self._record(False, ticket, now)

    def record_failure(self, ticket: int | None = None, now: float | None = None,
                       exc: BaseException | None = None) -> None:
        self.failures += 1
        for listener in self.listeners:
            getattr(listener, "failure", _noop)(exc)
        self._record(True, ticket, now)

    def release(self, ticket: int) -> None:
        """Give back a permit without an outcome (the call was cancelled)."""
        if ticket == self._gen and self.state is State.HALF_OPEN:
            self._trial_permits += 1

    def _admit(self, t) -> bool:
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.OPEN:
            # resilience4j's OpenState: admit only when clock.instant().isAfter(opened + wait),
            # so a call at exactly that instant is still rejected.
            if not t > self._opened_at + self._wait_s:
                return False
            self._to_half_open(t)
        if self._trial_permits > 0:
            self._trial_permits -= 1
            return True
        return False

    def _retry_after(self, t):
        if self.state is State.OPEN:
            return max(0.0, self._opened_at + self._wait_s - t)
        return None

    def _record(self, failed, ticket, now):
        if ticket is not None and ticket != self._gen:
            self.late_outcomes += 1
            return
        t = self._clock() if now is None else now
        state = self.state
        if state is State.CLOSED:
            self._closed_outcome(failed, t)
        elif state is State.HALF_OPEN:
            self._trial_done += 1
            self._trial_failed += failed
            n = self._trial_done
            if n >= self._quorum:  # exact: failed/n >= threshold% without rounding
                rate = 100.0 * self._trial_failed / n
                if self._trial_failed * 100 >= self._threshold_pct * n:
                    self._to_open(t, rate)
                else:
                    self._reset_closed()
                    self._transition(State.CLOSED, t, rate)
        else:
            self.late_outcomes += 1

    def _to_open(self, t, rate):
        self._opened_at = t
        self._transition(State.OPEN, t, rate)

    def _to_half_open(self, t):
        self._trial_permits = self._permits
        self._trial_done = 0
        self._trial_failed = 0
        self._transition(State.HALF_OPEN, t, None)

    def _transition(self, new: State, at: float, failure_rate: float | None) -> None:
        old = self.state
        self.state = new
        self._gen += 1
        self.transition_counts[new.value] += 1
        self.events.append(StateChange(at, old.value, new.value, failure_rate))
        for listener in self.listeners:
            getattr(listener, "state_change", _noop)(old, new)
        span_events.emit("breaker.state_change", breaker=self.name, old=old.value,
                         new=new.value, failure_rate=failure_rate)          # chapter 07

    def _closed_outcome(self, failed: bool, t: float) -> None:
        raise NotImplementedError

    def _reset_closed(self) -> None:
        raise NotImplementedError

    # -- async wrapper ------------------------------------------------------------------
    async def call(self, fn: Callable[..., Any], /, *args, **kwargs) -> Any:
        """Await fn(*args, **kwargs) behind the breaker (raises BreakerOpen when refused).

        Health failures (see `counts_as_failure`) count as failures; other service errors
        (the callee answered, e.g. 404) count as successes; bugs in our own code (including
        OSErrors such as FileNotFoundError) and cancellations are not counted at all.
        """
        ticket = self.acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            if not is_service_failure(exc):
                self.release(ticket)
            elif self.is_failure(exc):
                self.record_failure(ticket, exc=exc)
            else:
                self.record_success(ticket)
            raise
        self.record_success(ticket)
        return result

    def _base_summary(self) -> dict:
        return {"name": self.name, "state": self.state.value, "calls_permitted": self.calls_permitted,
                "calls_rejected": self.calls_rejected, "successes": self.successes,
                "failures": self.failures, "late_outcomes": self.late_outcomes,
                "transitions_total": sum(self.transition_counts.values()),
                "opened": self.transition_counts[State.OPEN.value],
                "transitions": [[e.at, e.old, e.new] for e in self.events]}  # the newest 1000


def _noop(*_a):
    return None


class CircuitBreaker(_Breaker):
    """resilience4j-style breaker (count-based window, failure-rate threshold, half-open trials).

    Matches resilience4j's CircuitBreakerStateMachine for sequential and concurrent calls:
    the failure rate is checked after every outcome once `minimum_number_of_calls` (capped at
    `window_size`) are in the window; OPEN moves to HALF_OPEN on the first call *strictly*
    after `opened_at + wait_duration_in_open_s` (OpenState: `clock.instant().isAfter(...)`),
    without a background timer (resilience4j's default); HALF_OPEN admits
    `permitted_calls_in_half_open` (P) trials and decides after min(M, P) outcomes, M being
    the configured `minimum_number_of_calls` (CircuitBreakerMetrics.forHalfOpen: a window of P
    calls with that minimum), by the failure rate of those outcomes.

    Differences, on purpose:
    - Outcomes of calls admitted before the last transition (a slow call that ends after the
      breaker opened, a trial still running when the verdict came) are counted in
      `late_outcomes` and change nothing; resilience4j records them in the new state's window.
    - The rate is compared exactly (failures * 100 >= threshold * calls); resilience4j compares
      floats, which can differ only at the rounding boundary.
    - Not modelled: time-based windows, slow-call rate, a growing wait in OPEN
      (waitIntervalFunctionInOpenState), maxWaitDurationInHalfOpenState, forced/disabled states.
    - Which errors count: only health failures (`counts_as_failure`); a 404 counts as a
      success, and bugs in our code are not recorded. resilience4j records every exception
      unless configured otherwise.
    """

    def __init__(self, *, window_size: int = 100, failure_rate_threshold: float = 50.0,
                 minimum_number_of_calls: int = 100, wait_duration_in_open_s: float = 60.0,
                 permitted_calls_in_half_open: int = 10, name: str = "breaker",
                 clock: Callable[[], float] | None = None, listeners=(),
                 is_failure: Callable[[BaseException], bool] | None = None):
        integer("window_size", window_size, 1)
        integer("minimum_number_of_calls", minimum_number_of_calls, 1)
        integer("permitted_calls_in_half_open", permitted_calls_in_half_open, 1)
        number("failure_rate_threshold", failure_rate_threshold, 0.0, 100.0, lo_open=True,
               unit=" percent")
        wait_s = number("wait_duration_in_open_s", wait_duration_in_open_s, 0.0, unit=" seconds")
        super().__init__(name, clock, listeners, is_failure)
        self.window_size = window_size
        self.failure_rate_threshold = failure_rate_threshold
        # As resilience4j: the closed-state minimum can never exceed the window.
        self.minimum_number_of_calls = min(minimum_number_of_calls, window_size)
        self.wait_duration_in_open_s = wait_duration_in_open_s
        self.permitted_calls_in_half_open = permitted_calls_in_half_open
        self._wait_s = wait_s
        self._permits = permitted_calls_in_half_open
        self._quorum = min(minimum_number_of_calls, permitted_calls_in_half_open)
        self._threshold_pct = failure_rate_threshold
        self._window: deque[bool] = deque(maxlen=window_size)
        self._window_failures = 0

    def failure_rate(self) -> float | None:
        """Failure rate (percent) of the current window, or None below the minimum calls."""
        n = len(self._window)
        if self.state is not State.CLOSED or n < self.minimum_number_of_calls:
            return None
        return 100.0 * self._window_failures / n

    def _closed_outcome(self, failed, t):
        w = self._window
        if len(w) == self.window_size and w[0]:
            self._window_failures -= 1
        w.append(failed)
        if failed:
            self._window_failures += 1
        n = len(w)
        # Checked after every outcome, as resilience4j does (the call that reaches the
        # minimum may be a success). Exact comparison: 49/100 at 50% stays closed, 50 trips.
        if n >= self.minimum_number_of_calls and self._window_failures and \
                self._window_failures * 100 >= self.failure_rate_threshold * n:
            self._to_open(t, 100.0 * self._window_failures / n)

    def _reset_closed(self):
        self._window.clear()
        self._window_failures = 0

    def summary(self) -> dict:
        d = self._base_summary()
        d.update(window_size=self.window_size, failure_rate_threshold=self.failure_rate_threshold,
                 minimum_number_of_calls=self.minimum_number_of_calls,
                 wait_duration_in_open_s=self.wait_duration_in_open_s,
                 permitted_calls_in_half_open=self.permitted_calls_in_half_open,
                 failure_rate=self.failure_rate())
        return d


class ConsecutiveFailureBreaker(_Breaker):
    """The source tutorial's breaker, corrected: opens after `failure_threshold` failures in a row.

    What the original got wrong: it used time.time() (cannot run on a virtual clock); it
    tested `self.last_failure_time and ...`, so a failure at time 0.0 never reset; HALF_OPEN
    let every concurrent caller through instead of one trial; every exception (even a 404 or a
    bug in our code) counted as a failure; it raised a bare Exception nobody could classify;
    and its client wrapped the retry decorator *around* the breaker, retrying an open breaker.
    Here, as in `CircuitBreaker`, the first call strictly after `reset_timeout_s` is the one
    trial; its outcome closes or re-opens the breaker.
    """

    def __init__(self, *, failure_threshold: int = 5, reset_timeout_s: float = 60.0,
                 name: str = "breaker", clock: Callable[[], float] | None = None, listeners=(),
                 is_failure: Callable[[BaseException], bool] | None = None):
        integer("failure_threshold", failure_threshold, 1)
        wait_s = number("reset_timeout_s", reset_timeout_s, 0.0, unit=" seconds")
        super().__init__(name, clock, listeners, is_failure)
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.consecutive_failures = 0
        # One trial at a time; its failure (100 %) re-opens, its success (0 %) closes.
        self._wait_s, self._permits, self._quorum, self._threshold_pct = wait_s, 1, 1, 100.0

    def _closed_outcome(self, failed, t):
        if not failed:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failure_threshold:
            self._to_open(t, None)

    def _reset_closed(self):
        self.consecutive_failures = 0

    def summary(self) -> dict:
        d = self._base_summary()
        d.update(failure_threshold=self.failure_threshold, reset_timeout_s=self.reset_timeout_s,
                 consecutive_failures=self.consecutive_failures)
        return d
