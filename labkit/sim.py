"""Virtual-time simulator: real asyncio code, fake clock, instant runs.

Introduced in chapter 05 (retries) and reused in 06 (performance). `VirtualClockLoop` is an
ordinary `asyncio.SelectorEventLoop` whose clock is virtual and whose selector never waits:
when every task is asleep, `select(timeout)` jumps the clock to the next timer. So
`asyncio.sleep`, `asyncio.timeout`, `wait_for` and labkit's patterns run unchanged, and an
hour of simulated traffic takes as long as the Python work it contains. Nothing here does
real I/O: a task waiting on a socket or a thread would wait forever, which the loop reports
as a `SimDeadlock`.

`run(main)` runs a coroutine function on a fresh virtual loop (in a worker thread when the
caller already runs a loop, as a Jupyter kernel does). `SimService` is a queueing server (c
workers, FIFO queue, rejection when full); `poisson_arrivals` is an open-loop load source;
`Monitor` samples queue length and goodput. Times are seconds as floats (virtual seconds).
All randomness comes from `labkit.seeding.rng`, seeded by the run's `seed`.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import heapq
import math
import selectors
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, NamedTuple

from . import seeding
from .deadline import Deadline, DeadlineExceeded
from .errors import ErrorKind, ServiceError

__all__ = ["SimDeadlock", "SimTimeout", "VirtualClockLoop", "run", "now", "rng", "Fixed",
           "Exponential", "LogNormal", "RequestRecord", "SimService", "poisson_arrivals",
           "Monitor"]

class SimDeadlock(RuntimeError):
    """Nothing is scheduled, yet tasks still wait: they wait for something that never comes."""


class SimTimeout(TimeoutError):
    """`run(..., until_s=...)` reached its limit before `main` finished."""


class _VirtualSelector(selectors.BaseSelector):
    """A selector with no I/O (it only holds the loop's self-pipe registration)."""

    def __init__(self):
        self._map: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj, events, data=None):
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._map[fd] = key
        return key

    def unregister(self, fileobj):
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._map.pop(fd)

    def select(self, timeout=None):
        return []

    def get_map(self):
        return self._map

    def close(self):
        self._map.clear()


class _Handle(asyncio.Handle):
    """asyncio.Handle without the debug bookkeeping in __init__ (the hot path of the loop)."""

    __slots__ = ()

    def __init__(self, callback, args, loop, context):
        self._context = context if context is not None else contextvars.copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None


