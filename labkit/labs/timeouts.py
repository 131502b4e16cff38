"""Choosing a timeout from the callee's measured latency, and what retries add to the worst case.

Defined in chapter 05 (retries), section "Choosing a timeout". A timeout is a percentile
decision: set it just above the callee's p99 (or p99.9) and about 1 % (0.1 %) of healthy
calls time out — the ones a retry can rescue. `measure` gives those percentiles for any
async call, as the caller sees them. A retry policy then multiplies the caller's worst case:
`worst_case_s` adds every attempt's timeout and the longest wait the backoff can draw
before each retry (capped by the policy's `max_total_s`). A wait stretched by a server's
`Retry-After` is not included: it can be longer. Times are seconds inside labkit; the
percentiles are reported in ms (``p99_ms``).
"""
from __future__ import annotations

import asyncio
import random

from labkit._core import validate
from labkit.obs.metrics import percentile
from labkit.patterns.backoff import Backoff, Strategy

__all__ = ["measure", "longest_waits", "worst_case_s"]


async def measure(call, *, calls: int = 400, concurrency: int = 20, timeout_s: float = 30.0) -> dict:
    """Await ``call()`` `calls` times, at most `concurrency` at once, and summarise what the
    caller saw: {"n", "failed", "p50_ms", "p99_ms", "p999_ms", "max_ms"} over every call
    (failed ones included: a timeout is a slow answer too). Each call is stopped after
    `timeout_s` (a safety net; give `call` its own, shorter timeout)."""
    calls = validate.integer("calls", calls, lo=1, hi=100_000)
    concurrency = validate.integer("concurrency", concurrency, lo=1, hi=1000)
    timeout_s = validate.number("timeout_s", timeout_s, 0.0, 3600.0, lo_open=True, unit=" s")
    loop = asyncio.get_running_loop()
    todo = iter(range(calls))
    latencies_ms: list[float] = []
    failed = 0

    async def worker():
        nonlocal failed
        for _ in todo:                       # the workers share one iterator: calls in total
            start = loop.time()
            try:
                async with asyncio.timeout(timeout_s):
                    await call()
            except Exception:                # any failure counts; its latency counts too
                failed += 1
            latencies_ms.append((loop.time() - start) * 1000)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))
    return {"n": len(latencies_ms), "failed": failed,
            "p50_ms": percentile(latencies_ms, 50), "p99_ms": percentile(latencies_ms, 99),
            "p999_ms": percentile(latencies_ms, 99.9), "max_ms": max(latencies_ms)}


class _Ceiling(random.Random):
    """A 'generator' that always draws the top of the range: uniform(a, b) gives b."""

    def random(self) -> float:
        return 1.0


def longest_waits(strategy: Strategy, retries: int) -> list[float]:
    """The longest wait `strategy` can draw before each of the first `retries` retries,
    drawn in the same order as `labkit.patterns.retry.Retry` draws them."""
    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy must be a labkit.patterns.backoff strategy, got {strategy!r}")
    retries = validate.integer("retries", retries, lo=0, hi=10_000)
    b = Backoff(strategy, _Ceiling())
    return [b.next_delay() for _ in range(retries)]


def worst_case_s(policy) -> float:
    """The longest a caller can wait under the retry `policy` (a `Retry` with
    `attempt_timeout_s` set): every attempt times out, every backoff wait is the longest
    possible; capped by the policy's `max_total_s`."""
    timeout_s = getattr(policy, "attempt_timeout_s", None)
    if timeout_s is None:
        raise ValueError("worst_case_s needs a Retry with attempt_timeout_s set: without a "
                         "per-attempt timeout one attempt can take up to max_total_s")
    attempts = policy.max_attempts
    total = attempts * timeout_s + sum(longest_waits(policy.backoff, attempts - 1))
    return min(total, policy.max_total_s)
