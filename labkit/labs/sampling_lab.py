"""Chapter 07's sampling lab: what head and tail sampling keep, and what they cost.

A seeded population of traces (a checkout: gateway -> orders -> inventory -> payments ->
notifications, with client and server spans, a few failed steps and a heavy latency tail)
arrives at `rate_per_s`; each setting decides which traces to store. Measured per setting:
the share of error traces kept, the share of slow traces kept, and the spans stored (the
cost). Everything runs on the traces' own timestamps: no sleeping, same numbers every run.
"""
from __future__ import annotations

import math

from labkit._core import seeding, validate
from labkit.obs.sampling import HeadSampler, TailSampler, trace_duration_ms
from labkit.obs.tracing import SpanRecord

__all__ = ["population", "measure", "DEFAULT_SETTINGS"]

_HOPS = ("orders", "inventory", "payments", "notifications")

#: (label, kind, options): kind "head" takes rate; "tail" takes TailSampler's options.
DEFAULT_SETTINGS = (
    ("keep everything", "head", {"rate": 1.0}),
    ("head 10 %", "head", {"rate": 0.10}),
    ("head 1 %", "head", {"rate": 0.01}),
    ("tail: errors + slow + 1 %", "tail", {"base_rate": 0.01}),
    ("tail: errors + slow only", "tail", {"base_rate": 0.0}),
    ("tail, buffer of 100 traces", "tail", {"base_rate": 0.01, "max_traces": 100}),
)


def _hex(rng, bits: int) -> str:
    return f"{rng.getrandbits(bits) or 1:0{bits // 4}x}"


def _trace(rng, start_s: float, error_rate: float) -> list:
    """One checkout trace: a gateway server span calling the hops one after the other; each hop
    is a client span around the hop's server span, which may query its database."""
    tid = _hex(rng, 128)
    root_id = _hex(rng, 64)
    spans, t = [], start_s + rng.uniform(0.0002, 0.001)
    for hop in _HOPS:
        if hop == "notifications" and rng.random() < 0.5:
            continue                                    # not every checkout notifies
        client_id, server_id = _hex(rng, 64), _hex(rng, 64)
        server_start = t + rng.uniform(0.0002, 0.0008)
        work_s = rng.lognormvariate(math.log(0.004), 0.5)
        if rng.random() < 0.01:
            work_s *= rng.uniform(10, 40)               # the tail: a stall, a slow query
        failed = rng.random() < error_rate
        if rng.random() < 0.6:
            db_start = server_start + work_s * 0.2
            db_end = db_start + work_s * 0.6
            spans.append(SpanRecord(tid, _hex(rng, 64), server_id, "SELECT", hop, "client",
                                    db_start, db_end, "ok", {}, ()))
        server_end = server_start + work_s
        status = "error" if failed else "ok"
        spans.append(SpanRecord(tid, server_id, client_id, f"POST /{hop}", hop, "server",
                                server_start, server_end, status, {}, ()))
        t = server_end + rng.uniform(0.0002, 0.0008)
        spans.append(SpanRecord(tid, client_id, root_id, f"POST {hop}", "gateway", "client",
                                server_start - 0.0001, t, status, {}, ()))
    spans.append(SpanRecord(tid, root_id, None, "POST /checkout", "gateway", "server",
                            start_s, t + rng.uniform(0.0002, 0.001), "ok", {}, ()))
    return spans


def population(*, n_traces: int = 4000, rate_per_s: float = 200.0, error_rate: float = 0.005,
               seed: int | None = None) -> list[list]:
    """`n_traces` traces arriving as a Poisson stream of `rate_per_s`; each hop fails with
    probability `error_rate` (the gateway retries, so the root span stays "ok")."""
    n = validate.integer("n_traces", n_traces, 1, 1_000_000)
    rate = validate.number("rate_per_s", rate_per_s, 0.0, lo_open=True)
    error_rate = validate.number("error_rate", error_rate, 0.0, 1.0)
    rng = seeding.rng("sampling_lab", seed)
    traces, t = [], 0.0
    for _ in range(n):
        t += rng.expovariate(rate)
        traces.append(_trace(rng, t, error_rate))
    return traces


