"""Recording calls and summarising them: latency percentiles and error rate.

Defined in chapter 1; chapter 7 (observability) builds on it. Latencies are stored in
seconds and reported in milliseconds (``p50_ms`` ...), because people read latency in ms.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """One finished call as the caller saw it."""
    t: float               # when it finished, seconds on the loop clock
    latency_s: float
    ok: bool
    outcome: str           # "200", "503", "timeout", "ClientOSError", ...


def percentile(values, q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, like numpy's default."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q!r}")
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class Recorder:
    """Keeps the most recent `window` calls and summarises them."""

    def __init__(self, window: int = 200):
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive int (number of calls), got {window!r}")
        self.calls: collections.deque[Call] = collections.deque(maxlen=window)
        self.total = 0

    def record(self, call: Call) -> None:
        self.calls.append(call)
        self.total += 1

    def clear(self) -> None:
        self.calls.clear()

    def stats(self) -> dict:
        """n, p50_ms, p95_ms, p99_ms, mean_ms, error_rate over the window (NaN when empty).

        Percentiles cover every call, failed ones included: a timeout is a slow answer too.
        """
        lat = [c.latency_s * 1000 for c in self.calls]
        n = len(lat)
        errors = sum(not c.ok for c in self.calls)
        return {
            "n": n,
            "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
            "p99_ms": percentile(lat, 99),
            "mean_ms": sum(lat) / n if n else math.nan,
            "error_rate": errors / n if n else math.nan,
        }
