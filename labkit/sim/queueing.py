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

from labkit._core import validate
from labkit.patterns.deadline import Deadline, DeadlineExceeded
from labkit.patterns.errors import ErrorKind, ServiceError
from labkit.sim.loop import rng

__all__ = ["Fixed", "Exponential", "LogNormal", "RequestRecord", "SimService",
           "poisson_arrivals", "poisson_customers", "Monitor"]


# -- latency distributions ----------------------------------------------------------------

_Z99 = 2.3263478740408408  # standard normal 0.99 quantile


def _store(obj, name: str, value: float) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclass: keep the checked float


@dataclass(frozen=True)
class Fixed:
    """Always `value_s` seconds (finite, >= 0)."""

    value_s: float

    def __post_init__(self):
        _store(self, "value_s", validate.number("value_s", self.value_s, 0.0, unit=" seconds"))

    def sampler(self, r) -> Callable[[], float]:
        v = float(self.value_s)
        return lambda: v

    @property
    def mean_s(self) -> float:
        return float(self.value_s)


@dataclass(frozen=True)
class Exponential:
    """Exponential service time with mean `mean_s` (the M in M/M/1; finite, > 0)."""

    mean_s: float

    def __post_init__(self):
        _store(self, "mean_s", validate.number("mean_s", self.mean_s, 0.0, lo_open=True,
                                               unit=" seconds"))

    def sampler(self, r) -> Callable[[], float]:
        rate = 1.0 / self.mean_s
        expo = r.expovariate
        return lambda: expo(rate)


@dataclass(frozen=True)
class LogNormal:
    """exp(Normal(mu, sigma)); build it from percentiles with `LogNormal.from_p50_p99`."""

    mu: float
    sigma: float

    def __post_init__(self):
        _store(self, "mu", validate.number("mu", self.mu, -50.0, 50.0, unit=" (log seconds)"))
        _store(self, "sigma", validate.number("sigma", self.sigma, 0.0, 10.0))

    @classmethod
    def from_p50_p99(cls, p50_s: float, p99_s: float) -> "LogNormal":
        p50_s = validate.number("p50_s", p50_s, 0.0, lo_open=True, unit=" seconds")
        p99_s = validate.number("p99_s", p99_s, p50_s, lo_open=True,
                                unit=" seconds (above p50_s)")
        return cls(math.log(p50_s), (math.log(p99_s) - math.log(p50_s)) / _Z99)

    @property
    def mean_s(self) -> float:
        return math.exp(self.mu + self.sigma ** 2 / 2)

    def sampler(self, r) -> Callable[[], float]:
        gauss, exp, mu, sigma = r.gauss, math.exp, self.mu, self.sigma
        return lambda: exp(gauss(mu, sigma))


def _as_latency(latency):
    if hasattr(latency, "sampler"):
        return latency
    if isinstance(latency, (int, float)) and not isinstance(latency, bool):
        return Fixed(validate.number("latency", latency, 0.0, unit=" seconds"))
    raise ValueError(f"latency must be seconds (a finite number >= 0) or a Fixed/Exponential/"
                     f"LogNormal, got {latency!r}")


