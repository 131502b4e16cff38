"""RED metrics per route: Rate, Errors and Duration, as a service exposes them (chapter 07).

Tom Wilkie's RED method: for every service, count the requests (rate), the failed ones
(errors) and how long they took (duration, as a histogram, never an average). Here one `RED`
table belongs to one service and keeps one row per (route, method), where the route is the
*template* (``/items/{id}``, not ``/items/42``): labels taken from raw paths would grow without
bound (one time series per id), which is how real metrics systems fall over. The table also
caps its rows (`max_routes`); past the cap, new routes are counted under ``(other)``.

Each row keeps, all O(1) per request and fixed in size:
- requests and errors by status (0 = no HTTP answer: the connection was reset or the client
  hung up); an error is a 5xx, a 429 or no answer (`is_error`);
- the rate: requests per second over the last `rate_window_s`, from one-second bins;
- duration twice: counts per Prometheus bucket (`DURATION_BUCKETS_S`, cumulative ``le``
  buckets for /metrics) and a `LogHistogram` for percentiles within 1 %. A quantile computed
  from the ``le`` buckets (`prometheus_quantile`, what PromQL's histogram_quantile does) is
  only as fine as the bucket bounds: it interpolates linearly inside one bucket.

Pure: time comes from the caller (`now_s`) or the running loop. labkit.services.metrics_layer
feeds one table per service and renders it at GET /metrics.
"""
from __future__ import annotations

import asyncio
import bisect
import math

from labkit._core import validate
from labkit.obs.histogram import LogHistogram

__all__ = ["DURATION_BUCKETS_S", "METHODS", "OTHER_ROUTE", "RED", "RouteStats", "is_error",
           "prometheus_quantile"]

# Prometheus' default buckets, extended down to 1 ms and up to 30 s: labkit's injected delays
# run from 0 to 60 s, and a local request takes a few hundred µs.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                      10.0, 30.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_ROUTE = "(other)"


def is_error(status: int) -> bool:
    """A failed request for RED and SLOs: 5xx, 429 (throttled) or 0 (no answer at all).
    Other 4xx are the caller's mistake, not the service's failure."""
    return status == 0 or status >= 500 or status == 429


def prometheus_quantile(q: float, buckets) -> float:
    """The q-quantile (0 <= q <= 1) that PromQL's histogram_quantile computes from cumulative
    buckets [(le, count), ..., (inf, total)]: find the bucket holding rank q * total and
    interpolate linearly between its bounds (the first bucket starts at 0; a rank in the +Inf
    bucket gives the highest finite bound). NaN without requests or without an +Inf bucket."""
    q = validate.number("q", q, 0, 1)
    rows = sorted((float(le), float(c)) for le, c in buckets)
    if len(rows) < 2 or rows[-1][0] != math.inf or rows[-1][1] <= 0:
        return math.nan
    for i in range(1, len(rows)):                  # PromQL forces the counts monotonic
        rows[i] = (rows[i][0], max(rows[i][1], rows[i - 1][1]))
    rank = q * rows[-1][1]
    b = next(i for i, (_, c) in enumerate(rows) if c >= rank)
    if b == len(rows) - 1:
        return rows[-2][0]
    start, end, count = 0.0, rows[b][0], rows[b][1]
    if b == 0 and end <= 0:                        # a first bound at or below 0: nothing to split
        return end
    if b > 0:
        start, before = rows[b - 1]
        count, rank = count - before, rank - before
    return start + (end - start) * (rank / count if count else 0.0)


