"""The AWS backoff-and-jitter contention experiment: engines agree, the blog's shape appears."""
import pytest

from labkit.labs.contention import CONTENTION_STRATEGIES, backoff_contention


@pytest.mark.parametrize("strategy", CONTENTION_STRATEGIES)
def test_fast_engine_equals_the_asyncio_simulation(strategy):
    fast = backoff_contention(12, strategy, runs=3, seed=4)
    slow = backoff_contention(12, strategy, runs=3, seed=4, engine="sim")
    assert fast == slow  # exactly: same draws, same event order, same floats


@pytest.fixture(scope="module")
def fifty():
    return {s: backoff_contention(50, s, runs=40, seed=0) for s in CONTENTION_STRATEGIES}


def test_blog_shape_calls(fifty):
    calls = {s: r["calls"] for s, r in fifty.items()}
    jittered = [calls["full"], calls["equal"], calls["decorrelated"]]
    # No backoff and plain exponential backoff do far more work than any jittered strategy.
    assert min(calls["none"], calls["exponential"]) > 1.5 * max(jittered)
    # "Full Jitter uses less work" (than Equal and Decorrelated).
    assert calls["full"] == min(calls.values())
    # Every client writes successfully once, so calls >= clients.
    assert min(calls.values()) >= 50


def test_blog_shape_time(fifty):
    t = {s: r["time_s"] for s, r in fifty.items()}
    # Exponential without jitter is by far the slowest; Equal Jitter is the slowest jittered one;
    # Decorrelated finishes first among the jittered ones (the post: "slightly more time" for Full).
    assert t["exponential"] > 5 * max(t["full"], t["equal"], t["decorrelated"])
    assert t["equal"] > t["full"] > t["decorrelated"]
    # Without backoff all clients just hammer the row: fastest to finish, most work.
    assert t["none"] == min(t.values())


def test_single_client_never_conflicts():
    r = backoff_contention(1, "exponential", runs=5)
    assert r["calls"] == 1.0
    assert 0.02 < r["time_s"] < 0.06  # four ~10 ms messages


def test_deterministic_and_seeded():
    a = backoff_contention(20, "full", runs=5, seed=1)
    assert a == backoff_contention(20, "full", runs=5, seed=1)
    assert a != backoff_contention(20, "full", runs=5, seed=2)
    assert set(a) == {"calls", "time_s"}


@pytest.mark.parametrize("kwargs,needle", [
    ({"clients": 10, "strategy": "linear"}, "decorrelated"),
    ({"clients": 0, "strategy": "full"}, "clients"),
    ({"clients": 10, "strategy": "full", "runs": 0}, "runs"),
    ({"clients": 10, "strategy": "full", "engine": "gpu"}, "engine"),
    ({"clients": 10.0, "strategy": "full"}, "clients"),
    ({"clients": True, "strategy": "full"}, "clients"),
    ({"clients": 10, "strategy": "full", "runs": 2.0}, "runs"),
    ({"clients": 10, "strategy": "full", "seed": "0"}, "seed"),
    ({"clients": 10, "strategy": "full", "seed": 1.5}, "seed"),
])
def test_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        backoff_contention(**kwargs)
