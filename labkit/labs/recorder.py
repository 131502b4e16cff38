"""The tutorial's metrics collector as a measured baseline, and why percentiles do not average.

Chapter 06 (the metrics recorder) and 07 (metrics you can trust). `MetricsCollector` below is
the tutorial's, kept as it is (comments translated; it is the lesson, not an answer). On every
`record_request` it copies the last 100 samples, filters and sorts them, and then rebuilds
the *whole* sample list to drop expired ones. That last scan is what grows: with an hour of
retention at 30 requests/s the list holds 10^5 samples and every record walks all of them.
Its numbers mislead too: "p99" comes from the last 100 requests of *all* services (a service
with 1 % of the traffic gets its p99 from about one sample), a request without a status code
counts as failed, and expiry reads the wall clock (`time.time`), which can jump.

`record_cost` measures µs per record of both at a given number of samples (time.perf_counter,
a lab measurement, not a test); benchmarks/bench_recorder.py runs it longer.

`tutorial_collector_misleads` shows two of its wrong numbers on mixed traffic (chapter 07):
a rare service's "p99" from the one or two of its samples among the last 100 requests of all
services, and 404s (the caller's mistake) counted as the service's failures; labkit's RED
table (labkit.obs.red) is fed the same requests for comparison.

`average_of_percentiles` is the lesson of chapter 07: instances with different loads, each
with its own p99. The mean of their p99s is not the p99 of the service; merging their
histograms (buckets add up exactly) is.
"""
from __future__ import annotations

import asyncio
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from labkit._core import seeding, validate
from labkit.obs.histogram import LogHistogram
from labkit.obs.metrics import Call, Recorder, percentile
from labkit.obs.red import RED

__all__ = ["RequestMetrics", "ServiceMetrics", "MetricsCollector", "record_cost",
           "record_cost_curve", "tutorial_collector_misleads", "average_of_percentiles"]


# ---- the tutorial's collector (source_tutorial_zh.md, "性能指标收集"), unchanged --------------
@dataclass
class RequestMetrics:
    """Metrics of one request."""
    timestamp: float
    duration: float
    status_code: Optional[int] = None
    error_type: Optional[str] = None
    service_name: str = ""
    endpoint: str = ""


@dataclass
class ServiceMetrics:
    """Metrics of one service."""
    service_name: str
    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    avg_response_time: float = 0.0
    p50_response_time: float = 0.0
    p95_response_time: float = 0.0
    p99_response_time: float = 0.0
    throughput: float = 0.0
    error_rate: float = 0.0
    last_updated: float = field(default_factory=time.time)


class MetricsCollector:
    """Metrics collector (the tutorial's)."""

    def __init__(self, retention_period: int = 3600):  # 1 hour
        self.retention_period = retention_period
        self.request_metrics: List[RequestMetrics] = []
        self.service_metrics: Dict[str, ServiceMetrics] = {}
        self.lock = asyncio.Lock()

    async def record_request(self, metrics: RequestMetrics):
        """Record one request's metrics."""
        async with self.lock:
            self.request_metrics.append(metrics)

            # update the service's metrics
            service_name = metrics.service_name
            if service_name not in self.service_metrics:
                self.service_metrics[service_name] = ServiceMetrics(
                    service_name=service_name
                )

            service_metrics = self.service_metrics[service_name]
            service_metrics.total_requests += 1

            if metrics.status_code and 200 <= metrics.status_code < 400:
                service_metrics.successful_requests += 1
            else:
                service_metrics.failed_requests += 1

            # update the response-time statistics
            await self._update_response_time_stats(service_metrics, metrics.duration)

            # drop expired metrics
            await self._cleanup_old_metrics()

    async def _update_response_time_stats(self, service_metrics: ServiceMetrics, duration: float):
        """Update the response-time statistics."""
        # response times of the last 100 requests
        recent_durations = [
            m.duration for m in self.request_metrics[-100:]
            if m.service_name == service_metrics.service_name
        ]

        if recent_durations:
            service_metrics.avg_response_time = statistics.mean(recent_durations)
            service_metrics.p50_response_time = statistics.median(recent_durations)
            service_metrics.p95_response_time = self._calculate_percentile(recent_durations, 95)
            service_metrics.p99_response_time = self._calculate_percentile(recent_durations, 99)

    def _calculate_percentile(self, data: List[float], percentile: int) -> float:
        """Compute a percentile."""
        if not data:
            return 0.0

        sorted_data = sorted(data)
        index = (percentile / 100) * (len(sorted_data) - 1)

        if index.is_integer():
            return sorted_data[int(index)]
        else:
            lower = sorted_data[int(index)]
            upper = sorted_data[int(index) + 1]
            return lower + (upper - lower) * (index - int(index))

    async def _cleanup_old_metrics(self):
        """Drop expired metrics."""
        cutoff_time = time.time() - self.retention_period

        # rebuild the request list
        self.request_metrics = [
            m for m in self.request_metrics
            if m.timestamp > cutoff_time
        ]

    async def get_service_metrics(self, service_name: str) -> Optional[ServiceMetrics]:
        """One service's metrics."""
        async with self.lock:
            return self.service_metrics.get(service_name)

    async def get_all_metrics(self) -> Dict[str, ServiceMetrics]:
        """Every service's metrics."""
        async with self.lock:
            return self.service_metrics.copy()


