"""Retry policy: what it retries, how long it waits, what it records; the tutorial counterparts."""
import asyncio
import json

import pytest

from labkit import sim
from labkit.patterns.backoff import Constant, Exponential, FullJitter
from labkit.patterns.breaker import CircuitBreaker, State
from labkit.patterns.budget import RetryBudget
from labkit.patterns.errors import BreakerOpen, ErrorKind, ServiceError
from labkit.patterns.retry import (AdaptiveRetry, CircuitBreakerRetry, ExponentialBackoffRetry, Retry,
                          retry_on_failure)


class Flaky:
    """Fails with the given errors in turn, then returns "ok"; remembers call times."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.times = []

    async def __call__(self):
        self.times.append(asyncio.get_running_loop().time())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def err(status, **kw):
    return ServiceError.from_status(status, **kw)


def attempt_and_fail(policy, fn):
    async def main():
        with pytest.raises(BaseException) as info:
            await policy.call(fn)
        return info.value
    return sim.run(main)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_never_retries_non_retryable(status):
    fn = Flaky(err(status))
    policy = Retry(max_attempts=5)
    exc = attempt_and_fail(policy, fn)
    assert exc.status == status and len(fn.times) == 1
    assert policy.events[-1].outcome == "give_up" and "not retryable" in policy.events[-1].cause


def test_retries_transient_errors_until_success():
    fn = Flaky(err(503), err(500), TimeoutError())
    policy = Retry(max_attempts=4, backoff=Constant(0.5, 0.5))
    assert sim.run(lambda: policy.call(fn)) == "ok"
    assert fn.times == [0.0, 0.5, 1.0, 1.5]
    assert [e.outcome for e in policy.events] == ["retry", "retry", "retry", "success"]
    assert [e.kind for e in policy.events] == ["unavailable", "internal", "timeout", None]


def test_max_attempts_bounds_calls():
    fn = Flaky(*[err(503)] * 10)
    policy = Retry(max_attempts=3, backoff=Constant(0.1, 0.1))
    attempt_and_fail(policy, fn)
    assert len(fn.times) == 3 and "max_attempts=3" in policy.events[-1].cause


def test_post_without_key_is_not_retried_but_with_key_is():
    fn = Flaky(TimeoutError())
    policy = Retry(method="POST")
    attempt_and_fail(policy, fn)
    assert len(fn.times) == 1 and "idempotency key" in policy.events[-1].cause

    for kwargs in ({"idempotency_key": "order-42"}, {"idempotent": True}):
        fn = Flaky(TimeoutError())
        policy = Retry(method="POST", backoff=Constant(0.1, 0.1), **kwargs)
        assert sim.run(lambda: policy.call(fn)) == "ok" and len(fn.times) == 2

    fn = Flaky(err(503))
    attempt_and_fail(Retry(method="PATCH"), fn)
    assert len(fn.times) == 1
    fn = Flaky(err(503))
    assert sim.run(lambda: Retry(method="put", backoff=Constant(0.1, 0.1)).call(fn)) == "ok"


def test_retry_after_is_honoured():
    fn = Flaky(err(429, retry_after_s=5.0))
    policy = Retry(backoff=Constant(0.1, 0.1), max_total_s=30)
    assert sim.run(lambda: policy.call(fn)) == "ok"
    assert fn.times == [0.0, 5.0]
    assert policy.events[0].wait_s == 5.0
    # The larger of backoff and Retry-After wins.
    fn = Flaky(err(429, retry_after_s=0.2))
    assert sim.run(lambda: Retry(backoff=Constant(1.0, 1.0)).call(fn)) == "ok"
    assert fn.times == [0.0, 1.0]


def test_retry_after_beyond_the_total_time_gives_up_at_once():
    fn = Flaky(err(503, retry_after_s=60.0))
    policy = Retry(max_total_s=10.0)

    async def main():
        with pytest.raises(ServiceError):
            await policy.call(fn)
        return asyncio.get_running_loop().time()

    assert sim.run(main) == 0.0  # did not sleep 60 s only to give up
    assert len(fn.times) == 1 and "max_total_s" in policy.events[-1].cause


def test_total_time_is_bounded():
    fn = Flaky(*[err(503)] * 100)
    policy = Retry(max_attempts=100, max_total_s=10.0, backoff=Exponential(0.5, 4.0))
    attempt_and_fail(policy, fn)
    assert fn.times == [0.0, 1.0, 3.0, 7.0]  # the next wait (4 s) would end at 11 s > 10 s


def test_attempt_timeout_cancels_slow_attempts_in_virtual_time():
    calls = []

    async def slow():
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(100)

    policy = Retry(max_attempts=3, attempt_timeout_s=2.0, backoff=Constant(1.0, 1.0))
    exc = attempt_and_fail(policy, slow)
    assert isinstance(exc, TimeoutError)
    assert calls == [0.0, 3.0, 6.0]


def test_total_time_bounds_a_running_attempt():
    """A 100 s call under max_total_s=1 is cut at 1 s, with an error that says why."""
    calls = []

    async def slow():
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(100)
        return "late"

    async def main():
        with pytest.raises(TimeoutError) as info:
            await policy.call(slow)
        return asyncio.get_running_loop().time(), info.value

    for policy in (Retry(max_total_s=1.0), Retry(max_total_s=1.0, attempt_timeout_s=5.0)):
        calls.clear()
        t, exc = sim.run(main)
        assert t == 1.0 and calls == [0.0]
        assert isinstance(exc, ServiceError) and exc.kind is ErrorKind.TIMEOUT
        assert "max_total_s=1" in str(exc) and "ran out" in str(exc)
        assert policy.events[-1].outcome == "give_up" and "max_total_s" in policy.events[-1].cause


def test_total_time_error_keeps_the_last_cause():
    first = err(503)
    fn_calls = []

    async def fails_then_hangs():
        fn_calls.append(asyncio.get_running_loop().time())
        if len(fn_calls) == 1:
            raise first
        await asyncio.sleep(100)

    policy = Retry(max_attempts=5, max_total_s=2.0, backoff=Constant(0.5, 0.5))

    async def main():
        with pytest.raises(TimeoutError) as info:
            await policy.call(fails_then_hangs)
        return asyncio.get_running_loop().time(), info.value

    t, exc = sim.run(main)
    assert fn_calls == [0.0, 0.5] and t == 2.0
    assert exc.last_error is first and exc.__cause__ is first
    assert "HTTP 503" in str(exc)


def test_attempt_timeout_shorter_than_the_budget_is_an_ordinary_retryable_timeout():
    calls = []

    async def slow():
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(100)

    policy = Retry(max_attempts=3, max_total_s=100.0, attempt_timeout_s=2.0, backoff=Constant(1.0, 1.0))
    exc = attempt_and_fail(policy, slow)
    assert type(exc) is TimeoutError and calls == [0.0, 3.0, 6.0]
    assert "max_attempts=3" in policy.events[-1].cause


@pytest.mark.parametrize("bug", [FileNotFoundError(2, "no such file", "users.csv"), PermissionError(),
                                 IsADirectoryError(), OSError()], ids=lambda e: type(e).__name__)
def test_programming_oserrors_are_not_retried(bug):
    fn = Flaky(bug)
    budget = RetryBudget(max_tokens=10, token_ratio=0.1)
    policy = Retry(max_attempts=5, budget=budget)
    assert attempt_and_fail(policy, fn) is bug
    assert len(fn.times) == 1 and "not a service failure" in policy.events[0].cause
    assert budget.tokens == 10


def test_retry_n_waits_backoff_delay_n():
    """One numbering: retry number n (1 = the first retry) waits backoff.delay(n); its event is
    the one of the failed call number n (RetryEvent.attempt == n)."""
    fn = Flaky(*[err(503)] * 4)
    strategy = Exponential(0.5, 100.0)
    policy = Retry(max_attempts=5, max_total_s=100.0, backoff=strategy)
    sim.run(lambda: policy.call(fn))
    retries = [e for e in policy.events if e.outcome == "retry"]
    assert [e.attempt for e in retries] == [1, 2, 3, 4]
    assert [e.wait_s for e in retries] == [strategy.delay(n, None) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]


def test_events_are_bounded_and_summary_counts_stay_exact():
    n = 10**5
    policy = Retry(max_attempts=2, backoff=Constant(0.0, 0.0))

    async def main():
        for i in range(n):
            if i % 4 == 0:       # one in four calls fails once, then succeeds
                await policy.call(Flaky(err(503)))
            elif i % 4 == 1:     # one in four fails for good (404 is not retried)
                with pytest.raises(ServiceError):
                    await policy.call(Flaky(err(404)))
            else:
                await policy.call(Flaky())

    sim.run(main)
    assert len(policy.events) == 1000
    s = policy.summary()
    assert s["attempts"] == n + n // 4
    assert s["successes"] == n - n // 4 and s["retries"] == n // 4 and s["give_ups"] == n // 4
    assert s["give_up_causes"] == {"not_found is not retryable": n // 4}
    assert s["total_wait_s"] == 0.0


def test_bug_in_our_code_is_not_retried():
    fn = Flaky(KeyError("oops"))
    policy = Retry(max_attempts=5)
    assert isinstance(attempt_and_fail(policy, fn), KeyError)
    assert len(fn.times) == 1 and "not a service failure" in policy.events[0].cause


def test_same_seed_same_event_log():
    def log(seed):
        fn = Flaky(*[err(503)] * 4)
        policy = Retry(max_attempts=5, backoff=FullJitter(0.1, 10.0), seed=seed)
        sim.run(lambda: policy.call(fn))
        return policy.events

    assert log(1) == log(1)
    assert [e.wait_s for e in log(1)] != [e.wait_s for e in log(2)]


def test_seed_defaults_to_the_simulation_seed():
    def waits(sim_seed):
        policy_box = []

        async def main():
            policy = Retry(max_attempts=3, backoff=FullJitter(0.1, 10.0))
            policy_box.append(policy)
            return await policy.call(Flaky(err(503), err(503)))

        sim.run(main, seed=sim_seed)
        return [e.wait_s for e in policy_box[0].events]

    assert waits(3) == waits(3) and waits(3) != waits(4)


def test_budget_stops_retry_storms():
    budget = RetryBudget(max_tokens=4, token_ratio=0.1)

    async def main():
        calls = 0
        for _ in range(5):
            fn = Flaky(*[err(503)] * 3)
            policy = Retry(max_attempts=3, backoff=Constant(0.01, 0.01), budget=budget)
            with pytest.raises(ServiceError):
                await policy.call(fn)
            calls += len(fn.times)
        return calls, policy

    calls, policy = sim.run(main)
    # Tokens 4 -> 3 (retry ok) -> 2 (denied: 2 is not > 2). Afterwards every call fails once.
    assert calls == 2 + 1 + 1 + 1 + 1
    assert policy.events[-1].cause == "retry budget exhausted"
    assert budget.summary()["denied"] == 5


def test_breaker_open_is_never_retried():
    breaker = CircuitBreaker(window_size=2, minimum_number_of_calls=2, wait_duration_in_open_s=60)
    cbr = CircuitBreakerRetry(breaker, Retry(max_attempts=5, backoff=Constant(0.1, 0.1)))
    fn = Flaky(*[err(503)] * 10)

    async def main():
        with pytest.raises(BreakerOpen):
            await cbr.retry_with_circuit_breaker(fn)
        return asyncio.get_running_loop().time()

    t = sim.run(main)
    assert breaker.state is State.OPEN
    # Two real calls trip the breaker; the third attempt is refused locally and not retried.
    assert len(fn.times) == 2 and t == pytest.approx(0.2)
    assert [e.kind for e in cbr.policy.events] == ["unavailable", "unavailable", "breaker_open"]
    assert cbr.policy.events[-1].outcome == "give_up"


def test_decorator_and_hooks():
    seen = []
    fn = Flaky(err(502))

    @Retry(backoff=Constant(0.1, 0.1), on_event=seen.append)
    async def fetch():
        return await fn()

    assert sim.run(fetch) == "ok"
    assert [e.outcome for e in seen] == ["retry", "success"]
    assert fetch.retry.summary()["retries"] == 1
    with pytest.raises(ValueError, match="async"):
        Retry()(lambda: 1)


def test_injectable_sleep_runs_without_any_loop_clock():
    slept = []

    async def fake_sleep(s):
        slept.append(s)

    fn = Flaky(err(503), err(503))
    policy = Retry(backoff=Exponential(1.0, 100.0), sleep=fake_sleep, clock=lambda: 0.0)
    assert asyncio.run(policy.call(fn)) == "ok"  # plain asyncio, no virtual loop needed
    assert slept == [2.0, 4.0]


def test_summary_is_json():
    fn = Flaky(err(503), err(404))
    policy = Retry(backoff=Constant(0.1, 0.1))
    attempt_and_fail(policy, fn)
    s = policy.summary()
    assert json.loads(json.dumps(s)) == s
    assert s["retries"] == 1 and s["give_ups"] == 1 and s["give_up_causes"] == {"not_found is not retryable": 1}


@pytest.mark.parametrize("kwargs,needle", [
    ({"max_attempts": 0}, "max_attempts"), ({"max_total_s": 0}, "max_total_s"),
    ({"attempt_timeout_s": -1}, "attempt_timeout_s"), ({"backoff": "linear"}, "strategy"),
    ({"method": 5}, "method"),
    ({"max_attempts": 3.0}, "max_attempts"), ({"max_attempts": True}, "max_attempts"),
    ({"max_total_s": float("nan")}, "max_total_s"), ({"max_total_s": float("inf")}, "max_total_s"),
    ({"max_total_s": 10**400}, "max_total_s"), ({"attempt_timeout_s": float("nan")}, "attempt_timeout_s"),
    ({"attempt_timeout_s": 10**400}, "attempt_timeout_s"), ({"seed": 1.5}, "seed"),
    ({"honour_retry_after": "yes"}, "honour_retry_after"), ({"idempotent": 1}, "idempotent"),
    ({"idempotency_key": 42}, "idempotency_key"), ({"name": None}, "name"),
    ({"backoff": 0.5}, "backoff"), ({"budget": 10}, "budget"),
])
def test_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Retry(**kwargs)


# -- counterparts of the source tutorial ---------------------------------------------------------

@pytest.mark.parametrize("make,needle", [
    (lambda: retry_on_failure(max_attempts=2.0), "max_attempts"),
    (lambda: retry_on_failure(delay_s=float("nan")), "delay_s"),
    (lambda: retry_on_failure(delay_s=0), "delay_s"),
    (lambda: ExponentialBackoffRetry(initial_delay_s=-1), "initial_delay_s"),
    (lambda: ExponentialBackoffRetry(max_retries=1.0), "max_retries"),
    (lambda: ExponentialBackoffRetry(max_delay_s=float("inf")), "max_delay_s"),
    (lambda: AdaptiveRetry(window=0), "window"), (lambda: AdaptiveRetry(max_retries=-1), "max_retries"),
    (lambda: AdaptiveRetry(initial_delay_s=10**400), "initial_delay_s"),
])
def test_tutorial_counterparts_bad_input(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_retry_on_failure_awaits_and_filters():
    fn = Flaky(err(503), err(400))

    @retry_on_failure(max_attempts=3, delay_s=1.0)
    async def op():
        return await fn()

    with pytest.raises(ServiceError) as info:
        sim.run(op)
    assert info.value.status == 400 and len(fn.times) == 2
    assert 0.0 <= fn.times[1] <= 1.0  # full jitter: first wait in [0, delay_s]


def test_exponential_backoff_retry_uses_full_jitter():
    waits = []
    for seed in range(30):
        r = ExponentialBackoffRetry(initial_delay_s=1.0, max_retries=1, seed=seed)
        sim.run(lambda: r.retry(Flaky(err(503))))
        waits.append(r.events[0].wait_s)
    assert all(0 <= w <= 1.0 for w in waits)
    assert min(waits) < 0.5 < max(waits)  # not the tutorial's 0.9..1.1 band


def test_adaptive_retry_sees_failures_and_slows_down():
    async def main():
        a = AdaptiveRetry(initial_delay_s=1.0, max_retries=3, seed=1)
        await a.adaptive_retry(Flaky(err(503), err(503), err(503)))
        return a

    a = sim.run(main)
    assert a.success_rate() == 0.25  # the tutorial's version would still say 1.0
    w = [e.wait_s for e in a.events if e.outcome == "retry"]
    # Third wait is doubled (success rate 0/3 < 0.5) and still within 2 * min(cap, 0.5 * 2**3).
    assert w[2] <= 8.0 and a.budget.failures == 3
