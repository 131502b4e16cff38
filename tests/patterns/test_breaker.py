"""Circuit breakers: exact resilience4j thresholds, half-open limits, a reference model."""
import asyncio
import json
import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from labkit import sim
from labkit.patterns.breaker import (BreakerListener, BreakerOpen, CircuitBreaker,
                            ConsecutiveFailureBreaker, State, counts_as_failure)
from labkit.patterns.errors import ErrorKind, ServiceError


def feed(b, outcomes, t=0.0):
    for ok in outcomes:
        b.acquire(t)
        (b.record_success if ok else b.record_failure)(now=t)


@pytest.mark.parametrize("order", ["failures_first", "failures_last", "shuffled"])
@pytest.mark.parametrize("failures,expected", [(49, State.CLOSED), (50, State.OPEN)])
def test_exact_threshold(order, failures, expected):
    outcomes = [False] * failures + [True] * (100 - failures)
    if order == "failures_last":
        outcomes.reverse()
    elif order == "shuffled":
        random.Random(failures).shuffle(outcomes)
    b = CircuitBreaker(window_size=100, minimum_number_of_calls=100, failure_rate_threshold=50)
    feed(b, outcomes[:99])
    assert b.state is State.CLOSED  # below the minimum number of calls nothing trips
    feed(b, outcomes[99:])
    assert b.state is expected


def test_minimum_calls():
    b = CircuitBreaker(window_size=10, minimum_number_of_calls=5, failure_rate_threshold=50)
    feed(b, [False] * 4)
    assert b.state is State.CLOSED and b.failure_rate() is None  # 4 < minimum, even at 100%
    feed(b, [True])
    assert b.state is State.OPEN  # the 5th call (a success) brings the count to the minimum


def test_sliding_window_forgets_old_outcomes():
    b = CircuitBreaker(window_size=4, minimum_number_of_calls=4, failure_rate_threshold=50)
    feed(b, [False, True, True, True])
    assert b.failure_rate() == 25.0
    feed(b, [True])  # the failure slides out
    assert b.failure_rate() == 0.0
    feed(b, [False])
    assert b.state is State.CLOSED and b.failure_rate() == 25.0
    feed(b, [False])
    assert b.state is State.OPEN


def test_minimum_is_capped_by_window():
    b = CircuitBreaker(window_size=4, minimum_number_of_calls=100)
    assert b.minimum_number_of_calls == 4
    feed(b, [False, False, True, True])
    assert b.state is State.OPEN


def test_open_rejects_then_half_open_then_closed():
    b = CircuitBreaker(window_size=4, minimum_number_of_calls=4, wait_duration_in_open_s=10,
                       permitted_calls_in_half_open=2)
    feed(b, [False] * 4, t=1.0)
    assert b.state is State.OPEN
    with pytest.raises(BreakerOpen) as info:
        b.acquire(now=5.0)
    assert info.value.kind is ErrorKind.BREAKER_OPEN and info.value.retry_after_s == pytest.approx(6.0)
    t1 = b.acquire(now=11.5)
    assert b.state is State.HALF_OPEN
    t2 = b.acquire(now=11.5)
    with pytest.raises(BreakerOpen):
        b.acquire(now=11.5)  # a third concurrent trial is refused
    b.record_success(t1, now=12.0)
    assert b.state is State.HALF_OPEN  # decided only after all permitted trials finish
    b.record_success(t2, now=12.5)
    assert b.state is State.CLOSED
    assert [(e.old, e.new, e.at) for e in b.events] == [
        ("closed", "open", 1.0), ("open", "half_open", 11.5), ("half_open", "closed", 12.5)]


@pytest.mark.parametrize("trial_failures,expected", [(1, State.CLOSED), (2, State.OPEN), (3, State.OPEN)])
def test_half_open_decides_by_failure_rate(trial_failures, expected):
    b = CircuitBreaker(window_size=4, minimum_number_of_calls=4, wait_duration_in_open_s=1,
                       permitted_calls_in_half_open=4, failure_rate_threshold=50)
    feed(b, [False] * 4)
    feed(b, [False] * trial_failures + [True] * (4 - trial_failures), t=2.0)
    assert b.state is expected