# ---- measuring it against labkit's Recorder -------------------------------------------------
def _drive(coro):
    """Run a coroutine that never has to wait (an uncontended asyncio.Lock) to its end,
    without an event loop, so the measurement also runs inside a notebook's running loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the coroutine had to wait: it cannot be driven without a loop")


def _latencies_s(n: int, seed: int | None) -> list[float]:
    r = seeding.rng("recorder-lab:latencies", seed)
    return [r.lognormvariate(math.log(0.02), 0.6) for _ in range(n)]


def record_cost(samples: int, *, tutorial_records: int = 50, recorder_records: int = 20_000,
                seed: int | None = None) -> dict:
    """µs per record with `samples` already held: the tutorial's collector (retention 1 h, so
    none expire) against labkit's Recorder with a window of `samples` calls (each record also
    takes the oldest call out of its histogram). Wall-clock time.perf_counter, one run each:
    expect noise on a shared machine."""
    samples = validate.integer("samples", samples, 1, 2_000_000)
    tutorial_records = validate.integer("tutorial_records", tutorial_records, 0, 1_000_000)
    recorder_records = validate.integer("recorder_records", recorder_records, 1, 10_000_000)
    lat = _latencies_s(samples + max(tutorial_records, recorder_records), seed)
    out = {"samples": samples, "tutorial_records": tutorial_records,
           "recorder_records": recorder_records, "tutorial_us": math.nan}
    if tutorial_records:
        collector = MetricsCollector()
        now = time.time()
        collector.request_metrics = [RequestMetrics(now, d, 200, None, "users", "GET /users")
                                     for d in lat[:samples]]
        todo = [RequestMetrics(now, d, 200, None, "users", "GET /users")
                for d in lat[samples:samples + tutorial_records]]
        start = time.perf_counter()
        for m in todo:
            _drive(collector.record_request(m))
        out["tutorial_us"] = (time.perf_counter() - start) / tutorial_records * 1e6
    recorder = Recorder(window=samples)
    calls = [Call(0.0, d, True, "200") for d in lat]
    for c in calls[:samples]:
        recorder.record(c)
    todo = calls[samples:samples + recorder_records]
    while len(todo) < recorder_records:
        todo += todo[:recorder_records - len(todo)]
    start = time.perf_counter()
    for c in todo:
        recorder.record(c)
    out["recorder_us"] = (time.perf_counter() - start) / recorder_records * 1e6
    out["speedup"] = out["tutorial_us"] / out["recorder_us"]
    out["histogram_buckets"] = recorder.histogram.bucket_count
    return out


def record_cost_curve(samples=(1_000, 10_000, 30_000, 100_000), *, tutorial_records: int = 20,
                      recorder_records: int = 5_000, seed: int | None = None) -> list[dict]:
    """`record_cost` at each number of samples (the notebook's chart)."""
    return [record_cost(n, tutorial_records=tutorial_records,
                        recorder_records=recorder_records, seed=seed) for n in samples]


def tutorial_collector_misleads(*, requests: int = 1_000, users_share: float = 0.04,
                                not_found_share: float = 0.25, seed: int | None = None) -> dict:
    """The tutorial's collector and a RED table fed the same seeded traffic: "orders" (fast,
    most requests) and "users" (`users_share` of them, slower; `not_found_share` of its
    requests ask for ids that do not exist and get 404). Returns, for users: "requests",
    "not_found", the collector's "collector_p99_ms" and "collector_samples" (users' requests
    among the last 100 of all services, which its p99 is computed from), "collector_failed"
    (it counts every status outside 200-399), and RED's "p99_ms" (every users request, within
    1 %) and "errors" (5xx, 429, no answer). Latencies are drawn, not measured (no clock);
    the collector's p99 is the one it last computed (at users' last request)."""
    requests = validate.integer("requests", requests, 100, 100_000)
    users_share = validate.number("users_share", users_share, 0, 0.5, lo_open=True)
    not_found_share = validate.number("not_found_share", not_found_share, 0, 1)
    r = seeding.rng("recorder-lab:mixed-traffic", seed)
    collector, red = MetricsCollector(), RED("users")
    now = time.time()                                 # the collector's expiry reads the wall clock
    stream = []
    for _ in range(requests):
        if r.random() < users_share:
            status = 404 if r.random() < not_found_share else 200
            stream.append(("users", r.lognormvariate(math.log(0.020), 0.8), status))
        else:
            stream.append(("orders", r.lognormvariate(math.log(0.005), 0.5), 200))
    samples = 0
    for service, duration_s, status in stream:
        _drive(collector.record_request(RequestMetrics(now, duration_s, status, None, service,
                                                       f"GET /{service}/{{id}}")))
        if service == "users":
            red.record("/users/{id}", "GET", status, duration_s, now_s=0.0)
            samples = sum(m.service_name == "users" for m in collector.request_metrics[-100:])
    users = collector.service_metrics.get("users")
    row = red.summary(now_s=0.0)[0] if red.rows else None
    return {"requests": requests,
            "users": {"requests": red.requests,
                      "not_found": red.status_counts().get(404, 0),
                      "collector_p99_ms": users.p99_response_time * 1000 if users else math.nan,
                      "collector_samples": samples,
                      "collector_failed": users.failed_requests if users else 0,
                      "p99_ms": row["p99_ms"] if row else math.nan,
                      "errors": red.errors}}


def average_of_percentiles(*, loads=(0.2, 0.4, 0.6, 0.9), service_time_ms: float = 10.0,
                           requests_at_full_load: int = 20_000, q: float = 99.0,
                           seed: int | None = None) -> dict:
    """Instances of one service under different loads (utilisation rho), each answering
    requests_at_full_load * rho requests with M/M/1 response times (exponential, mean
    service_time_ms / (1 - rho)). Returns each instance's q-th percentile, their mean (what a
    dashboard averaging per-instance p99s shows), the q-th percentile of the merged
    histograms and the exact one over every request (all in ms)."""
    loads = tuple(validate.number("loads", x, 0, 1, lo_open=True, hi_open=True) for x in loads)
    if not loads:
        raise ValueError("loads must name at least one instance load, got ()")
    service_time_ms = validate.number("service_time_ms", service_time_ms, 0, 60_000,
                                      lo_open=True, unit=" ms")
    requests_at_full_load = validate.integer("requests_at_full_load", requests_at_full_load,
                                             10, 2_000_000)
    q = validate.number("q", q, 0, 100)
    merged = LogHistogram()
    every, instances = [], []
    for i, rho in enumerate(loads):
        r = seeding.rng(f"recorder-lab:instance:{i}", seed)
        mean_s = service_time_ms / 1000 / (1 - rho)
        xs = [r.expovariate(1 / mean_s) for _ in range(max(1, round(requests_at_full_load * rho)))]
        h = LogHistogram()
        for x in xs:
            h.record(x)
        merged.merge(h)
        every += xs
        instances.append({"instance": i, "load": rho, "requests": len(xs),
                          f"p{q:g}_ms": h.percentile(q) * 1000})
    mean_of = sum(x[f"p{q:g}_ms"] for x in instances) / len(instances)
    exact = percentile(every, q) * 1000
    merged_q = merged.percentile(q) * 1000
    return {"q": q, "instances": instances, "mean_of_percentiles_ms": mean_of,
            "merged_ms": merged_q, "exact_ms": exact,
            "merged_error": abs(merged_q - exact) / exact,
            "mean_of_percentiles_error": abs(mean_of - exact) / exact}
