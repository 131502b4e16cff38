"""labkit/obs/red.py (chapter 07): rate, errors and duration per route template and method,
with bounded cardinality, Prometheus' cumulative buckets and rates read in virtual time."""
import asyncio
import math

import pytest

from labkit import sim
from labkit.obs.red import DURATION_BUCKETS_S, OTHER_ROUTE, RED, is_error


def test_rows_are_per_route_template_and_method_with_errors_by_status():
    red = RED("users")
    for status in (200, 200, 404, 500, 503, 429, 0):
        red.record("/users/{id}", "GET", status, 0.010, now_s=1.0)
    red.record("/users", "POST", 201, 0.020, now_s=1.0)
    row = red.rows[("/users/{id}", "GET")]
    assert row.requests == 7 and row.errors == 4            # 500, 503, 429 and no answer
    assert row.by_status == {200: 2, 404: 1, 500: 1, 503: 1, 429: 1, 0: 1}
    assert red.requests == 8 and red.errors == 4
    assert red.status_counts() == {200: 2, 404: 1, 500: 1, 503: 1, 429: 1, 0: 1, 201: 1}
    assert [is_error(s) for s in (200, 404, 429, 500, 0)] == [False, False, True, True, True]


def test_cardinality_is_bounded_by_max_routes_and_known_methods():
    red = RED("users", max_routes=3)
    for i in range(100):
        red.record(f"/raw/{i}", "GET", 200, 0.001, now_s=0.0)   # a caller that did not template
    red.record("/raw/x", "BREW", 200, 0.001, now_s=0.0)
    assert len(red.rows) <= 5
    assert red.rows[(OTHER_ROUTE, "GET")].requests == 97
    assert (OTHER_ROUTE, "OTHER") in red.rows and red.requests == 101


def test_duration_buckets_are_cumulative_like_prometheus_le():
    red = RED("users")
    for d in (0.0005, 0.001, 0.003, 0.2, 99.0):
        red.record("/health", "GET", 200, d, now_s=0.0)
    buckets = dict(red.rows[("/health", "GET")].cumulative_buckets())
    assert buckets[0.001] == 2                    # le is inclusive: 0.001 counts in le=0.001
    assert buckets[0.005] == 3 and buckets[0.25] == 4 and buckets[30.0] == 4
    assert buckets[math.inf] == 5 and list(buckets)[:-1] == list(DURATION_BUCKETS_S)
    assert red.rows[("/health", "GET")].duration_sum_s == pytest.approx(99.2045)


def test_percentiles_come_from_the_histogram_and_merge_across_routes():
    red = RED("users")
    for i in range(100):
        red.record("/a", "GET", 200, 0.010, now_s=0.0)
        red.record("/b", "GET", 200, 0.100 if i < 98 else 1.0, now_s=0.0)
    rows = {r["route"]: r for r in red.summary(now_s=0.0)}
    assert rows["/a"]["p99_ms"] == 10.0 and rows["/b"]["p50_ms"] == 100.0
    merged = red.duration()
    assert merged.count == 200 and merged.percentile(50) == pytest.approx(0.055)


def test_rate_counts_the_last_window_in_virtual_time():
    async def main():
        red = RED("users", rate_window_s=10)
        for _ in range(20):                        # 20 requests, one every 0.5 s, t = 0 .. 9.5
            red.record("/health", "GET", 200, 0.001)
            await asyncio.sleep(0.5)
        now = sim.now()
        early = red.summary()[0]["rate_per_s"]
        await asyncio.sleep(30)
        return now, early, red.summary()[0]["rate_per_s"]

    now, early, late = sim.run(main)
    # whole one-second bins 1..10 (the current one, 10, is still empty): t = 1.0 .. 9.5
    assert now == 10.0 and early == pytest.approx(18 / 10)
    assert late == 0.0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="rate_window_s"):
        RED("users", rate_window_s=0)
    with pytest.raises(ValueError, match="max_routes"):
        RED("users", max_routes=0)
    with pytest.raises(ValueError, match="service"):
        RED(None)


def test_prometheus_quantile_interpolates_inside_a_bucket_like_histogram_quantile():
    from labkit.obs.red import prometheus_quantile
    red = RED("users")
    for _ in range(50):
        red.record("/health", "GET", 200, 0.0002, now_s=0.0)        # 0.2 ms, all in le=0.001
    row = red.rows[("/health", "GET")]
    # rank 49.5 of 50 in the bucket 0 .. 1 ms: 0.99 ms, whatever the real times were
    assert prometheus_quantile(0.99, row.cumulative_buckets()) == pytest.approx(0.00099)
    assert row.histogram.percentile(99) == pytest.approx(0.0002, rel=0.01)
    # between two bounds; a rank in the +Inf bucket gives the highest finite bound
    b = [(0.1, 10), (0.2, 30), (math.inf, 40)]
    assert prometheus_quantile(0.5, b) == pytest.approx(0.15)
    assert prometheus_quantile(0.9, b) == 0.2
    assert math.isnan(prometheus_quantile(0.5, [(0.1, 0), (math.inf, 0)]))
    assert math.isnan(prometheus_quantile(0.5, [(0.1, 3), (0.2, 4)]))    # no +Inf bucket
    with pytest.raises(ValueError, match="q"):
        prometheus_quantile(99, b)