def test_late_outcome_from_before_a_transition_is_ignored():
    b = CircuitBreaker(window_size=2, minimum_number_of_calls=2, wait_duration_in_open_s=1,
                       permitted_calls_in_half_open=1)
    slow = b.acquire(0.0)  # admitted while closed, finishes much later
    feed(b, [False, False])
    assert b.state is State.OPEN
    trial = b.acquire(5.0)
    b.record_failure(slow, now=5.5)  # must not count as the half-open trial
    assert b.state is State.HALF_OPEN and b.late_outcomes == 1
    b.record_success(trial, now=6.0)
    assert b.state is State.CLOSED


def test_half_open_limits_concurrent_trials_under_asyncio():
    async def main():
        b = CircuitBreaker(window_size=2, minimum_number_of_calls=2, wait_duration_in_open_s=10,
                           permitted_calls_in_half_open=3)
        feed(b, [False, False], t=0.0)
        await asyncio.sleep(10.5)
        entered = []

        async def probe(i):
            entered.append(i)
            await asyncio.sleep(1)
            return i

        results = await asyncio.gather(*(b.call(probe, i) for i in range(10)), return_exceptions=True)
        return b, entered, results

    b, entered, results = sim.run(main)
    assert entered == [0, 1, 2]
    assert results[:3] == [0, 1, 2]
    assert all(isinstance(r, BreakerOpen) for r in results[3:])
    assert b.state is State.CLOSED and b.calls_rejected == 7


def test_call_counts_health_failures_only():
    async def main():
        b = CircuitBreaker(window_size=2, minimum_number_of_calls=2)

        async def not_found():
            raise ServiceError(ErrorKind.NOT_FOUND, status=404)

        async def bug():
            raise KeyError("our bug")

        for fn in (not_found, not_found, bug, bug):
            with pytest.raises((ServiceError, KeyError)):
                await b.call(fn)
        return b

    b = sim.run(main)
    assert b.state is State.CLOSED and b.successes == 2 and b.failures == 0


def test_cancelled_trial_gives_its_permit_back():
    async def main():
        b = CircuitBreaker(window_size=1, minimum_number_of_calls=1, wait_duration_in_open_s=1,
                           permitted_calls_in_half_open=1)
        feed(b, [False])
        await asyncio.sleep(1.5)
        task = asyncio.ensure_future(b.call(asyncio.sleep, 100))
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return await b.call(asyncio.sleep, 0, "ok"), b.state

    assert sim.run(main) == ("ok", State.CLOSED)


def test_listener_and_summary():
    seen = []

    class L(BreakerListener):
        def state_change(self, old, new):
            seen.append((old.value, new.value))

    b = CircuitBreaker(window_size=2, minimum_number_of_calls=2, wait_duration_in_open_s=1,
                       permitted_calls_in_half_open=1, listeners=[L()])
    feed(b, [False, False], t=0)
    feed(b, [False], t=1.5)
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "open")]
    s = b.summary()
    assert json.loads(json.dumps(s)) == s and s["state"] == "open"


@pytest.mark.parametrize("kwargs,needle", [
    ({"window_size": 0}, "window_size"), ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
    ({"failure_rate_threshold": 101}, "failure_rate_threshold"),
    ({"minimum_number_of_calls": 0}, "minimum_number_of_calls"),
    ({"wait_duration_in_open_s": -1}, "wait_duration_in_open_s"),
    ({"permitted_calls_in_half_open": 0}, "permitted_calls_in_half_open"),
    ({"window_size": 10.0}, "window_size"), ({"window_size": True}, "window_size"),
    ({"minimum_number_of_calls": 5.0}, "minimum_number_of_calls"),
    ({"failure_rate_threshold": float("nan")}, "failure_rate_threshold"),
    ({"wait_duration_in_open_s": float("nan")}, "wait_duration_in_open_s"),
    ({"wait_duration_in_open_s": float("inf")}, "wait_duration_in_open_s"),
    ({"wait_duration_in_open_s": 10**400}, "wait_duration_in_open_s"),
    ({"permitted_calls_in_half_open": 3.0}, "permitted_calls_in_half_open"),
    ({"name": 7}, "name"),
])
def test_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        CircuitBreaker(**kwargs)


@pytest.mark.parametrize("kwargs,needle", [
    ({"failure_threshold": 0}, "failure_threshold"), ({"failure_threshold": 2.0}, "failure_threshold"),
    ({"reset_timeout_s": -1}, "reset_timeout_s"), ({"reset_timeout_s": float("nan")}, "reset_timeout_s"),
    ({"reset_timeout_s": float("inf")}, "reset_timeout_s"),
])
def test_consecutive_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ConsecutiveFailureBreaker(**kwargs)