class RouteStats:
    """One row of the table: a (route, method) pair; read it, do not write it."""

    __slots__ = ("route", "method", "requests", "errors", "by_status", "bucket_counts",
                 "duration_sum_s", "histogram", "_bins", "_stamps", "_bin_s")

    def __init__(self, route: str, method: str, rate_window_s: float):
        self.route, self.method = route, method
        self.requests = self.errors = 0
        self.by_status: dict[int, int] = {}
        self.bucket_counts = [0] * (len(DURATION_BUCKETS_S) + 1)     # last one: +Inf only
        self.duration_sum_s = 0.0
        self.histogram = LogHistogram()
        n = max(1, math.ceil(rate_window_s))                          # one-second bins
        self._bin_s = rate_window_s / n
        self._bins = [0] * n
        self._stamps = [-1] * n

    def record(self, status: int, duration_s: float, now_s: float) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if is_error(status):
            self.errors += 1
        self.bucket_counts[bisect.bisect_left(DURATION_BUCKETS_S, duration_s)] += 1
        self.duration_sum_s += duration_s
        self.histogram.record(duration_s)
        k = int(now_s // self._bin_s)
        slot = k % len(self._bins)
        if self._stamps[slot] != k:
            self._stamps[slot], self._bins[slot] = k, 0
        self._bins[slot] += 1

    def rate_per_s(self, now_s: float) -> float:
        """Requests per second in the last rate window (whole bins up to the current one)."""
        k = int(now_s // self._bin_s)
        n = len(self._bins)
        recent = sum(c for c, s in zip(self._bins, self._stamps) if k - n < s <= k)
        return recent / (n * self._bin_s)

    def cumulative_buckets(self) -> list[tuple[float, int]]:
        """[(le, requests with duration <= le), ..., (inf, requests)] as Prometheus wants."""
        out, seen = [], 0
        for le, c in zip((*DURATION_BUCKETS_S, math.inf), self.bucket_counts):
            seen += c
            out.append((le, seen))
        return out


class RED:
    """Rate, errors and duration per (route, method) of one service; see the module docstring.

    `rate_window_s`: how far back `rate_per_s` looks (default 10 s); `max_routes`: rows kept
    before new routes go to ``(other)``."""

    def __init__(self, service: str, *, rate_window_s: float = 10.0, max_routes: int = 64):
        self.service = validate.text("service", service)
        self.rate_window_s = validate.number("rate_window_s", rate_window_s, 1, 3600, unit=" s")
        self.max_routes = validate.integer("max_routes", max_routes, 1, 10_000)
        self.rows: dict[tuple[str, str], RouteStats] = {}

    def record(self, route: str, method: str, status: int, duration_s: float, *,
               now_s: float | None = None) -> None:
        """Count one request: its route template, method, status (0 = no answer) and
        duration in seconds, finished at `now_s` (default: the running loop's time)."""
        if method not in METHODS:
            method = "OTHER"
        key = (route, method)
        row = self.rows.get(key)
        if row is None:
            if len(self.rows) >= self.max_routes:
                key = (OTHER_ROUTE, method)
                row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = RouteStats(key[0], method, self.rate_window_s)
        if now_s is None:
            now_s = asyncio.get_running_loop().time()
        row.record(status, duration_s, now_s)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rows.values())

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rows.values())

    def status_counts(self) -> dict[int, int]:
        """Requests by status over every route (compare with a service's status_counts)."""
        out: dict[int, int] = {}
        for r in self.rows.values():
            for status, c in r.by_status.items():
                out[status] = out.get(status, 0) + c
        return out

    def duration(self) -> LogHistogram:
        """Every route's durations merged into one histogram (merging buckets is exact,
        unlike averaging per-route percentiles)."""
        merged = LogHistogram()
        for r in self.rows.values():
            merged.merge(r.histogram)
        return merged

    def summary(self, *, now_s: float | None = None) -> list[dict]:
        """One dict per row: route, method, requests, errors, error_rate, rate_per_s and
        p50/p95/p99 in ms (durations since start or `reset`), busiest first."""
        if now_s is None:
            now_s = asyncio.get_running_loop().time()
        out = []
        for r in sorted(self.rows.values(), key=lambda r: -r.requests):
            p50, p95, p99 = r.histogram.percentiles([50, 95, 99])
            out.append({"service": self.service, "route": r.route, "method": r.method,
                        "requests": r.requests, "errors": r.errors,
                        "error_rate": r.errors / r.requests if r.requests else math.nan,
                        "rate_per_s": r.rate_per_s(now_s), "p50_ms": p50 * 1000,
                        "p95_ms": p95 * 1000, "p99_ms": p99 * 1000})
        return out

    def reset(self) -> None:
        """Forget every row."""
        self.rows.clear()

    def __repr__(self):
        return f"<RED {self.service} routes={len(self.rows)} requests={self.requests}>"
