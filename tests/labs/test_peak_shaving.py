"""Peak shaving (chapter 02): a burst sent directly to a fixed-capacity service times out in
part; through a queue, nothing fails, the depth rises then drains and latency grows to about
burst / capacity. Virtual time: counts and virtual times."""
import pytest

from labkit.labs.peak_shaving import peak_chart, peak_lab


@pytest.fixture(scope="module")
def result():
    return peak_lab()


def test_direct_calls_time_out_when_the_burst_exceeds_capacity(result):
    d = result["direct"]
    # the kitchen serves ~100/s: within burst_s + timeout_s = 3 s at most ~300 of 500
    assert 100 < d["errors"] and d["ok"] < 320 and d["ok"] + d["errors"] == 500
    assert all(o["latency_ms"] is None or o["latency_ms"] <= 2000 for o in d["orders"])


def test_the_queue_absorbs_the_burst_without_errors(result):
    q = result["queued"]
    assert q["errors"] == 0 and q["ok"] == 500
    assert q["checker"]["ok"] and q["checker"]["lost"] == 0 and q["verdict"].startswith("OK")
    depth = q["series"]["depth"]
    assert max(depth) > 300 and depth[-1] == 0                  # rises, then drains
    peak_at = depth.index(max(depth))
    assert all(a >= b for a, b in zip(depth[peak_at:], depth[peak_at + 1:]))
    assert 4.5 <= q["drained_at_s"] <= 5.5                       # ~ burst / capacity
    assert 3000 < q["latency_max_ms"] < 5500
    assert q["latency_max_ms"] > 1.5 * result["direct"]["latency_max_ms"]


def test_a_burst_within_capacity_needs_no_queue():
    r = peak_lab(burst=50, burst_s=1.0, capacity_per_s=100, timeout_s=2.0)
    assert r["direct"]["errors"] == 0 and r["queued"]["errors"] == 0
    assert r["queued"]["peak_depth"] < 20


def test_same_seed_same_numbers():
    a, b = peak_lab(burst=200, seed=3), peak_lab(burst=200, seed=3)
    assert a == b
    assert peak_lab(burst=200, seed=4)["queued"]["orders"] != a["queued"]["orders"]


def test_chart_has_depth_and_latency_for_both_modes(result):
    fig = peak_chart(result)
    top, bottom = fig.axes
    assert len(top.get_lines()) == 2 and len(bottom.collections) == 3
    labels = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert any("500 served" in x for x in labels) and any("timed out" in x for x in labels)
    with pytest.raises(ValueError, match="result"):
        peak_chart({"direct": {}})


@pytest.mark.parametrize("kw, match", [
    ({"burst": 0}, "burst"), ({"burst_s": -1}, "burst_s"),
    ({"capacity_per_s": 0}, "capacity_per_s"), ({"timeout_s": float("nan")}, "timeout_s"),
])
def test_bad_arguments_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        peak_lab(**kw)