# -- resilience4j semantics: the wait boundary and the half-open quorum -------------------------

@pytest.mark.parametrize("make", [
    lambda: CircuitBreaker(window_size=2, minimum_number_of_calls=2, wait_duration_in_open_s=10,
                           permitted_calls_in_half_open=1),
    lambda: ConsecutiveFailureBreaker(failure_threshold=2, reset_timeout_s=10),
], ids=["CircuitBreaker", "ConsecutiveFailureBreaker"])
def test_still_open_at_exactly_opened_at_plus_wait(make):
    """resilience4j's OpenState admits only when clock.instant().isAfter(opened + wait)."""
    b = make()
    feed(b, [False, False], t=1.0)
    with pytest.raises(BreakerOpen) as info:
        b.acquire(now=11.0)
    assert b.state is State.OPEN and info.value.retry_after_s == 0.0
    b.acquire(now=math.nextafter(11.0, math.inf))
    assert b.state is State.HALF_OPEN


@pytest.mark.parametrize("outcomes,expected", [
    ([True, True], State.CLOSED), ([False, True], State.OPEN), ([True, False], State.OPEN),
])
def test_half_open_decides_after_min_of_minimum_and_permitted(outcomes, expected):
    """minimum_number_of_calls=2 < permitted=4: resilience4j decides after 2 trial outcomes,
    by their failure rate, even while 2 more trials are still running."""
    b = CircuitBreaker(window_size=2, minimum_number_of_calls=2, wait_duration_in_open_s=1,
                       permitted_calls_in_half_open=4, failure_rate_threshold=50)
    feed(b, [False, False], t=0.0)
    tickets = [b.acquire(now=2.0) for _ in range(4)]
    for ticket, ok in zip(tickets, outcomes):
        (b.record_success if ok else b.record_failure)(ticket, now=2.5)
    assert b.state is expected
    assert b.events[-1].failure_rate == 100.0 * outcomes.count(False) / 2
    b.record_failure(tickets[2], now=2.6)  # outstanding trials are late: they change nothing
    assert b.state is expected and b.late_outcomes == 1


def test_half_open_quorum_uses_the_configured_minimum_not_the_window_capped_one():
    """window 2 caps the closed-state minimum (100 -> 2); the half-open window is its own (P = 5),
    so resilience4j's half-open minimum is min(100, 5) = 5."""
    b = CircuitBreaker(window_size=2, minimum_number_of_calls=100, wait_duration_in_open_s=1,
                       permitted_calls_in_half_open=5)
    assert b.minimum_number_of_calls == 2
    feed(b, [False, False], t=0.0)
    feed(b, [True] * 4, t=2.0)
    assert b.state is State.HALF_OPEN
    feed(b, [True], t=2.0)
    assert b.state is State.CLOSED


def test_one_copy_of_the_open_to_half_open_admission():
    for cls in (CircuitBreaker, ConsecutiveFailureBreaker):
        assert "_admit" not in vars(cls) and "_retry_after" not in vars(cls) and "_release" not in vars(cls)


# -- only failures of the remote call count ----------------------------------------------------

@pytest.mark.parametrize("bug", [FileNotFoundError(2, "no such file"), PermissionError(), IsADirectoryError(),
                                 OSError()], ids=lambda e: type(e).__name__)
def test_programming_oserrors_do_not_trip_the_breaker(bug):
    assert not counts_as_failure(bug)

    async def main():
        b = CircuitBreaker(window_size=2, minimum_number_of_calls=2)

        async def broken():
            raise bug

        for _ in range(5):
            with pytest.raises(type(bug)):
                await b.call(broken)
        return b

    b = sim.run(main)
    assert b.state is State.CLOSED and b.failures == 0 and b.successes == 0 and b.calls_permitted == 5
    assert counts_as_failure(ConnectionResetError()) and counts_as_failure(ServiceError.from_status(502))


# -- bounded events ----------------------------------------------------------------------------

