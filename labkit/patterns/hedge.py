"""Hedged requests: if the answer is late, ask a second replica and take whichever answers first.

Chapter 06 (performance), after "The Tail at Scale" (Dean & Barroso, 2013). Chapter 1 showed
why the tail matters: a page of N calls is slow if any call is slow (`labkit.labs.fanout`,
1 - (1 - p)^N). A hedge attacks p itself: send the call; if no answer after `hedge_after_s`
(a high percentile of the call's own latency, e.g. its p95, so only ~5 % of calls are
hedged), send the same call once more, to another replica; the first success wins and the
loser is cancelled, and its cancellation is awaited, so no task outlives the call.

Rules that keep a hedge safe:
- Only idempotent calls: the loser may already have done its work when it is cancelled, so
  the work is done twice. `hedged(..., idempotent=False)` is refused with ValueError.
- A hedge answers slowness, not failure: a call that fails before the hedge is sent raises at
  once (retrying is `labkit.patterns.retry`'s job, with its budget). An attempt that fails
  while another is still running is ignored: the other one may still answer.
- The extra load is bounded: at most `max_extra` hedges per call, and `HedgeStats` counts
  what was sent, so the extra share can be measured (`summary()["extra_share"]`).

Pure: time comes only from the running loop, so `hedged` runs unchanged on real sockets and
in labkit.sim's virtual time (chapter 06's reproduction of the paper uses it there).
"""
from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from labkit._core import validate
from labkit.obs import metrics

__all__ = ["hedged", "HedgeStats", "hedge_delay_s", "MAX_EXTRA"]

T = TypeVar("T")
MAX_EXTRA = 10            # hedges per call: more than a few only multiplies the load


@dataclass
class HedgeStats:
    """Running totals over every `hedged` call that was given this object.

    calls: hedged() calls started; attempts: calls to `call` (originals + hedges);
    hedges: extra attempts sent; hedge_wins: calls answered by a hedge, not the original;
    cancelled: losers cancelled after another attempt won; failed_attempts: attempts that
    raised; failed_calls: hedged() calls that raised (every attempt failed).
    """
    calls: int = 0
    attempts: int = 0
    hedges: int = 0
    hedge_wins: int = 0
    cancelled: int = 0
    failed_attempts: int = 0
    failed_calls: int = 0

    def summary(self) -> dict:
        """The counts, plus extra_share = hedges / calls (the extra load hedging added)."""
        return {"calls": self.calls, "attempts": self.attempts, "hedges": self.hedges,
                "hedge_wins": self.hedge_wins, "cancelled": self.cancelled,
                "failed_attempts": self.failed_attempts, "failed_calls": self.failed_calls,
                "extra_share": self.hedges / self.calls if self.calls else 0.0}


async def _stop(tasks: Iterable[asyncio.Task], wait_s: float) -> int:
    """Cancel `tasks` and wait (at most `wait_s`) until they have finished; how many were
    still running, i.e. really cancelled. Their outcomes are retrieved, so asyncio logs
    nothing about them."""
    running = [t for t in tasks if not t.done()]
    for t in running:
        t.cancel()
    if running:
        await asyncio.wait(running, timeout=wait_s)
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()
    return len(running)


