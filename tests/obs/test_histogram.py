"""labkit/obs/histogram.py (chapter 06's recorder): every percentile within 1 % of the exact
one (hypothesis, against numpy on the same samples), fixed memory, exact count/mean/extremes,
removal for sliding windows, merge; and labkit.obs.metrics.Recorder built on it."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from labkit.obs.histogram import LogHistogram
from labkit.obs.metrics import Call, Recorder

LOW, HIGH = 1e-6, 3600.0
values = st.floats(min_value=LOW, max_value=HIGH, allow_nan=False, allow_infinity=False)
# latencies spread over many decades, plus clusters of repeats (a fixed injected delay)
samples = st.lists(st.one_of(values, st.sampled_from([0.001, 0.1, 0.1000001, 2.5])),
                   min_size=1, max_size=400)
qs = st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=6)


def close_enough(estimate, exact, bound=0.01):
    return abs(estimate - exact) <= bound * exact * (1 + 1e-9)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(samples, qs)
def test_every_percentile_is_within_one_percent_of_the_exact_one(xs, q_list):
    h = LogHistogram(lowest=LOW, highest=HIGH, relative_error=0.01)
    for x in xs:
        h.record(x)
    exact = np.percentile(xs, q_list)            # linear interpolation, numpy's default
    for q, e, got in zip(q_list, exact, h.percentiles(q_list)):
        assert close_enough(got, e), (q, got, e)
    assert h.count == len(xs)
    assert h.min == min(xs) and h.max == max(xs)
    assert h.mean == pytest.approx(math.fsum(xs) / len(xs), rel=1e-12)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(samples, st.data())
def test_the_bound_holds_for_what_is_left_after_removals(xs, data):
    h = LogHistogram()
    for x in xs:
        h.record(x)
    gone = data.draw(st.integers(min_value=0, max_value=len(xs) - 1))
    for x in xs[:gone]:                          # a window: the oldest leave first
        h.remove(x)
    kept = xs[gone:]
    for q in (0, 1, 50, 90, 99, 99.9, 100):
        assert close_enough(h.percentile(q), np.percentile(kept, q))
    assert h.count == len(kept)
    assert h.mean == pytest.approx(math.fsum(kept) / len(kept), rel=1e-9)
    assert h.min <= min(kept) and h.max >= max(kept)           # bounds after a removal
    assert close_enough(h.min, min(kept), 0.021) and close_enough(h.max, max(kept), 0.021)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(samples, samples)
def test_merging_two_histograms_is_the_histogram_of_all_the_values(a, b):
    ha, hb, both = LogHistogram(), LogHistogram(), LogHistogram()
    for x in a:
        ha.record(x)
        both.record(x)
    for x in b:
        hb.record(x)
        both.record(x)
    merged = ha.copy().merge(hb)
    assert merged.count == len(a) + len(b) and merged.min == both.min and merged.max == both.max
    assert merged.percentiles([1, 50, 99]) == both.percentiles([1, 50, 99])
    assert close_enough(merged.percentile(99), np.percentile(a + b, 99))
    assert ha.count == len(a)                    # copy() left the original alone


def test_memory_is_a_fixed_number_of_buckets_whatever_the_samples():
    h = LogHistogram()
    before = h.bucket_count
    assert 1000 < before < 1200                  # 1 µs .. 1 h at 1 %: about 1,100 buckets
    rng = np.random.default_rng(7)
    for x in rng.lognormal(-4, 2, 100_000).tolist():
        h.record(x)
    assert h.bucket_count == before and len(h._counts) == len(h._lo) == len(h._hi) == before
    assert h.count == 100_000
    assert not hasattr(h, "__dict__")            # __slots__: nowhere else to grow


def test_a_repeated_value_reads_back_exactly():
    h = LogHistogram()
    for _ in range(99):
        h.record(0.1)
    h.record(0.5)
    assert h.percentile(50) == 0.1 and h.percentile(0) == 0.1 and h.percentile(100) == 0.5


def test_under_and_overflow_are_counted_and_bounded_by_what_was_seen():
    h = LogHistogram(lowest=1e-3, highest=1.0)
    for x in (0.0, 0.0005, 0.01, 5.0, 7.0):
        h.record(x)
    assert h.count == 5 and h.min == 0.0 and h.max == 7.0
    assert 0.0 <= h.percentile(0) <= 0.0005          # underflow: only known within min..
    assert 5.0 <= h.percentile(100) <= 7.0           # overflow: ..and within its own range
    assert h.percentile(50) == 0.01
    h.remove(7.0)
    h.remove(0.0)
    assert h.count == 3


def test_reset_forgets_everything_and_empty_reads_nan():
    h = LogHistogram()
    assert math.isnan(h.percentile(50)) and math.isnan(h.mean) and math.isnan(h.min)
    h.record(0.2)
    h.remove(0.2)
    assert h.count == 0 and h.sum == 0.0
    h.record(0.3)
    h.reset()
    assert h.count == 0 and math.isnan(h.max)
    h.record(0.4)
    assert h.percentile(50) == 0.4


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, True, "1", None])
def test_bad_values_are_refused_with_the_argument_named(bad):
    h = LogHistogram()
    with pytest.raises(ValueError, match="value"):
        h.record(bad)
    assert h.count == 0


def test_removing_what_was_never_recorded_and_mismatched_merges_are_refused():
    h = LogHistogram()
    h.record(0.01)
    with pytest.raises(ValueError, match="not recorded"):
        h.remove(5.0)
    with pytest.raises(ValueError, match="same lowest"):
        h.merge(LogHistogram(relative_error=0.02))
    with pytest.raises(ValueError, match="relative_error"):
        LogHistogram(relative_error=0)
    with pytest.raises(ValueError, match="highest"):
        LogHistogram(lowest=1.0, highest=0.5)
    with pytest.raises(ValueError, match="q"):
        h.percentile(101)


# ---- Recorder (labkit.obs.metrics) ---------------------------------------------------------
def test_recorder_summarises_only_its_window_and_forgets_what_left_it():
    rec = Recorder(window=50)
    rng = np.random.default_rng(3)
    lat = rng.lognormal(-3, 1, 400).tolist()
    for i, x in enumerate(lat):
        rec.record(Call(i, x, i % 10 != 0, "200"))
    window = lat[-50:]
    s = rec.stats()
    assert s["n"] == 50 and rec.total == 400 and len(rec.calls) == 50
    for key, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        assert close_enough(s[key], np.percentile(window, q) * 1000)
    assert s["mean_ms"] == pytest.approx(sum(window) / 50 * 1000, rel=1e-9)
    assert s["error_rate"] == sum(i % 10 == 0 for i in range(350, 400)) / 50
    assert rec.histogram.count == 50


def test_recorder_clear_and_a_deque_changed_by_hand_stay_consistent():
    rec = Recorder(window=10)
    for i in range(10):
        rec.record(Call(i, 0.010, True, "200"))
    rec.calls.append(Call(10, 0.5, False, "503"))   # behind record's back: stats resync
    s = rec.stats()
    assert s["n"] == 10 and s["p50_ms"] == 10.0 and s["error_rate"] == 0.1
    rec.clear()
    s = rec.stats()
    assert s["n"] == 0 and math.isnan(s["p50_ms"]) and math.isnan(s["error_rate"])
    rec.record(Call(11, 0.002, True, "200"))
    assert rec.stats()["p99_ms"] == 2.0


def test_recorder_refuses_a_bad_latency_without_changing_anything():
    rec = Recorder(window=3)
    for i in range(3):
        rec.record(Call(i, 0.01 * (i + 1), True, "200"))
    with pytest.raises(ValueError, match="value"):
        rec.record(Call(3, float("nan"), False, "timeout"))
    assert rec.stats()["n"] == 3 and rec.stats()["p50_ms"] == 20.0 and rec.total == 3