def test_events_are_bounded_and_counters_stay_exact():
    """10**5 calls, each failing: every call opens the breaker, and the next (later) one
    half-opens it: 2 transitions per call, the log keeps the last 1000, counters stay exact."""
    n = 10**5
    b = ConsecutiveFailureBreaker(failure_threshold=1, reset_timeout_s=0.0)
    for i in range(n):
        ticket = b.acquire(now=float(i))
        b.record_failure(ticket, now=float(i))
    assert len(b.events) == 1000 and b.events[-1].at == n - 1
    s = b.summary()
    assert s["transitions_total"] == 2 * n - 1 and s["opened"] == n
    assert s["failures"] == n and s["calls_permitted"] == n
    assert len(s["transitions"]) == 1000


# -- random sequences against a small reference model ----------------------------------------

class Model:
    """resilience4j semantics for sequential calls, written as plainly as possible."""

    def __init__(self, n, threshold, minimum, wait, permitted):
        self.n, self.threshold, self.minimum = n, Fraction(threshold), min(minimum, n)
        self.wait, self.permitted = wait, permitted
        # Half-open: a window of `permitted` calls whose minimum is min(configured minimum,
        # permitted) (CircuitBreakerMetrics.forHalfOpen): it decides after that many outcomes.
        self.quorum = min(minimum, permitted)
        self.state, self.window, self.trials, self.opened = "closed", [], [], None

    def call(self, t, ok):
        if self.state == "open":
            if not t > self.opened + self.wait:  # OpenState: clock.instant().isAfter(retryAfter)
                return "rejected"
            self.state, self.trials = "half_open", []
        if self.state == "half_open":
            self.trials.append(ok)
            if len(self.trials) == self.quorum:
                rate = Fraction(100 * self.trials.count(False), len(self.trials))
                if rate >= self.threshold:
                    self.state, self.opened = "open", t
                else:
                    self.state, self.window = "closed", []
            return "called"
        self.window = (self.window + [ok])[-self.n:]
        fails = self.window.count(False)
        if len(self.window) >= self.minimum and fails and \
                Fraction(100 * fails, len(self.window)) >= self.threshold:
            self.state, self.opened = "open", t
        return "called"


steps = st.lists(st.tuples(st.sampled_from([0.0, 0.1, 1.0, 5.0]), st.booleans()), max_size=200)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(steps, st.integers(1, 12), st.sampled_from([10, 25, 50, 60, 100]), st.integers(1, 15),
       st.integers(1, 4))
def test_matches_reference_model(ops, n, threshold, minimum, permitted):
    b = CircuitBreaker(window_size=n, failure_rate_threshold=threshold, minimum_number_of_calls=minimum,
                       wait_duration_in_open_s=3.0, permitted_calls_in_half_open=permitted)
    m = Model(n, threshold, minimum, 3.0, permitted)
    t = 0.0
    for dt, ok in ops:
        t += dt
        expected = m.call(t, ok)
        try:
            ticket = b.acquire(t)
        except BreakerOpen:
            assert expected == "rejected"
        else:
            assert expected == "called"
            (b.record_success if ok else b.record_failure)(ticket, now=t)
        assert b.state.value == m.state


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(steps, st.integers(1, 6))
def test_consecutive_breaker_matches_model(ops, threshold):
    b = ConsecutiveFailureBreaker(failure_threshold=threshold, reset_timeout_s=3.0)
    state, run, opened = "closed", 0, None
    t = 0.0
    for dt, ok in ops:
        t += dt
        if state == "open" and t > opened + 3.0:
            state = "half_open"
        if state == "open":
            with pytest.raises(BreakerOpen):
                b.acquire(t)
            continue
        ticket = b.acquire(t)
        (b.record_success if ok else b.record_failure)(ticket, now=t)
        if state == "half_open":
            state, opened, run = ("closed", None, 0) if ok else ("open", t, run)
        elif ok:
            run = 0
        else:
            run += 1
            if run >= threshold:
                state, opened = "open", t
        assert b.state.value == state


def test_consecutive_breaker_fixes_the_tutorial_bugs():
    b = ConsecutiveFailureBreaker(failure_threshold=2, reset_timeout_s=5.0)
    feed(b, [False, False], t=0.0)  # failing at t=0.0 must still allow a reset later
    assert b.state is State.OPEN
    trial = b.acquire(5.5)
    assert b.state is State.HALF_OPEN
    with pytest.raises(BreakerOpen):
        b.acquire(5.5)  # only one trial at a time
    b.record_success(trial, now=5.6)
    assert b.state is State.CLOSED