async def hedged(call: Callable[[int], Awaitable[T]], *, hedge_after_s: float, idempotent: bool,
                 max_extra: int = 1, stats: HedgeStats | None = None,
                 cancel_wait_s: float = 5.0) -> T:
    """`await call(0)`, but if it has not answered after `hedge_after_s`, also start
    `call(1)` (and so on, up to `max_extra` hedges, one more every `hedge_after_s`); return the
    first success and cancel the others, awaiting their end (at most `cancel_wait_s` each).

    `call(attempt)` makes a new awaitable each time it is called; `attempt` is 0 for the
    original and 1.. for hedges (send a hedge to another replica, with its own request id).
    `idempotent` must be True: hedging runs the call more than once. If an attempt fails while
    another runs, the other is awaited; if every attempt started has failed, the last
    failure is raised (no hedge is sent after a failure: hedging is for slow calls, not for
    errors). `max_extra=0` makes it a plain call. `stats` (a `HedgeStats`) counts what was sent.
    Once every hedge is sent it waits as long as the attempts do: bound the whole call with a
    timeout (asyncio.timeout, a `Deadline`) as you would a plain call.
    """
    if idempotent is not True:
        raise ValueError(f"idempotent must be True to hedge, got {idempotent!r}: a hedge runs the "
                         "call twice (the loser may finish its work before it is cancelled), "
                         "so only hedge calls that are safe to repeat (GET, or a write with an "
                         "idempotency key)")
    if not callable(call):
        raise ValueError(f"call must be a function call(attempt) returning an awaitable, "
                         f"got {call!r}")
    hedge_after_s = validate.number("hedge_after_s", hedge_after_s, 0.0, unit=" seconds")
    max_extra = validate.integer("max_extra", max_extra, 0, MAX_EXTRA)
    cancel_wait_s = validate.number("cancel_wait_s", cancel_wait_s, 0.0, lo_open=True,
                                    unit=" seconds")
    if stats is not None and not isinstance(stats, HedgeStats):
        raise ValueError(f"stats must be a HedgeStats (or None), got {stats!r}")
    stats = stats if stats is not None else HedgeStats()
    stats.calls += 1
    tasks: dict[asyncio.Task, int] = {}          # task -> attempt number

    def start(attempt: int) -> None:
        aw = call(attempt)
        if not inspect.isawaitable(aw):
            raise ValueError(f"call({attempt}) must return an awaitable (make call an async "
                             f"def or a lambda returning a coroutine), got {aw!r}")
        stats.attempts += 1
        stats.hedges += attempt > 0
        tasks[asyncio.ensure_future(aw)] = attempt

    loop = asyncio.get_running_loop()
    last_error: BaseException | None = None
    try:
        start(0)
        next_hedge_at = loop.time() + hedge_after_s
        running = set(tasks)
        while running:
            more = len(tasks) <= max_extra
            done, running = await asyncio.wait(
                running, timeout=max(0.0, next_hedge_at - loop.time()) if more else None,
                return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=tasks.__getitem__):   # a tie goes to the earlier attempt
                if task.cancelled():                            # cancelled by someone else
                    last_error = asyncio.CancelledError(f"attempt {tasks[task]} was cancelled")
                    stats.failed_attempts += 1
                elif task.exception() is not None:
                    last_error = task.exception()
                    stats.failed_attempts += 1
                else:
                    stats.hedge_wins += tasks[task] > 0
                    # not `stats.cancelled += await ...`: that reads the count before the
                    # await, so concurrent calls sharing `stats` would lose each other's counts
                    losers = await _stop(list(running), cancel_wait_s)
                    stats.cancelled += losers
                    return task.result()
            if running and more and loop.time() >= next_hedge_at:   # slow: one more hedge
                start(len(tasks))
                next_hedge_at += hedge_after_s
                running = {t for t in tasks if not t.done()}
        stats.failed_calls += 1
        assert last_error is not None
        raise last_error
    finally:
        await _stop(list(tasks), cancel_wait_s)   # on cancellation or error: leave nothing behind


def hedge_delay_s(source: Any, *, percentile: float = 95.0) -> float:
    """The hedge delay: the `percentile` (0..100, e.g. 95) of the call's observed latency.

    At the p95, about 5 % of calls are still running when the delay runs out, so hedging adds
    about 5 % more requests: the share hedged is 1 - percentile/100. `source` is the latency
    sample in seconds: an iterable of numbers, a `labkit.obs.metrics.Recorder` (its recent
    calls), or anything with a `percentile(q)` method such as `labkit.obs.histogram.LogHistogram`.
    """
    percentile = validate.number("percentile", percentile, 0.0, 100.0)
    if hasattr(source, "percentile") and callable(source.percentile) \
            and not hasattr(source, "calls"):                    # a histogram
        value = source.percentile(percentile)
    else:
        if hasattr(source, "calls"):                             # a Recorder: its raw calls
            values = [c.latency_s for c in source.calls]
        elif isinstance(source, Iterable) and not isinstance(source, (str, bytes)):
            values = list(source)
        else:
            raise ValueError(f"source must be latencies in seconds (a list), a Recorder or a "
                             f"histogram, got {source!r}")
        if not values:
            raise ValueError("source has no latencies yet: measure some calls first")
        for v in values:
            validate.number("a latency in source", v, 0.0, unit=" seconds")
        value = metrics.percentile(values, percentile)          # linear interpolation
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"source gave no usable percentile ({value!r}): is it empty?")
    return float(value)