class _Timer(asyncio.TimerHandle):
    __slots__ = ()

    def __init__(self, when, callback, args, loop, context):
        self._context = context if context is not None else contextvars.copy_context()
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None
        self._when = when
        self._scheduled = True


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a virtual clock starting at `start_s`; `seed` seeds labkit.sim.rng.

    When no callback is ready, the clock jumps straight to the earliest timer (no waiting).
    Timers due at the same instant run in the order they were scheduled. Its selector is a
    fake one, where real sockets never become ready; with nothing left to run or schedule the
    loop raises SimDeadlock instead of hanging.
    """

    def __init__(self, *, start_s: float = 0.0, seed: int = 0):
        self._vnow = float(start_s)
        self._vheap: list = []  # (when, seq, timer): C-level tuple comparisons, FIFO on ties
        self._vseq = 0
        self._vcancelled = 0
        self.seed = seed
        super().__init__(selector=_VirtualSelector())

    def time(self) -> float:
        return self._vnow

    def call_at(self, when, callback, *args, context=None):
        if when is None:
            raise TypeError("when cannot be None")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        timer = _Timer(when, callback, args, self, context)
        self._vseq += 1
        heapq.heappush(self._vheap, (when, self._vseq, timer))
        return timer

    def call_later(self, delay, callback, *args, context=None):
        return self.call_at(self._vnow + delay, callback, *args, context=context)

    def call_soon(self, callback, *args, context=None):
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = _Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def _timer_handle_cancelled(self, handle):
        if handle._scheduled:
            self._vcancelled += 1
            heap = self._vheap
            if self._vcancelled > 512 and 2 * self._vcancelled > len(heap):
                kept = [e for e in heap if not e[2]._cancelled]
                for e in heap:
                    if e[2]._cancelled:
                        e[2]._scheduled = False
                heapq.heapify(kept)
                self._vheap = kept
                self._vcancelled = 0

    def pending_timers(self) -> int:
        """Timers still scheduled (not cancelled)."""
        return sum(1 for e in self._vheap if not e[2]._cancelled)

    def _run_once(self):
        ready = self._ready
        heap = self._vheap
        pop = heapq.heappop
        if not ready and not self._stopping:
            while heap and heap[0][2]._cancelled:
                pop(heap)[2]._scheduled = False
                self._vcancelled -= 1
            if not heap:
                raise SimDeadlock(
                    f"virtual loop deadlocked at t={self._vnow:.6f}s: nothing is scheduled but "
                    "tasks are still waiting (on a future nobody resolves, a socket, or a thread; "
                    "the virtual loop does no real I/O)")
            if heap[0][0] > self._vnow:
                self._vnow = heap[0][0]
        now = self._vnow
        while heap and heap[0][0] <= now:
            timer = pop(heap)[2]
            if timer._cancelled:
                self._vcancelled -= 1
            timer._scheduled = False
            ready.append(timer)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()
        handle = None

    def close(self):
        self._vheap.clear()
        super().close()


def now() -> float:
    """The current (virtual) loop time in seconds."""
    return asyncio.get_running_loop().time()


def _run_seed(seed: int | None) -> int | None:
    if seed is not None:
        return seed
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return getattr(loop, "seed", None)


def rng(name: str, seed: int | None = None):
    """A generator for `name`, seeded by `seed` or else by the running simulation's seed."""
    return seeding.rng(f"sim:{name}", _run_seed(seed))


def _run_here(main, seed, until_s, progress):
    loop = VirtualClockLoop(seed=seed)
    bar = None
    try:
        asyncio.set_event_loop(loop)
        coro = main() if callable(main) else main
        if not asyncio.iscoroutine(coro):
            raise ValueError(f"main must be a coroutine function (async def), got {main!r}")
        task = loop.create_task(coro)
        hit_limit = []
        if until_s is not None:
            def _limit():
                if not task.done():
                    hit_limit.append(True)
                    task.cancel()
            loop.call_at(until_s, _limit)
        if progress:
            bar = _progress(loop, until_s)
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            if hit_limit:
                raise SimTimeout(f"simulation reached until_s={until_s} before main finished") from None
            raise
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            if bar is not None:
                bar.n = min(loop.time(), bar.total or loop.time())
                bar.close()
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop):
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _progress(loop, until_s):
    from tqdm.auto import tqdm

    bar = tqdm(total=until_s, unit="s", desc="virtual time", leave=False)
    step = until_s / 100 if until_s else 1.0

    def tick():
        bar.n = round(loop.time(), 3)
        bar.refresh()
        if loop.pending_timers() or len(loop._ready) > 0:  # only while other work remains
            loop.call_later(step, tick)

    loop.call_later(step, tick)
    return bar


def run(main: Callable[[], Awaitable[Any]], *, seed: int = 0, until_s: float | None = None,
        progress: bool = False) -> Any:
    """Run `main()` to completion on a fresh virtual loop and return its result.

    `seed` seeds every `labkit.sim.rng` / `SimService` draw in the run. `until_s` stops the run
    at that virtual time (raises SimTimeout). `progress=True` shows a tqdm bar of virtual time.
    Called from inside a running loop (a Jupyter cell), it runs in a worker thread and blocks
    until done: the kernel's loop is never nested or re-entered.
    """
    if until_s is not None and not (isinstance(until_s, (int, float)) and until_s >= 0):
        raise ValueError(f"until_s must be a number of virtual seconds >= 0 or None, got {until_s!r}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(main, seed, until_s, progress)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="labkit-sim") as pool:
        return pool.submit(_run_here, main, seed, until_s, progress).result()


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
