"""Backoff strategies: the AWS formulas exactly, bounds (property tests), determinism."""
import math
import random
import statistics

import pytest
from hypothesis import given, settings, strategies as st

from labkit.patterns import backoff
from labkit.patterns.backoff import (Backoff, Constant, DecorrelatedJitter, EqualJitter, Exponential,
                            FullJitter, NoBackoff, make, schedule)

bases = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
caps_extra = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
attempts = st.integers(min_value=1, max_value=2000)
seeds = st.integers(min_value=0, max_value=2**32)


def expo(base, cap, attempt):
    return min(cap, base * 2.0 ** min(attempt, 1023))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(base=bases, extra=caps_extra, attempt=attempts, seed=seeds)
def test_bounds(base, extra, attempt, seed):
    cap = base + extra
    r = random.Random(seed)
    temp = expo(base, cap, attempt)
    assert NoBackoff(base, cap).delay(attempt, r) == 0.0
    assert Constant(base, cap).delay(attempt, r) == base
    assert Exponential(base, cap).delay(attempt, r) == temp
    assert 0.0 <= FullJitter(base, cap).delay(attempt, r) <= temp
    assert temp / 2 <= EqualJitter(base, cap).delay(attempt, r) <= temp
    assert math.isfinite(temp)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(base=st.floats(min_value=1e-4, max_value=10.0), extra=caps_extra,
       prev=st.floats(min_value=0.0, max_value=200.0), seed=seeds)
def test_decorrelated_bounds(base, extra, prev, seed):
    cap = base + extra
    d = DecorrelatedJitter(base, cap).delay(1, random.Random(seed), prev)
    lo, hi = sorted((base, 3 * prev))
    assert min(cap, lo) - 1e-12 <= d <= min(cap, hi) + 1e-12


@settings(deadline=None, derandomize=True, database=None)
@given(base=st.floats(min_value=1e-6, max_value=1.0), extra=caps_extra)
def test_exponential_is_monotone_and_reaches_cap(base, extra):
    cap = base + extra
    s = Exponential(base, cap)
    ds = [s.delay(a, None) for a in range(1, 80)]
    assert ds == sorted(ds)
    assert ds[-1] == cap


def test_exact_values_match_the_aws_formulas():
    s = Exponential(base=0.005, cap=2.0)
    assert [s.delay(k, None) for k in (1, 2, 3, 9, 10)] == [0.01, 0.02, 0.04, 2.0, 2.0]
    r1, r2 = random.Random(3), random.Random(3)
    assert FullJitter(0.005, 2.0).delay(3, r1) == r2.uniform(0, 0.04)
    assert EqualJitter(0.005, 2.0).delay(3, r1) == 0.02 + r2.uniform(0, 0.02)
    assert DecorrelatedJitter(0.005, 2.0).delay(1, r1, None) == min(2.0, r2.uniform(0.005, 0.015))


def test_jitter_means():
    # 20000 seeded draws: the mean of uniform(0, T) has sd T/sqrt(12*20000) ~ 0.002 T.
    r = random.Random(11)
    full = [FullJitter(1.0, 100.0).delay(3, r) for _ in range(20000)]
    equal = [EqualJitter(1.0, 100.0).delay(3, r) for _ in range(20000)]
    assert statistics.fmean(full) == pytest.approx(4.0, rel=0.02)
    assert statistics.fmean(equal) == pytest.approx(6.0, rel=0.02)


def test_stateful_backoff_tracks_attempt_and_prev():
    b = Backoff(DecorrelatedJitter(0.1, 10.0), random.Random(1))
    d1 = b.next_delay()
    assert b.attempt == 1 and b.prev == d1 and 0.1 <= d1 <= 0.3
    d2 = b.next_delay()
    assert 0.1 <= d2 <= 3 * d1
    b.reset()
    assert b.attempt == 0 and b.prev is None


def test_schedule_is_deterministic():
    assert schedule("full", 20, seed=1) == schedule("full", 20, seed=1)
    assert schedule("full", 20, seed=1) != schedule("full", 20, seed=2)
    assert schedule(Exponential(0.1, 1.0), 5) == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert schedule("none", 3) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("call,needle", [
    (lambda: Exponential(0.1, 1.0).delay(0, None), "attempt"),
    (lambda: Exponential(0.1, 1.0).delay(True, None), "attempt"),
    (lambda: Exponential(0.1, 1.0).delay(2.0, None), "attempt"),
    (lambda: Exponential(-1.0, 1.0), "base"),
    (lambda: Exponential(1.0, 0.5), "cap"),
    (lambda: make("fibonacci"), "decorrelated"),
    (lambda: schedule("full", -1), "n must"),
    (lambda: schedule("full", 3.0), "n must"),
    (lambda: schedule("full", 3, seed=1.5), "seed"),
    (lambda: DecorrelatedJitter(base=0), "base"),        # uniform(0, 0 * 3) would stay 0 for ever
    (lambda: DecorrelatedJitter(base=0.0, cap=1.0), "base"),
    (lambda: Exponential(float("nan"), 1.0), "base"),
    (lambda: Exponential(float("inf"), float("inf")), "base"),
    (lambda: Exponential(10**400, 10**401), "base"),
    (lambda: FullJitter(0.1, float("nan")), "cap"),
    (lambda: FullJitter(0.1, float("inf")), "cap"),
    (lambda: FullJitter(0.1, 10**400), "cap"),
    (lambda: FullJitter("0.1", 1.0), "base"),
    (lambda: FullJitter(True, 1.0), "base"),
    (lambda: make("full", base=float("nan")), "base"),
    (lambda: Backoff(FullJitter(), rng="seed"), "rng"),
    (lambda: Backoff("full"), "strategy"),
])
def test_bad_input(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()


def test_validated_values_are_stored_as_floats():
    s = FullJitter(1, 10)
    assert type(s.base) is float and type(s.cap) is float


def test_attempt_one_is_the_first_retry_as_in_the_aws_simulator():
    """aws-arch-backoff-simulator: after a failed write `self.attempt += 1`, then
    `backoff(self.attempt)` = min(cap, base * 2**attempt): the first retry waits up to 2 * base."""
    b = Backoff(Exponential(0.005, 2.0), random.Random(0))
    assert [b.next_delay() for _ in range(3)] == [0.01, 0.02, 0.04]
    assert b.attempt == 3


def test_make_knows_every_name():
    assert set(backoff.STRATEGIES) == {"none", "constant", "exponential", "full", "equal", "decorrelated"}
    for name in backoff.STRATEGIES:
        assert make(name, 0.1, 1.0).name == name
