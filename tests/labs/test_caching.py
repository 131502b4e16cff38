"""Caching lab (labkit/labs/caching.py): the herd at expiry in virtual time (counts, not
wall-clock timings), the real-service run counted by the server, and the tutorial's
PrefetchCache deadlock bounded by a timeout, with its fix."""

import pytest

import labkit
from labkit.labs.caching import (MODES, FixedPrefetchCache, PrefetchCache, herd_chart, herd_lab,
                                 prefetch_deadlock, prefetch_fixed, real_herd)


@pytest.fixture(scope="module")
def herd():
    return {m: herd_lab(mode=m) for m in MODES}


def test_without_single_flight_each_expiry_sends_a_herd(herd):
    none, sf = herd["no_single_flight"], herd["single_flight"]
    assert none["backend_calls"] > 3 * sf["backend_calls"]
    assert none["peak_outstanding"] > 3 * sf["peak_outstanding"]
    assert none["p99_ms"] > 5 * sf["p99_ms"]             # the backend queue explodes


def test_single_flight_makes_one_call_per_key_per_expiry(herd):
    sf = herd["single_flight"]
    # 1 bulk warm-up + 20 keys expiring together at ~1 s and again at ~2 s
    assert sf["backend_calls"] == 1 + 2 * sf["keys"]
    assert sf["peak_outstanding"] == sf["keys"]          # all keys expire at the same moment


def test_jitter_spreads_the_expiries(herd):
    sf, jit = herd["single_flight"], herd["jitter"]
    assert jit["peak_outstanding"] * 2 < sf["peak_outstanding"]
    assert max(jit["calls_per_bucket"][1:]) * 2 < max(sf["calls_per_bucket"][1:])
    assert jit["max_ms"] < sf["max_ms"]


def test_refresh_ahead_means_no_client_waits_for_a_load(herd):
    ra = herd["refresh_ahead"]
    assert ra["waited"] == 0 and ra["stats"]["stale_served"] > 0 and ra["max_ms"] == 0


def test_same_seed_same_numbers_and_bad_mode_refused():
    a, b = (herd_lab(mode="jitter", clients=30, duration_s=1.5, seed=3) for _ in range(2))
    assert a == b
    assert herd_lab(mode="jitter", clients=30, duration_s=1.5, seed=4) != a
    with pytest.raises(ValueError, match="mode"):
        herd_lab(mode="fast")
    with pytest.raises(ValueError, match="clients"):
        herd_lab(mode="jitter", clients=0)


def test_chart_draws_one_line_per_run(herd):
    fig = herd_chart(list(herd.values()))
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(MODES)
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="results"):
        herd_chart([{"nope": 1}])


def test_real_service_counts_one_request_with_single_flight(run):
    async def main():
        try:
            return await real_herd(callers=20, latency_ms=50)
        finally:
            await labkit.shutdown()
    out = run(main())
    assert out["requests_no_single_flight"] == 20
    assert out["requests_single_flight"] == 1
    assert out["requests_missing_x3_negative_cached"] == 1 and out["negative_hits"] == 2


def test_the_tutorials_prefetch_deadlocks_and_the_timeout_ends_it(run):
    out = run(prefetch_deadlock(timeout_s=0.1))
    assert out["deadlocked"] and out["lock_held"] and out["lock_free_after"]
    assert out["fetch_calls"] == [] and out["waited_s"] >= 0.1
    assert out["message"].startswith("deadlocked: prefetch waited 0.1")
    assert "for the lock it holds" in out["message"]


def test_the_fixed_prefetch_fetches_the_misses_once(run):
    out = run(prefetch_fixed())
    assert not out["deadlocked"] and out["fetch_calls"] == [["u2", "u3"]]
    assert set(out["results"]) == {"u1", "u2", "u3"}
    assert out["results"]["u1"]["name"] == "cached"


def test_the_lesson_class_is_the_tutorials_code():
    import inspect
    src = inspect.getsource(PrefetchCache.prefetch)
    assert "async with self.lock:" in src and "await self.get(key)" in src
    assert FixedPrefetchCache.prefetch is not PrefetchCache.prefetch
    assert "async with self.lock" not in inspect.getsource(FixedPrefetchCache.prefetch)
