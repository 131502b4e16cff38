"""Circuit breakers: stop calling a service that is failing, then probe it carefully.

Introduced in chapter 05 (retries). `CircuitBreaker` follows resilience4j: a count-based
sliding window of the last `window_size` outcomes; it trips CLOSED -> OPEN when at least
`minimum_number_of_calls` are recorded and the failure rate is >= `failure_rate_threshold`
percent; after `wait_duration_in_open_s` the next call moves it to HALF_OPEN, which admits
exactly `permitted_calls_in_half_open` trial calls (more concurrent ones are rejected) and,
once they have all finished, goes back to CLOSED or OPEN by their failure rate.
`ConsecutiveFailureBreaker` is the source tutorial's simple breaker, corrected.

The state machine is pure: `acquire` / `record_success` / `record_failure` take `now`
(seconds, float) or read it from an injectable clock (default: the running loop's time, so it
works under labkit.sim's virtual clock). `call(fn)` is the thin async wrapper. Listeners are
pybreaker-style objects with optional `state_change(old, new)`, `success()`, `failure(exc)`,
`rejected()` methods.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from labkit.patterns.deadline import loop_time
from labkit.patterns.errors import BreakerOpen, ErrorKind, classify, is_service_failure

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
                            ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMIT})


def counts_as_failure(exc: BaseException) -> bool:
    """Default: failures that say the callee is unhealthy (not 400/401/403/404: it answered)."""
    return classify(exc=exc) in _FAILURE_KINDS


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name} must be an int {rng}, got {value!r}")


class _Breaker:
    """Shared machinery: tickets, clock, listeners, events, async call()."""

    def __init__(self, name, clock, listeners, is_failure):
        self.name = name
        self._clock = clock or loop_time
        self.listeners = list(listeners)
        self.is_failure = is_failure or counts_as_failure
        self.events: list[StateChange] = []
        self.state = State.CLOSED
        self._gen = 0  # bumped on every transition; a ticket is the generation it was issued in
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
        if ticket == self._gen:
            self._release()

    def _record(self, failed, ticket, now):
        if ticket is not None and ticket != self._gen:
            self.late_outcomes += 1
            return
        self._on_outcome(failed, self._clock() if now is None else now)

    def _transition(self, new: State, at: float, failure_rate: float | None) -> None:
        old = self.state
        self.state = new
        self._gen += 1
        self.events.append(StateChange(at, old.value, new.value, failure_rate))
        for listener in self.listeners:
            getattr(listener, "state_change", _noop2)(old, new)

    # -- async wrapper ------------------------------------------------------------------
    async def call(self, fn: Callable[..., Any], /, *args, **kwargs) -> Any:
        """Await fn(*args, **kwargs) behind the breaker (raises BreakerOpen when refused).

        Health failures (see `counts_as_failure`) count as failures; other service errors
        (the callee answered, e.g. 404) count as successes; bugs in our own code and
        cancellations are not counted at all.
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
                "transitions": [[e.at, e.old, e.new] for e in self.events]}


def _noop(*_a):
    return None


def _noop2(*_a):
    return None