def _timeout(timeout_s):
    """`timeout_s` as a finite float >= 0, or None (the fast path skips the generic check)."""
    if timeout_s is None or (type(timeout_s) is float and 0.0 <= timeout_s < math.inf):
        return timeout_s
    return validate.optional_number("timeout_s", timeout_s, 0.0, unit=" seconds")


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

    With `record=True` it keeps a `RequestRecord` per request in `records`, the first
    `max_records` of them (later ones are only counted in `records_dropped`); the counters
    (`arrived`, `completed`, ... see `summary`) always cover every request.
    """

    def __init__(self, name: str, *, workers: int = 1, queue_limit: int | None = None,
                 latency=0.01, error_rate: float = 0.0, seed: int | None = None,
                 record: bool = True, max_records: int = 1_000_000):
        self.workers = validate.integer("workers", workers, 1)
        if queue_limit is not None:
            try:
                queue_limit = validate.integer("queue_limit", queue_limit, 0)
            except ValueError as e:
                raise ValueError(f"{e} (or None: unbounded)") from None
        self.queue_limit = queue_limit
        self.latency = _as_latency(latency)
        self.error_rate = validate.number("error_rate", error_rate, 0.0, 1.0)
        self.record = validate.boolean("record", record)
        self.max_records = validate.integer("max_records", max_records, 0)
        self.records_dropped = 0
        self.name = name
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
        timeout_s = _timeout(timeout_s)
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
                self._keep(RequestRecord(job.id, t, t, t, 503, "rejected"))
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
            self._keep(RequestRecord(job.id, job.arrival, job.start, t, 500 if failed else 200,
                                     client))
        self._next(loop, t)

    def _keep(self, record: RequestRecord) -> None:
        if len(self.records) < self.max_records:
            self.records.append(record)
        else:
            self.records_dropped += 1

    def _next(self, loop, t):
        q = self._queue
        while q and self.busy < self.workers:
            job = q.popleft()
            if job.deadline is not None and t >= job.deadline:
                self.dropped += 1  # deadline propagated: nobody waits for this any more
                if not job.fut.done():
                    job.fut.set_exception(DeadlineExceeded(f"{self.name}: deadline passed in queue"))
                if self.record:
                    self._keep(RequestRecord(job.id, job.arrival, t, t, 504, "expired"))
                continue
            self._start(loop, job, t)

    def summary(self) -> dict:
        return {"name": self.name, "workers": self.workers, "queue_limit": self.queue_limit,
                "arrived": self.arrived, "completed": self.completed,
                "delivered_ok": self.delivered_ok, "rejected": self.rejected,
                "dropped": self.dropped, "timed_out": self.timed_out,
                "records_dropped": self.records_dropped,
                "busy_time_s": self.busy_time, "in_system": self.in_system()}


# -- load and measurement -----------------------------------------------------------------

async def poisson_arrivals(rate_per_s: float, duration_s: float,
                           request: Callable[[], Awaitable[Any]], *, seed: int | None = None,
                           name: str = "arrivals", keep_results: bool = True) -> list | int:
    """Start `request()` at Poisson arrival times for `duration_s`; wait for all of them.

    Returns the results in arrival order (an exception object where a request raised). With
    `keep_results=False` it returns only how many requests it started and keeps nothing per
    request (memory bounded by the requests in flight: use it for long runs, and count what
    you need inside `request`); an exception escaping `request` is then a bug, raised once all
    requests have finished.
    """
    rate_per_s = validate.number("rate_per_s", rate_per_s, 0.0, lo_open=True,
                                 unit=" arrivals per second")
    duration_s = validate.number("duration_s", duration_s, 0.0, unit=" seconds")
    keep = validate.boolean("keep_results", keep_results)
    loop = asyncio.get_running_loop()
    expo = rng(name, seed).expovariate
    end = loop.time() + duration_s
    results: list = []
    state = [0, True, 0, None]  # pending requests, still generating, started, first error
    done = loop.create_future()
    running: set[asyncio.Task] = set()

    def finished(task):
        running.discard(task)
        state[0] -= 1
        if not keep:
            if not task.cancelled() and task.exception() is not None and state[3] is None:
                state[3] = task.exception()
        elif task.cancelled():
            results[task.labkit_index] = asyncio.CancelledError()
        else:
            exc = task.exception()
            results[task.labkit_index] = exc if exc is not None else task.result()
        if state[0] == 0 and not state[1] and not done.done():
            done.set_result(None)

    def arrive():
        task = loop.create_task(request())
        if keep:
            task.labkit_index = len(results)
            results.append(None)
        state[0] += 1
        state[2] += 1
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
    if state[3] is not None:
        raise state[3]
    return results if keep else state[2]


async def poisson_customers(service: SimService, rate_per_s: float, customers: int, *,
                            on_response: Callable[[float, bool], None], seed: int | None = None,
                            name: str = "customers") -> int:
    """Send `customers` requests straight to `service` at Poisson times; wait for all replies.

    For queueing theory's long runs (chapter 06): callbacks instead of a Task per request,
    about 1.6x the rate of `poisson_arrivals`, and nothing kept per request. Each answered
    request calls ``on_response(response_s, waited)``, in completion order: its time in the
    system (arrival to end of service) and whether it found every worker busy (it queued).
    Returns how many requests failed (errors, rejections by a full queue).
    """
    if not isinstance(service, SimService):
        raise ValueError(f"service must be a SimService, got {service!r}")
    rate_per_s = validate.number("rate_per_s", rate_per_s, 0.0, lo_open=True,
                                 unit=" arrivals per second")
    customers = validate.integer("customers", customers, 1)
    if not callable(on_response):
        raise ValueError(f"on_response must be callable(response_s, waited), got {on_response!r}")
    loop = asyncio.get_running_loop()
    expo = rng(name, seed).expovariate
    done = loop.create_future()
    state = [customers, 0, 0]  # still to send, replies, failures
    submit, time, call_at = service.submit, loop.time, loop.call_at

    def replied(fut, t0, waited):
        state[1] += 1
        if fut.exception() is None:
            on_response(time() - t0, waited)
        else:
            state[2] += 1
        if state[1] == customers and not done.done():
            done.set_result(None)

    def arrive():
        t0 = time()
        waited = service.busy >= service.workers
        submit().add_done_callback(lambda f: replied(f, t0, waited))
        state[0] -= 1
        if state[0]:
            call_at(t0 + expo(rate_per_s), arrive)

    call_at(time() + expo(rate_per_s), arrive)
    await done
    return state[2]


class Monitor:
    """Samples services every `every_s` virtual seconds: queue, busy, goodput, throughput.

    Start it inside the simulation (`Monitor([svc], every_s=1.0)`); read `rows` afterwards.
    It keeps the first `max_rows` rows (one per service per sample) and counts the rest in
    `rows_dropped`; call `stop()` when done.
    """

    def __init__(self, services, every_s: float = 1.0, *, max_rows: int = 1_000_000):
        self.every_s = validate.number("every_s", every_s, 0.0, lo_open=True, unit=" seconds")
        self.max_rows = validate.integer("max_rows", max_rows, 0)
        self.rows_dropped = 0
        self.services = list(services) if isinstance(services, (list, tuple)) else [services]
        self.rows: list[dict] = []
        self._loop = asyncio.get_running_loop()
        self._last = {s.name: (s.delivered_ok, s.completed) for s in self.services}
        self._handle = self._loop.call_later(self.every_s, self._sample)
        self._stopped = False

    def _sample(self):
        t = self._loop.time()
        for s in self.services:
            ok0, done0 = self._last[s.name]
            self._last[s.name] = (s.delivered_ok, s.completed)
            if len(self.rows) >= self.max_rows:
                self.rows_dropped += 1
                continue
            self.rows.append({"t": t, "service": s.name, "queue": s.queue_length, "busy": s.busy,
                              "in_system": s.in_system(),
                              "goodput_per_s": (s.delivered_ok - ok0) / self.every_s,
                              "throughput_per_s": (s.completed - done0) / self.every_s})
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