def _slow_ms(traces, quantile: float = 0.99) -> float:
    durations = sorted(trace_duration_ms(tr) for tr in traces)
    return durations[min(len(durations) - 1, int(quantile * len(durations)))]


def measure(traces=None, settings=DEFAULT_SETTINGS, *, slow_ms: float | None = None,
            decision_wait_s: float = 2.0, seed: int | None = None) -> dict:
    """Run each setting over the same traces. Slow = slower than `slow_ms` (default: the
    population's 99th percentile). Returns {"slow_ms", "traces", "spans", "error_traces",
    "slow_traces", "rows": [{"setting", "traces_kept", "errors_kept", "slow_kept",
    "spans_stored", "cost_share", "dropped_early"}, ...]} (shares in 0..1)."""
    traces = population(seed=seed) if traces is None else traces
    if not traces:
        raise ValueError("traces must hold at least one trace, got none")
    slow_ms = _slow_ms(traces) if slow_ms is None else validate.number("slow_ms", slow_ms, 0.0)
    is_error = {tr[0].trace_id: any(s.status == "error" for s in tr) for tr in traces}
    is_slow = {tr[0].trace_id: trace_duration_ms(tr) > slow_ms for tr in traces}
    total_spans = sum(len(tr) for tr in traces)
    rows = []
    for label, kind, opts in settings:
        if kind == "head":
            kept, stored, dropped = _run_head(traces, **opts)
        elif kind == "tail":
            opts = {"slow_ms": slow_ms, "decision_wait_s": decision_wait_s, **opts}
            kept, stored, dropped = _run_tail(traces, **opts)
        else:
            raise ValueError(f"settings kind must be 'head' or 'tail', got {kind!r}")
        rows.append({
            "setting": label,
            "traces_kept": len(kept) / len(traces),
            "errors_kept": _share(kept, is_error),
            "slow_kept": _share(kept, is_slow),
            "spans_stored": stored,
            "cost_share": stored / total_spans,
            "dropped_early": dropped,
        })
    return {"slow_ms": slow_ms, "traces": len(traces), "spans": total_spans,
            "error_traces": sum(is_error.values()), "slow_traces": sum(is_slow.values()),
            "rows": rows}


def _share(kept: set, flag: dict) -> float:
    wanted = [tid for tid, yes in flag.items() if yes]
    return sum(tid in kept for tid in wanted) / len(wanted) if wanted else math.nan


def _run_head(traces, *, rate: float):
    """Each service decides per span: the root from the trace id, the others from the flag
    their caller sent (here: the root's decision), as ParentBased does."""
    sampler = HeadSampler(rate)
    kept, stored = set(), 0
    for tr in traces:
        root_decision = sampler.should_sample(tr[0].trace_id)
        decisions = [sampler.should_sample(s.trace_id, None if s.parent_id is None
                                           else root_decision) for s in tr]
        if any(decisions):
            kept.add(tr[0].trace_id)
        stored += sum(decisions)
    return kept, stored, 0


def _run_tail(traces, **opts):
    """Spans reach the collector when they end; decisions fall due as time passes."""
    sampler = TailSampler(max_stored_spans=1, **opts)       # count, do not hold, the spans
    arrivals = sorted((s for tr in traces for s in tr), key=lambda s: s.end_s)
    kept = set()
    for span in arrivals:
        sampler.add(span, now_s=span.end_s)
        for d in sampler.poll(now_s=span.end_s):
            if d.keep:
                kept.add(d.trace_id)
    for d in sampler.flush():
        if d.keep:
            kept.add(d.trace_id)
    return kept, sampler.spans_stored, sampler.dropped_early
