"""Queueing models for the virtual-time simulator (chapters 05 and 06).

`SimService` is a queueing server (c workers, FIFO queue, rejection when full);
`poisson_arrivals` is an open-loop load source; `Monitor` samples queue length and goodput.
Latency distributions (`Fixed`, `Exponential`, `LogNormal`) draw from the run's seeded
generators (`labkit.sim.rng`). Times are seconds as floats (virtual seconds).
"""
from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, NamedTuple

from labkit.patterns.deadline import Deadline, DeadlineExceeded
from labkit.patterns.errors import ErrorKind, ServiceError
from labkit.sim.loop import rng

__all__ = ["Fixed", "Exponential", "LogNormal", "RequestRecord", "SimService",
           "poisson_arrivals", "Monitor"]


# -- latency distributions ----------------------------------------------------------------

_Z99 = 2.3263478740408408  # standard normal 0.99 quantile


@dataclass(frozen=True)
class Fixed:
    """Always `value_s` seconds."""

    value_s: float

    def sampler(self, r) -> Callable[[], float]:
        v = float(self.value_s)
        return lambda: v

    @property
    def mean_s(self) -> float:
        return float(self.value_s)


@dataclass(frozen=True)
class Exponential:
    """Exponential service time with mean `mean_s` (the M in M/M/1)."""

    mean_s: float

    def __post_init__(self):
        if not self.mean_s > 0:
            raise ValueError(f"mean_s must be > 0 seconds, got {self.mean_s!r}")

    def sampler(self, r) -> Callable[[], float]:
        rate = 1.0 / self.mean_s
        expo = r.expovariate
        return lambda: expo(rate)


@dataclass(frozen=True)
class LogNormal:
    """exp(Normal(mu, sigma)); build it from percentiles with `LogNormal.from_p50_p99`."""

    mu: float
    sigma: float

    @classmethod
    def from_p50_p99(cls, p50_s: float, p99_s: float) -> "LogNormal":
        if not p50_s > 0:
            raise ValueError(f"p50_s must be > 0 seconds, got {p50_s!r}")
        if not p99_s > p50_s:
            raise ValueError(f"p99_s must be > p50_s ({p50_s}), got {p99_s!r}")
        return cls(math.log(p50_s), (math.log(p99_s) - math.log(p50_s)) / _Z99)

    @property
    def mean_s(self) -> float:
        return math.exp(self.mu + self.sigma ** 2 / 2)

    def sampler(self, r) -> Callable[[], float]:
        gauss, exp, mu, sigma = r.gauss, math.exp, self.mu, self.sigma
        return lambda: exp(gauss(mu, sigma))


def _as_latency(latency):
    if isinstance(latency, (int, float)) and not isinstance(latency, bool):
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        return Fixed(float(latency))
    if hasattr(latency, "sampler"):
        return latency
    raise ValueError(f"latency must be seconds (float) or Fixed/Exponential/LogNormal, got {latency!r}")


# -- queueing service ---------------------------------------------------------------------

class RequestRecord(NamedTuple):
    """One request as the server saw it (times in virtual seconds)."""

    id: int
    arrival: float
    start: float  # service start (== arrival for rejections)
    end: float  # service end (== start when rejected or dropped)
    status: int  # 200 ok, 500 error, 503 rejected (queue full), 504 dropped (deadline passed)
    client: str  # what the caller saw: ok, error, rejected, expired, timeout, cancelled


class _Job:
    __slots__ = ("id", "arrival", "fut", "timer", "deadline", "start")

    def __init__(self, id, arrival, fut, deadline):
        self.id = id
        self.arrival = arrival
        self.fut = fut
        self.timer = None
        self.deadline = deadline
        self.start = arrival


