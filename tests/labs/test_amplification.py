"""Retry amplification (chapter 05): attempts**layers calls when every layer retries; fixes."""
import json

import pytest

from labkit.labs.amplification import POLICIES, amplification, expected_factor, plot_amplification


@pytest.mark.parametrize("layers,attempts", [(1, 3), (2, 3), (3, 3), (4, 3), (2, 5), (5, 2)])
def test_every_layer_multiplies_exactly(layers, attempts):
    r = amplification(layers, attempts, requests=40)
    assert r["bottom_calls"] == 40 * attempts ** layers
    assert r["factor"] == attempts ** layers == r["expected"]
    # each caller is called attempts times as often as the one above it
    assert r["calls_per_layer"] == [40 * attempts ** i for i in range(layers)]
    assert r["succeeded"] == 0 and r["top_requests"] == 40


@pytest.mark.parametrize("layers,attempts", [(1, 3), (3, 3), (5, 3), (4, 5)])
def test_retrying_at_one_layer_costs_attempts_calls(layers, attempts):
    r = amplification(layers, attempts, policy="one_layer", requests=40)
    assert r["factor"] == attempts == r["expected"]
    assert r["calls_per_layer"] == [40] * layers            # nobody above retries


@pytest.mark.parametrize("layers,attempts", [(2, 3), (4, 3), (3, 5)])
def test_a_budget_per_layer_caps_the_amplification(layers, attempts):
    requests = 100
    r = amplification(layers, attempts, policy="budget", requests=requests)
    # With no successes to refill it, a budget of 10 tokens that retries only while more than
    # 5 are left allows at most 4 retries per layer over the whole outage.
    assert requests < r["bottom_calls"] <= requests + 4 * layers
    assert r["factor"] < 0.2 * attempts ** layers
    assert r["expected"] is None


def test_no_failures_no_amplification():
    for policy in POLICIES:
        r = amplification(4, 3, policy=policy, failure_rate=0.0, requests=30)
        assert r["factor"] == 1.0 and r["succeeded"] == 30


def test_partial_failures_match_the_expected_factor():
    # 2000 requests: the factor is a mean of values in 1..27 (sd ~ 2.7 each here), so its
    # standard error is ~ 0.06; allow about 4 of those.
    r = amplification(3, 3, failure_rate=0.6, requests=2000, seed=5)
    expected = expected_factor(3, 3, "every_layer", 0.6)
    assert expected == pytest.approx(r["expected"])
    assert abs(r["factor"] - expected) < 0.25
    assert 1 < expected < 27


def test_expected_factor_formula():
    assert expected_factor(4, 3) == 81
    assert expected_factor(4, 3, "one_layer") == 3
    assert expected_factor(2, 2, failure_rate=0.5) == pytest.approx((1 + 0.5) * (1 + 0.25))
    assert expected_factor(3, 3, "budget") is None


def test_same_seed_same_result_and_json():
    a = amplification(3, 3, policy="budget", failure_rate=0.8, requests=200, seed=1)
    assert a == amplification(3, 3, policy="budget", failure_rate=0.8, requests=200, seed=1)
    assert a != amplification(3, 3, policy="budget", failure_rate=0.8, requests=200, seed=2)
    assert json.loads(json.dumps(a)) == a


@pytest.mark.parametrize("args,kwargs,needle", [
    ((0, 3), {}, "layers"),
    ((3, 0), {}, "attempts"),
    ((3.0, 3), {}, "layers"),
    ((3, 3), {"policy": "hedge"}, "policy"),
    ((3, 3), {"requests": 0}, "requests"),
    ((3, 3), {"failure_rate": 1.5}, "failure_rate"),
    ((3, 3), {"seed": None}, "seed"),
    ((8, 6), {}, "attempts\\*\\*layers"),
    ((3, 3), {"requests": 10.0}, "requests"),
    ((3, True), {}, "attempts"),
    ((3, 3), {"failure_rate": float("nan")}, "failure_rate"),
    ((3, 3), {"failure_rate": True}, "failure_rate"),
    ((3, 3), {"seed": 1.0}, "seed"),
])
def test_bad_arguments_name_themselves(args, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        amplification(*args, **kwargs)


def test_plot_is_log_scale_with_one_line_per_policy():
    results = [amplification(n, 3, policy=p, requests=10) for p in POLICIES for n in (1, 2, 3)]
    ax = plot_amplification(results).get_axes()[0]
    assert ax.get_yscale() == "log"
    assert len(ax.get_lines()) == len(POLICIES) + 1         # + attempts**layers
    with pytest.raises(ValueError, match="results"):
        plot_amplification([])


def _peak_bytes(requests):
    import tracemalloc
    tracemalloc.start()
    try:
        r = amplification(1, 1, requests=requests, failure_rate=0.0)
        return tracemalloc.get_traced_memory()[1], r
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_requests_grow():
    # Before: every request's Task was kept until the end (~5 MB more for 4 500 requests).
    # Both runs fill the Retry's event log (its newest 1000 events), a fixed cost.
    _peak_bytes(50)                            # one-time allocations (imports, caches) first
    small, r1 = _peak_bytes(1_500)
    large, r2 = _peak_bytes(6_000)
    assert r1["succeeded"] == 1_500 and r2["succeeded"] == 6_000
    assert large - small < 100_000, (small, large)
