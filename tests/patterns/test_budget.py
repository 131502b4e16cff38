"""Retry budget (gRPC retry throttling): threshold, refill, cap; random sequences vs a model."""
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from labkit.patterns.budget import RetryBudget


def test_threshold_is_strictly_above_half():
    b = RetryBudget(max_tokens=10, token_ratio=0.1)
    assert b.tokens == 10 and b.can_retry()
    for _ in range(4):
        b.record_failure()
    assert b.tokens == 6 and b.can_retry()
    b.record_failure()
    assert b.tokens == 5 and not b.can_retry()  # 5 is not > 10/2
    b.record_success()
    assert b.tokens == pytest.approx(5.1) and b.can_retry()


def test_success_refill_is_capped_and_exact():
    b = RetryBudget(max_tokens=3, token_ratio=0.1)
    b.record_failure()
    for _ in range(10):
        b.record_success()
    assert b.tokens == 3  # exactly, thanks to milli-tokens (0.1 * 10 in floats is not 1.0)
    b.record_success()
    assert b.tokens == 3


def test_tokens_never_negative_and_events():
    b = RetryBudget(max_tokens=2, token_ratio=1, clock=lambda: 7.0)
    for _ in range(5):
        b.record_failure()
    assert b.tokens == 0
    assert not b.can_retry()
    b.record_success()
    b.record_success()
    assert b.can_retry()
    assert [(e.what, e.at) for e in b.events] == [("throttled", 7.0), ("denied", 7.0), ("allowed", 7.0)]
    s = b.summary()
    assert s["failures"] == 5 and s["successes"] == 2 and s["denied"] == 1


@settings(deadline=None, derandomize=True, database=None)
@given(st.lists(st.booleans(), max_size=300),
       st.integers(min_value=1, max_value=100),
       st.integers(min_value=1, max_value=1000))
def test_matches_reference_model(outcomes, max_tokens, ratio_milli):
    ratio = Fraction(ratio_milli, 1000)
    if ratio > max_tokens:
        return
    b = RetryBudget(max_tokens=max_tokens, token_ratio=ratio_milli / 1000)
    tokens = Fraction(max_tokens)
    for ok in outcomes:
        if ok:
            b.record_success()
            tokens = min(Fraction(max_tokens), tokens + ratio)
        else:
            b.record_failure()
            tokens = max(Fraction(0), tokens - 1)
        assert Fraction(b.tokens).limit_denominator(1000) == tokens
        assert b.can_retry() == (tokens > Fraction(max_tokens, 2))


def test_events_are_bounded_and_counters_stay_exact():
    n = 10**5
    b = RetryBudget(max_tokens=2, token_ratio=1, clock=lambda: 0.0)
    for _ in range(n):          # each round: throttled, denied, allowed (three events)
        b.record_failure()
        b.record_failure()
        assert not b.can_retry()
        b.record_success()
        b.record_success()
    assert len(b.events) == 1000
    s = b.summary()
    assert s["failures"] == 2 * n and s["successes"] == 2 * n and s["denied"] == n
    assert s["events"] == 3 * n and s["throttled"] == n


@pytest.mark.parametrize("kwargs,needle", [
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 1001}, "max_tokens"),
    ({"token_ratio": 0}, "token_ratio"), ({"max_tokens": 1, "token_ratio": 2}, "token_ratio"),
    ({"max_tokens": float("nan")}, "max_tokens"), ({"max_tokens": True}, "max_tokens"),
    ({"token_ratio": float("nan")}, "token_ratio"), ({"token_ratio": 10**400}, "token_ratio"),
    ({"token_ratio": "0.1"}, "token_ratio"),
])
def test_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        RetryBudget(**kwargs)
