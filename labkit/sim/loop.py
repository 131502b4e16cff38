"""Virtual-time simulator: real asyncio code, fake clock, instant runs.

Introduced in chapter 05 (retries) and reused in 06 (performance). `VirtualClockLoop` is an
ordinary `asyncio.SelectorEventLoop` whose clock is virtual and whose selector never waits:
when every task is asleep, `select(timeout)` jumps the clock to the next timer. So
`asyncio.sleep`, `asyncio.timeout`, `wait_for` and labkit's patterns run unchanged, and an
hour of simulated traffic takes as long as the Python work it contains. Nothing here does
real I/O: a task waiting on a socket or a thread would wait forever, which the loop reports
as a `SimDeadlock`.

`run(main)` runs a coroutine function on a fresh virtual loop (in a worker thread when the
caller already runs a loop, as a Jupyter kernel does). The queueing models that run on it
are in `labkit.sim.queueing`. Times are seconds as floats (virtual seconds). All randomness
comes from `labkit._core.seeding.rng`, seeded by the run's `seed`.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import heapq
import selectors
import threading
from typing import Any, Awaitable, Callable

from labkit._core import seeding, validate

__all__ = ["SimDeadlock", "SimTimeout", "VirtualClockLoop", "run", "run_async", "now", "rng"]

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
        if when != when:  # NaN would break the heap's order and stall the clock
            raise ValueError(f"when must be a number of virtual seconds, got {when!r}")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        timer = _Timer(when, callback, args, self, context)
        self._vseq += 1
        heapq.heappush(self._vheap, (when, self._vseq, timer))
        return timer

    def call_later(self, delay, callback, *args, context=None):
        if delay != delay:
            raise ValueError(f"delay must be a number of virtual seconds, got {delay!r}")
        return self.call_at(self._vnow + delay, callback, *args, context=context)

    def call_soon(self, callback, *args, context=None):
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = _Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def _timer_handle_cancelled(self, handle):
        # TimerHandle.cancel() calls this once, *before* it sets handle._cancelled, and only
        # for a timer still in the heap (_scheduled). So a compaction here must drop `handle`
        # too: keeping it would leave a cancelled timer in the heap that the counter missed.
        if not handle._scheduled:
            return
        self._vcancelled += 1
        heap = self._vheap
        if self._vcancelled > 512 and 2 * self._vcancelled > len(heap):
            kept = []
            for entry in heap:
                timer = entry[2]
                if timer._cancelled or timer is handle:
                    timer._scheduled = False
                else:
                    kept.append(entry)
            heapq.heapify(kept)
            self._vheap = kept
            self._vcancelled = 0

    def pending_timers(self) -> int:
        """Timers still scheduled (not cancelled, not yet due): exact, O(1)."""
        return len(self._vheap) - self._vcancelled

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
            timer._scheduled = False
            if timer._cancelled:
                self._vcancelled -= 1
            else:
                ready.append(timer)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()
        handle = None

    def close(self):
        for entry in self._vheap:
            entry[2]._scheduled = False   # a later cancel() of these counts nothing
        self._vheap.clear()
        self._vcancelled = 0
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


class _Control:
    """Lets the caller's thread cancel a run going on in a worker thread (see `run_async`)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loop = self._task = None
        self.cancelled = False

    def attach(self, loop, task) -> bool:
        """Called by the worker once the run's task exists; True if already cancelled."""
        with self._lock:
            self._loop, self._task = loop, task
            return self.cancelled

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            loop, task = self._loop, self._task
        if task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the run just ended and closed its loop
                pass


def _run_here(main, seed, until_s, progress, control=None):
    loop = VirtualClockLoop(seed=seed)
    bar = None
    try:
        asyncio.set_event_loop(loop)
        coro = main() if callable(main) else main
        if not asyncio.iscoroutine(coro):
            raise ValueError(f"main must be a coroutine function (async def), got {main!r}")
        task = loop.create_task(coro)
        if control is not None and control.attach(loop, task):
            task.cancel()
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


def _check_run(seed, until_s, progress) -> float | None:
    if seed is not None:
        validate.integer("seed", seed)
    validate.boolean("progress", progress)
    return validate.optional_number("until_s", until_s, 0.0, unit=" virtual seconds")


def run(main: Callable[[], Awaitable[Any]], *, seed: int | None = 0, until_s: float | None = None,
        progress: bool = False) -> Any:
    """Run `main()` to completion on a fresh virtual loop and return its result.

    `seed` seeds every `labkit.sim.rng` / `SimService` draw in the run (None: the course seed).
    `until_s` stops the run at that virtual time (raises SimTimeout). `progress=True` shows a
    tqdm bar of virtual time. Called from inside a running loop (a Jupyter cell), it runs in a
    worker thread and *blocks* that loop until done (the loop is never nested or re-entered):
    fine in a cell, wrong in a widget callback, which must `await run_async(...)` instead so
    real services and live charts keep running.
    """
    until_s = _check_run(seed, until_s, progress)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(main, seed, until_s, progress)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="labkit-sim") as pool:
        return pool.submit(_run_here, main, seed, until_s, progress).result()


async def run_async(main: Callable[[], Awaitable[Any]], *, seed: int | None = 0,
                    until_s: float | None = None, timeout_s: float | None = None) -> Any:
    """`await run_async(main)`: like `run`, but the caller's loop keeps running meanwhile.

    The simulation runs on its own virtual loop in a worker thread (the loop's default
    executor), so a widget callback that awaits it does not freeze real services or live
    charts. Cancelling the await cancels the simulation too (its result is dropped), which is
    how a newer slider move supersedes an older run. `timeout_s` bounds the wait in real
    seconds (TimeoutError; None: no bound). Defined for chapter 05's storm lab.
    """
    until_s = _check_run(seed, until_s, False)
    timeout_s = validate.optional_number("timeout_s", timeout_s, 0.0, lo_open=True,
                                         unit=" seconds")
    loop = asyncio.get_running_loop()
    control = _Control()
    future = loop.run_in_executor(None, _run_here, main, seed, until_s, False, control)
    try:
        return await asyncio.wait_for(future, timeout_s)
    except BaseException:
        control.cancel()
        raise