class SimService:
    """A server with `workers` parallel workers and a FIFO queue of at most `queue_limit`.

    Each request takes a `latency` draw (seconds, or Fixed/Exponential/LogNormal) of one
    worker's time and fails with probability `error_rate` (HTTP 500). A full queue rejects at
    once (503, definite). The server keeps working on requests whose caller timed out (as a
    real one does) unless the caller propagated a `Deadline`, in which case queued work whose
    deadline passed is dropped (504) without using a worker.
    """

    def __init__(self, name: str, *, workers: int = 1, queue_limit: int | None = None,
                 latency=0.01, error_rate: float = 0.0, seed: int | None = None,
                 record: bool = True):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if queue_limit is not None and (isinstance(queue_limit, bool) or not isinstance(queue_limit, int)
                                        or queue_limit < 0):
            raise ValueError(f"queue_limit must be an int >= 0 or None (unbounded), got {queue_limit!r}")
        if not (isinstance(error_rate, (int, float)) and 0 <= error_rate <= 1):
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate!r}")
        self.name = name
        self.workers = workers
        self.queue_limit = queue_limit
        self.latency = _as_latency(latency)
        self.error_rate = float(error_rate)
        self.record = record
        self.rng = rng(f"service:{name}", seed)
        self._draw_latency = self.latency.sampler(self.rng)
        self._random = self.rng.random
        self.busy = 0
        self._queue: deque[_Job] = deque()
        self._next_id = 0
        self.records: list[RequestRecord] = []
        # cumulative counters (read by Monitor)
        self.arrived = 0
        self.completed = 0  # left a worker (ok or error)
        self.delivered_ok = 0  # successes the caller actually received (goodput)
        self.rejected = 0
        self.dropped = 0
        self.timed_out = 0
        self.busy_time = 0.0

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def in_system(self) -> int:
        return self.busy + len(self._queue)

    def submit(self, timeout_s: float | None = None, *,
               deadline: Deadline | None = None) -> asyncio.Future:
        """Send one request; the future resolves to its id or fails with a ServiceError.

        Callback-based (no Task per request), which keeps the simulator fast.
        """
        loop = asyncio.get_running_loop()
        t = loop.time()
        fut = loop.create_future()
        self._next_id += 1
        job = _Job(self._next_id, t, fut, None if deadline is None else deadline.at)
        self.arrived += 1
        if timeout_s is not None or deadline is not None:
            give_up = t + timeout_s if timeout_s is not None else job.deadline
            if deadline is not None and timeout_s is not None:
                give_up = min(give_up, job.deadline)
            job.timer = loop.call_at(give_up, self._expire, job)
        if self.busy < self.workers:
            self._start(loop, job, t)
        elif self.queue_limit is None or len(self._queue) < self.queue_limit:
            self._queue.append(job)
        else:
            self.rejected += 1
            if job.timer is not None:
                job.timer.cancel()
            if self.record:
                self.records.append(RequestRecord(job.id, t, t, t, 503, "rejected"))
            fut.set_exception(ServiceError(ErrorKind.UNAVAILABLE, f"{self.name}: queue full",
                                           status=503))
        return fut

    async def call(self, timeout_s: float | None = None, *, deadline: Deadline | None = None) -> int:
        """await one request (see `submit`); raises ServiceError on error/rejection/timeout."""
        return await self.submit(timeout_s, deadline=deadline)

    def _start(self, loop, job, t):
        self.busy += 1
        job.start = t
        loop.call_at(t + self._draw_latency(), self._finish, job)

    def _expire(self, job):
        fut = job.fut
        if not fut.done():
            self.timed_out += 1
            fut.set_exception(ServiceError(ErrorKind.TIMEOUT, f"{self.name}: no reply in time"))

    def _finish(self, job):
        loop = asyncio.get_running_loop()
        t = loop.time()
        self.busy -= 1
        self.completed += 1
        self.busy_time += t - job.start
        failed = self._random() < self.error_rate
        fut = job.fut
        if fut.done():
            client = "cancelled" if fut.cancelled() else "timeout"
        else:
            if job.timer is not None:
                job.timer.cancel()
            if failed:
                client = "error"
                fut.set_exception(ServiceError(ErrorKind.INTERNAL, f"{self.name}: internal error",
                                               status=500))
            else:
                client = "ok"
                self.delivered_ok += 1
                fut.set_result(job.id)
        if self.record:
            self.records.append(RequestRecord(job.id, job.arrival, job.start, t,
                                              500 if failed else 200, client))
        self._next(loop, t)

    def _next(self, loop, t):
        q = self._queue
        while q and self.busy < self.workers:
            job = q.popleft()
            if job.deadline is not None and t >= job.deadline:
                self.dropped += 1  # deadline propagated: nobody waits for this any more
                if not job.fut.done():
                    job.fut.set_exception(DeadlineExceeded(f"{self.name}: deadline passed in queue"))
                if self.record:
                    self.records.append(RequestRecord(job.id, job.arrival, t, t, 504, "expired"))
                continue
            self._start(loop, job, t)

    def summary(self) -> dict:
        return {"name": self.name, "workers": self.workers, "queue_limit": self.queue_limit,
                "arrived": self.arrived, "completed": self.completed,
                "delivered_ok": self.delivered_ok, "rejected": self.rejected,
                "dropped": self.dropped, "timed_out": self.timed_out,
                "busy_time_s": self.busy_time, "in_system": self.in_system()}


