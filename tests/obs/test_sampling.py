"""labkit.obs.sampling: head sampling agrees across services and matches OpenTelemetry's
TraceIdRatioBased; tail sampling keeps every error and slow trace, bounds its buffer, and late
spans follow their trace's decision. Plus the lab's measured shares."""
import random

import pytest
from opentelemetry.sdk.trace.sampling import Decision as OtelDecision
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from labkit.labs import sampling_lab
from labkit.obs.sampling import HeadSampler, TailSampler, decide, in_base_share
from labkit.obs.tracing import SpanRecord


def trace(rng, *, error=False, duration_ms=10.0, n=4, start_s=0.0):
    tid = f"{rng.getrandbits(128) or 1:032x}"
    root = f"{rng.getrandbits(64) or 1:016x}"
    spans = [SpanRecord(tid, root, None, "root", "gateway", "server", start_s,
                        start_s + duration_ms / 1000, "ok", {}, ())]
    for i in range(n - 1):
        spans.append(SpanRecord(tid, f"{rng.getrandbits(64) or 1:016x}", root, f"s{i}", "svc",
                                "client", start_s + 0.001, start_s + 0.002,
                                "error" if error and i == n - 2 else "ok", {}, ()))
    return spans


def test_head_sampling_is_the_same_decision_in_every_service():
    rng = random.Random(1)
    services = [HeadSampler(0.25) for _ in range(4)]
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(2000)]
    for tid in ids:
        assert len({s.should_sample(tid) for s in services}) == 1
    share = sum(services[0].should_sample(t) for t in ids) / len(ids)
    assert 0.2 < share < 0.3
    # a hop follows its caller's flag, whatever the id says
    assert HeadSampler(0.0).should_sample(ids[0], parent_sampled=True)
    assert not HeadSampler(1.0).should_sample(ids[0], parent_sampled=False)


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.3, 1.0])
def test_the_ratio_rule_is_opentelemetrys(rate):
    rng = random.Random(2)
    otel = TraceIdRatioBased(rate)
    for _ in range(500):
        tid = rng.getrandbits(128) or 1
        want = otel.should_sample(None, tid, "x").decision is OtelDecision.RECORD_AND_SAMPLE
        assert in_base_share(f"{tid:032x}", rate) == want


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="rate"):
        HeadSampler(1.5)
    with pytest.raises(ValueError, match="trace_id"):
        in_base_share("xyz", 0.5)
    with pytest.raises(ValueError, match="max_traces"):
        TailSampler(slow_ms=100, max_traces=0)


def test_decide_keeps_errors_anywhere_in_the_tree_and_slow_traces():
    rng = random.Random(3)
    assert decide(trace(rng, error=True), slow_ms=100, base_rate=0).reason == "error"
    assert decide(trace(rng, duration_ms=150), slow_ms=100, base_rate=0).reason == "slow"
    assert not decide(trace(rng, duration_ms=50), slow_ms=100, base_rate=0).keep
    assert decide(trace(rng, duration_ms=50), slow_ms=100, base_rate=1).reason == "base"


def test_tail_sampling_keeps_every_error_and_slow_trace():
    rng = random.Random(4)
    sampler = TailSampler(slow_ms=100, base_rate=0.0, decision_wait_s=1.0)
    wanted, t = set(), 0.0
    for i in range(300):
        t += 0.01
        tr = trace(rng, error=i % 7 == 0, duration_ms=200 if i % 11 == 0 else 20, start_s=t)
        if i % 7 == 0 or i % 11 == 0:
            wanted.add(tr[0].trace_id)
        for s in tr:
            sampler.add(s, now_s=t)
        sampler.poll(now_s=t)
    sampler.flush()
    kept = {s.trace_id for s in sampler.stored}
    assert kept == wanted
    assert sampler.kept_by_reason["error"] + sampler.kept_by_reason["slow"] == len(wanted)
    assert sampler.spans_stored == 4 * len(wanted)


def test_the_buffer_is_bounded_and_evicts_the_oldest_trace():
    rng = random.Random(5)
    sampler = TailSampler(slow_ms=100, base_rate=1.0, decision_wait_s=10.0, max_traces=5,
                          max_spans_per_trace=2)
    traces = [trace(rng, n=4) for _ in range(8)]
    for i, tr in enumerate(traces):
        for s in tr:
            sampler.add(s, now_s=i * 0.1)
    assert sampler.buffered_traces == 5 and sampler.dropped_early == 3
    assert sampler.spans_cut == 8 * 2
    decided = sampler.flush()
    assert [d.trace_id for d in decided] == [tr[0].trace_id for tr in traces[3:]]
    # a late span of an evicted trace is dropped; one of a kept trace is stored
    before = sampler.spans_stored
    sampler.add(traces[0][0], now_s=5.0)
    sampler.add(traces[7][0], now_s=5.0)
    assert sampler.spans_stored == before + 1


def test_decisions_fall_due_after_the_decision_wait():
    rng = random.Random(6)
    sampler = TailSampler(slow_ms=100, base_rate=1.0, decision_wait_s=2.0)
    for s in trace(rng):
        sampler.add(s, now_s=10.0)
    assert sampler.poll(now_s=11.9) == []
    assert [d.keep for d in sampler.poll(now_s=12.0)] == [True]


def test_lab_tail_keeps_all_errors_and_slow_traces_head_keeps_about_its_rate():
    traces = sampling_lab.population(n_traces=1500, seed=1)
    result = sampling_lab.measure(traces)
    rows = {r["setting"]: r for r in result["rows"]}
    assert result["error_traces"] > 5 and result["slow_traces"] > 5
    assert rows["keep everything"]["cost_share"] == 1.0
    for label in ("tail: errors + slow + 1 %", "tail: errors + slow only"):
        assert rows[label]["errors_kept"] == 1.0 and rows[label]["slow_kept"] == 1.0
        assert rows[label]["cost_share"] < 0.1
    assert 0.05 < rows["head 10 %"]["traces_kept"] < 0.15
    assert rows["tail, buffer of 100 traces"]["dropped_early"] > 0
    assert rows["tail, buffer of 100 traces"]["errors_kept"] < 0.5
    # same seed, same numbers
    assert sampling_lab.measure(sampling_lab.population(n_traces=1500, seed=1)) == result