class CircuitBreaker(_Breaker):
    """resilience4j-style breaker (count-based window, failure-rate threshold, half-open trials)."""

    def __init__(self, *, window_size: int = 100, failure_rate_threshold: float = 50.0,
                 minimum_number_of_calls: int = 100, wait_duration_in_open_s: float = 60.0,
                 permitted_calls_in_half_open: int = 10, name: str = "breaker",
                 clock: Callable[[], float] | None = None, listeners=(),
                 is_failure: Callable[[BaseException], bool] | None = None):
        _check_int("window_size", window_size, 1)
        _check_int("minimum_number_of_calls", minimum_number_of_calls, 1)
        _check_int("permitted_calls_in_half_open", permitted_calls_in_half_open, 1)
        if not (isinstance(failure_rate_threshold, (int, float)) and 0 < failure_rate_threshold <= 100):
            raise ValueError(f"failure_rate_threshold must be a percent in (0, 100], got {failure_rate_threshold!r}")
        if not (isinstance(wait_duration_in_open_s, (int, float)) and wait_duration_in_open_s >= 0):
            raise ValueError(f"wait_duration_in_open_s must be >= 0 seconds, got {wait_duration_in_open_s!r}")
        super().__init__(name, clock, listeners, is_failure)
        self.window_size = window_size
        self.failure_rate_threshold = failure_rate_threshold
        # As resilience4j: the minimum can never exceed the window.
        self.minimum_number_of_calls = min(minimum_number_of_calls, window_size)
        self.wait_duration_in_open_s = wait_duration_in_open_s
        self.permitted_calls_in_half_open = permitted_calls_in_half_open
        self._window: deque[bool] = deque(maxlen=window_size)
        self._window_failures = 0
        self._opened_at = 0.0
        self._trial_permits = 0
        self._trial_done = 0
        self._trial_failed = 0

    def failure_rate(self) -> float | None:
        """Failure rate (percent) of the current window, or None below the minimum calls."""
        n = len(self._window)
        if self.state is not State.CLOSED or n < self.minimum_number_of_calls:
            return None
        return 100.0 * self._window_failures / n

    def _admit(self, t):
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.OPEN:
            if t < self._opened_at + self.wait_duration_in_open_s:
                return False
            self._to_half_open(t)
        if self._trial_permits > 0:
            self._trial_permits -= 1
            return True
        return False

    def _retry_after(self, t):
        if self.state is State.OPEN:
            return max(0.0, self._opened_at + self.wait_duration_in_open_s - t)
        return None

    def _release(self):
        if self.state is State.HALF_OPEN:
            self._trial_permits += 1

    def _on_outcome(self, failed, t):
        state = self.state
        if state is State.CLOSED:
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
        elif state is State.HALF_OPEN:
            self._trial_done += 1
            self._trial_failed += failed
            n = self.permitted_calls_in_half_open
            if self._trial_done >= n:
                rate = 100.0 * self._trial_failed / n
                if self._trial_failed * 100 >= self.failure_rate_threshold * n:
                    self._to_open(t, rate)
                else:
                    self._to_closed(t, rate)
        else:
            self.late_outcomes += 1

    def _to_open(self, t, rate):
        self._opened_at = t
        self._transition(State.OPEN, t, rate)

    def _to_half_open(self, t):
        self._trial_permits = self.permitted_calls_in_half_open
        self._trial_done = 0
        self._trial_failed = 0
        self._transition(State.HALF_OPEN, t, None)

    def _to_closed(self, t, rate):
        self._window.clear()
        self._window_failures = 0
        self._transition(State.CLOSED, t, rate)

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
    """

    def __init__(self, *, failure_threshold: int = 5, reset_timeout_s: float = 60.0,
                 name: str = "breaker", clock: Callable[[], float] | None = None, listeners=(),
                 is_failure: Callable[[BaseException], bool] | None = None):
        _check_int("failure_threshold", failure_threshold, 1)
        if not (isinstance(reset_timeout_s, (int, float)) and reset_timeout_s >= 0):
            raise ValueError(f"reset_timeout_s must be >= 0 seconds, got {reset_timeout_s!r}")
        super().__init__(name, clock, listeners, is_failure)
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._trial_free = False

    def _admit(self, t):
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN:
            if t < self._opened_at + self.reset_timeout_s:
                return False
            self._trial_free = True
            self._transition(State.HALF_OPEN, t, None)
        if self._trial_free:  # exactly one trial at a time
            self._trial_free = False
            return True
        return False

    def _retry_after(self, t):
        if self.state is State.OPEN:
            return max(0.0, self._opened_at + self.reset_timeout_s - t)
        return None

    def _release(self):
        if self.state is State.HALF_OPEN:
            self._trial_free = True

    def _on_outcome(self, failed, t):
        if self.state is State.CLOSED:
            if not failed:
                self.consecutive_failures = 0
                return
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.failure_threshold:
                self._opened_at = t
                self._transition(State.OPEN, t, None)
        elif self.state is State.HALF_OPEN:
            if failed:
                self._opened_at = t
                self._transition(State.OPEN, t, 100.0)
            else:
                self.consecutive_failures = 0
                self._transition(State.CLOSED, t, 0.0)
        else:
            self.late_outcomes += 1

    def summary(self) -> dict:
        d = self._base_summary()
        d.update(failure_threshold=self.failure_threshold, reset_timeout_s=self.reset_timeout_s,
                 consecutive_failures=self.consecutive_failures)
        return d