# -- load and measurement -----------------------------------------------------------------

async def poisson_arrivals(rate_per_s: float, duration_s: float,
                           request: Callable[[], Awaitable[Any]], *, seed: int | None = None,
                           name: str = "arrivals") -> list:
    """Start `request()` at Poisson arrival times for `duration_s`; wait for all of them.

    Returns the results in arrival order (an exception object where a request raised).
    """
    if not (isinstance(rate_per_s, (int, float)) and rate_per_s > 0):
        raise ValueError(f"rate_per_s must be > 0 arrivals per second, got {rate_per_s!r}")
    if not (isinstance(duration_s, (int, float)) and duration_s >= 0):
        raise ValueError(f"duration_s must be >= 0 seconds, got {duration_s!r}")
    loop = asyncio.get_running_loop()
    expo = rng(name, seed).expovariate
    end = loop.time() + duration_s
    results: list = []
    state = [0, True]  # pending requests, still generating
    done = loop.create_future()
    running: set[asyncio.Task] = set()

    def finished(task):
        running.discard(task)
        state[0] -= 1
        if task.cancelled():
            results[task.labkit_index] = asyncio.CancelledError()
        else:
            exc = task.exception()
            results[task.labkit_index] = exc if exc is not None else task.result()
        if state[0] == 0 and not state[1] and not done.done():
            done.set_result(None)

    def arrive():
        task = loop.create_task(request())
        task.labkit_index = len(results)
        results.append(None)
        state[0] += 1
        running.add(task)
        task.add_done_callback(finished)
        schedule(loop.time())

    def schedule(t):
        nxt = t + expo(rate_per_s)
        if nxt < end:
            loop.call_at(nxt, arrive)
        else:
            state[1] = False
            if state[0] == 0 and not done.done():
                done.set_result(None)

    schedule(loop.time())
    try:
        await done
    except asyncio.CancelledError:
        for t in list(running):
            t.cancel()
        raise
    return results


class Monitor:
    """Samples services every `every_s` virtual seconds: queue, busy, goodput, throughput.

    Start it inside the simulation (`Monitor([svc], every_s=1.0)`); read `rows` afterwards.
    """

    def __init__(self, services, every_s: float = 1.0):
        if not (isinstance(every_s, (int, float)) and every_s > 0):
            raise ValueError(f"every_s must be > 0 seconds, got {every_s!r}")
        self.services = list(services) if isinstance(services, (list, tuple)) else [services]
        self.every_s = float(every_s)
        self.rows: list[dict] = []
        self._loop = asyncio.get_running_loop()
        self._last = {s.name: (s.delivered_ok, s.completed) for s in self.services}
        self._handle = self._loop.call_later(self.every_s, self._sample)
        self._stopped = False

    def _sample(self):
        t = self._loop.time()
        for s in self.services:
            ok0, done0 = self._last[s.name]
            self.rows.append({"t": t, "service": s.name, "queue": s.queue_length, "busy": s.busy,
                              "in_system": s.in_system(),
                              "goodput_per_s": (s.delivered_ok - ok0) / self.every_s,
                              "throughput_per_s": (s.completed - done0) / self.every_s})
            self._last[s.name] = (s.delivered_ok, s.completed)
        if not self._stopped:
            self._handle = self._loop.call_later(self.every_s, self._sample)

    def stop(self) -> None:
        self._stopped = True
        self._handle.cancel()

    def summary(self) -> dict:
        """Per service: mean queue, busy workers and goodput over the samples so far."""
        return {s.name: {"samples": sum(1 for r in self.rows if r["service"] == s.name),
                         "mean_queue": self.mean("queue", s.name),
                         "mean_busy": self.mean("busy", s.name),
                         "mean_goodput_per_s": self.mean("goodput_per_s", s.name)}
                for s in self.services}

    def mean(self, column: str, service: str | None = None) -> float:
        values = [r[column] for r in self.rows if service is None or r["service"] == service]
        return sum(values) / len(values) if values else float("nan")
