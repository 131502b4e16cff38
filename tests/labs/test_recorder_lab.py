"""labkit/labs/recorder.py (chapter 06/07): the tutorial's collector kept as it is (its lessons
hold), the cost measurement runs and compares like with like, the average of per-instance
p99s is not the p99 while the merged histogram is (the SLO lab: tests/labs/test_slo_lab.py)."""
import math

import pytest

from labkit.labs import recorder as lab
from labkit.labs.recorder import MetricsCollector, RequestMetrics


def test_the_tutorial_collector_keeps_every_sample_and_its_percentiles_mislead():
    c = MetricsCollector()
    for i in range(300):                           # users: 1 % of the traffic, and slow
        svc = "users" if i % 100 == 0 else "orders"
        lab._drive(c.record_request(RequestMetrics(0.0 + 1e12, 1.0 if svc == "users" else 0.01,
                                                   200, None, svc, "GET /")))
    assert len(c.request_metrics) == 300           # nothing leaves before the 1 h retention
    users = c.service_metrics["users"]
    # "p99" of users comes from the one users sample among the last 100 requests
    assert users.total_requests == 3 and users.p99_response_time == 1.0
    lab._drive(c.record_request(RequestMetrics(1e12, 0.01, None, "Timeout", "orders", "GET /")))
    assert c.service_metrics["orders"].failed_requests == 1   # no status: counted as failed


def test_record_cost_measures_both_at_the_same_number_of_samples():
    r = lab.record_cost(2_000, tutorial_records=5, recorder_records=500, seed=1)
    assert r["samples"] == 2_000 and r["histogram_buckets"] > 1000
    assert r["tutorial_us"] > 0 and r["recorder_us"] > 0
    assert r["speedup"] == pytest.approx(r["tutorial_us"] / r["recorder_us"])
    assert math.isnan(lab.record_cost(10, tutorial_records=0, recorder_records=10)["tutorial_us"])
    with pytest.raises(ValueError, match="samples"):
        lab.record_cost(0)


def test_an_average_of_percentiles_is_not_a_percentile_but_a_merge_is():
    r = lab.average_of_percentiles(seed=5)
    p99s = [i["p99_ms"] for i in r["instances"]]
    assert p99s == sorted(p99s)                    # busier instances are slower
    assert r["merged_error"] <= 0.01               # the histogram bound, after merging
    assert r["mean_of_percentiles_error"] > 0.3    # the dashboard average is far off
    assert r["mean_of_percentiles_ms"] < r["exact_ms"]   # and it hides the hot instance
    again = lab.average_of_percentiles(seed=5)
    assert again["merged_ms"] == r["merged_ms"]    # seeded
    with pytest.raises(ValueError, match="loads"):
        lab.average_of_percentiles(loads=(0.5, 1.0))


def test_the_tutorial_collector_misleads_on_mixed_traffic():
    u = lab.tutorial_collector_misleads(seed=2024)["users"]
    # its "p99" for users comes from the few users requests among the last 100 of all services
    assert 0 < u["collector_samples"] < 10 < u["requests"]
    assert u["collector_p99_ms"] < u["p99_ms"]
    # and every 404 (the caller asked for an id that does not exist) is a users failure
    assert u["collector_failed"] == u["not_found"] > 0 and u["errors"] == 0
    assert lab.tutorial_collector_misleads(seed=2024)["users"] == u          # seeded
    with pytest.raises(ValueError, match="users_share"):
        lab.tutorial_collector_misleads(users_share=0)
