"""Which traces to keep: head sampling and tail sampling (chapter 07).

Storing every span of every request costs more than the requests themselves at scale, so
tracing systems keep a sample. Two places to decide (a post office cannot photograph every
parcel: it either picks parcels at the counter, or keeps the photos of the ones that got lost
or late):

- **Head sampling** decides when the trace starts, before anything is known about it. The
  decision must be the same in every service of the trace, or the waterfall has holes. Like
  OpenTelemetry's ``ParentBased(TraceIdRatioBased(rate))``: a service that received a
  ``traceparent`` follows the sampled flag its caller set; a root decides from the trace id
  alone (keep when the lower 64 bits of the id are below ``rate * 2**64``), so even a service
  that re-decides from the id agrees. Cheap, but blind: at 10 % it keeps 10 % of the errors.
- **Tail sampling** decides after the trace is complete, so it can look at it: keep every
  trace with an error span, every trace slower than `slow_ms` end to end (latest end minus
  earliest start, as OpenTelemetry's tail-sampling "latency" policy measures it), and a small
  base share of the rest (by the same trace-id rule, so replicas agree). It has to hold every
  span of every trace in memory until the decision, `decision_wait_s` after the trace's first
  span arrived: the buffer is bounded (`max_traces`); when it is full the oldest trace is
  evicted undecided (dropped, counted in `dropped_early`), as the OpenTelemetry collector does.
  Spans that arrive after their trace was decided follow the decision (a bounded cache).

Pure: no clock is read; callers pass `now_s` (loop time, or virtual time in labkit.sim).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from labkit._core import validate

__all__ = ["in_base_share", "HeadSampler", "Decision", "decide", "trace_duration_ms",
           "TailSampler"]

_LOW64 = (1 << 64) - 1


def _rate(name: str, value) -> float:
    return validate.number(name, value, 0.0, 1.0)


def in_base_share(trace_id: str, rate: float) -> bool:
    """True when `trace_id` (32 hex) falls in the `rate` share: its lower 64 bits are below
    round(rate * 2**64), OpenTelemetry's TraceIdRatioBased rule. The same id gives the same
    answer in every service and every process."""
    rate = _rate("rate", rate)
    try:
        low = int(trace_id, 16) & _LOW64
    except (TypeError, ValueError):
        raise ValueError(f"trace_id must be 32 hex digits, got {trace_id!r}") from None
    return low < round(rate * (1 << 64))


class HeadSampler:
    """ParentBased(TraceIdRatioBased(rate)): decided at the root, followed by every hop."""

    def __init__(self, rate: float):
        self.rate = _rate("rate", rate)

    def should_sample(self, trace_id: str, parent_sampled: bool | None = None) -> bool:
        """`parent_sampled`: the sampled flag of the incoming traceparent (None at a root)."""
        if parent_sampled is not None:
            return bool(parent_sampled)
        return in_base_share(trace_id, self.rate)


def trace_duration_ms(spans) -> float:
    """End to end: the latest end minus the earliest start of the spans, in ms."""
    spans = list(spans)
    if not spans:
        raise ValueError("spans must hold at least one span, got none")
    return (max(s.end_s for s in spans) - min(s.start_s for s in spans)) * 1000.0


@dataclass(frozen=True)
class Decision:
    """A tail-sampling decision: `reason` is "error", "slow", "base" or "dropped"."""
    trace_id: str
    keep: bool
    reason: str
    spans: int


def decide(spans, *, slow_ms: float, base_rate: float) -> Decision:
    """Keep a complete trace if a span failed, if it took longer than `slow_ms` end to end, or
    if its id is in the `base_rate` share; in that order of reasons."""
    spans = list(spans)
    if not spans:
        raise ValueError("spans must hold at least one span of a trace, got none")
    trace_id = spans[0].trace_id
    if any(s.status == "error" for s in spans):
        return Decision(trace_id, True, "error", len(spans))
    if trace_duration_ms(spans) > slow_ms:
        return Decision(trace_id, True, "slow", len(spans))
    if in_base_share(trace_id, base_rate):
        return Decision(trace_id, True, "base", len(spans))
    return Decision(trace_id, False, "dropped", len(spans))


class TailSampler:
    """Buffers spans per trace, decides `decision_wait_s` after a trace's first span arrived.

    Feed spans with `add(span, now_s=...)`, then `poll(now_s=...)` returns the decisions that
    fell due (oldest first); kept spans go to `stored` (bounded, newest kept) and are counted
    in `spans_stored`. `flush()` decides everything still buffered (end of a run)."""

    def __init__(self, *, slow_ms: float, base_rate: float = 0.01, decision_wait_s: float = 5.0,
                 max_traces: int = 10_000, max_spans_per_trace: int = 1_000,
                 max_stored_spans: int = 100_000, decided_cache: int = 10_000):
        self.slow_ms = validate.number("slow_ms", slow_ms, 0.0)
        self.base_rate = _rate("base_rate", base_rate)
        self.decision_wait_s = validate.number("decision_wait_s", decision_wait_s, 0.0)
        self.max_traces = validate.integer("max_traces", max_traces, 1)
        self.max_spans_per_trace = validate.integer("max_spans_per_trace", max_spans_per_trace, 1)
        self.stored: deque = deque(maxlen=validate.integer("max_stored_spans",
                                                           max_stored_spans, 1))
        self._cache_size = validate.integer("decided_cache", decided_cache, 1)
        self._pending: OrderedDict = OrderedDict()   # trace_id -> (first_seen_s, [spans])
        self._decided: OrderedDict = OrderedDict()   # trace_id -> keep (bounded)
        self.spans_seen = self.spans_stored = self.dropped_early = self.spans_cut = 0
        self.kept_by_reason = {"error": 0, "slow": 0, "base": 0}
        self.traces_decided = 0

    @property
    def buffered_traces(self) -> int:
        return len(self._pending)

    def add(self, span, *, now_s: float) -> None:
        """Buffer one finished span (or store/drop it at once if its trace was decided)."""
        self.spans_seen += 1
        tid = span.trace_id
        if tid in self._decided:
            if self._decided[tid]:
                self._store([span])
            return
        entry = self._pending.get(tid)
        if entry is None:
            if len(self._pending) >= self.max_traces:
                old, _ = self._pending.popitem(last=False)
                self.dropped_early += 1
                self._remember(old, False)
            entry = self._pending[tid] = (now_s, [])
        if len(entry[1]) < self.max_spans_per_trace:
            entry[1].append(span)
        else:
            self.spans_cut += 1

    def poll(self, *, now_s: float) -> list[Decision]:
        """Decide every trace whose first span arrived `decision_wait_s` or more ago."""
        out = []
        while self._pending:
            tid, (first_s, spans) = next(iter(self._pending.items()))
            if now_s - first_s < self.decision_wait_s:
                break
            del self._pending[tid]
            out.append(self._decide(spans))
        return out

    def flush(self) -> list[Decision]:
        """Decide every buffered trace now."""
        out = [self._decide(spans) for _, spans in self._pending.values()]
        self._pending.clear()
        return out

    def _decide(self, spans) -> Decision:
        d = decide(spans, slow_ms=self.slow_ms, base_rate=self.base_rate)
        self.traces_decided += 1
        if d.keep:
            self.kept_by_reason[d.reason] += 1
            self._store(spans)
        self._remember(d.trace_id, d.keep)
        return d

    def _store(self, spans) -> None:
        self.stored.extend(spans)
        self.spans_stored += len(spans)

    def _remember(self, trace_id: str, keep: bool) -> None:
        self._decided[trace_id] = keep
        while len(self._decided) > self._cache_size:
            self._decided.popitem(last=False)
