"""Run a learner's async answer in virtual time, on the check's own thread (first used by
chapter 06's exercise 06.collect_batch, labkit/checks/perf_batching.py).

A check that feeds an answer timed inputs (items arriving at 3 ms, 11 ms...) wants exact
times and an instant run, so it runs the answer on `labkit.sim`'s virtual clock. Running
that clock with `sim.run` would need a second thread (the notebook's loop is already
running), and a thread stuck in a learner's ``time.sleep(100)`` can be neither stopped nor
joined. So `simulate` steps a `sim.VirtualClockLoop` here, on the check's thread, a slice of
real time at a time, handing the notebook's loop a turn between slices:

- an answer that blocks (time.sleep, a loop that never awaits) blocks the notebook's loop,
  where `labkit.checks.guard`'s watchdog interrupts it, like any async answer;
- one that spins on ``asyncio.sleep(0)`` never blocks, but the virtual clock stands still:
  after `spin_steps` loop steps without it moving, `Spinning` is raised;
- the whole run is capped at `real_limit_s` real seconds (`TooSlow`);
- whatever is left (tasks, the loop) is cancelled and closed in a bounded number of steps.

No thread is started, so nothing is left running. `calls` finds out whether the answer
calls a function such as time.sleep or time.monotonic, and `clock_misuse` turns that into
the likely reason a check failed: in virtual time time.sleep waits no time at all and the
wall clock does not move with the loop's clock.
"""
from __future__ import annotations

import asyncio
import contextlib
import dis
import functools
import inspect
import sys
import threading
import time

from labkit import sim
from labkit._core import validate
from . import Wrong

__all__ = ["simulate", "Spinning", "TooSlow", "awaitable", "calls", "clock_misuse",
           "WALL_CLOCKS"]

WALL_CLOCKS = frozenset({"time", "monotonic", "perf_counter", "monotonic_ns", "time_ns",
                         "perf_counter_ns"})


class Spinning(Exception):
    """The virtual clock stood still for `steps` loop steps; `at_s` is its time then."""

    def __init__(self, at_s: float, steps: int):
        super().__init__(at_s, steps)
        self.at_s, self.steps = at_s, steps

    def explain(self, name: str, *, at: str, advice: str) -> str:
        """The learner's message: `at` is the time, as the check shows times."""
        return (f"your {name} kept the event loop busy at t = {at} for {self.steps:,} loop "
                "steps in a row without letting any time pass: it loops without awaiting "
                "anything that takes time, or awaits only asyncio.sleep(0), which lets no time "
                f"pass. {advice}")


class TooSlow(Exception):
    """The run took more than `limit_s` real seconds."""

    HINT = "Wait only with `await` (asyncio.wait_for, asyncio.sleep), never with time.sleep."

    def __init__(self, limit_s: float):
        super().__init__(limit_s)
        self.limit_s = limit_s

    def explain(self, name: str) -> str:
        """The learner's message (`HINT` is the hint)."""
        return (f"checking {name} took more than {self.limit_s:g} s of real time (the check "
                "runs it in virtual time, where waits take no real time): does it block "
                "(time.sleep) or loop without awaiting? The check stopped it.")


@contextlib.contextmanager
def _running(vloop):
    """Make `vloop` the running loop of this thread for a few steps (then the caller's again)."""
    host = asyncio.events._get_running_loop()
    hooks = sys.get_asyncgen_hooks()
    asyncio.events._set_running_loop(vloop)
    vloop._thread_id = threading.get_ident()
    sys.set_asyncgen_hooks(firstiter=vloop._asyncgen_firstiter_hook,
                           finalizer=vloop._asyncgen_finalizer_hook)
    try:
        yield
    finally:
        sys.set_asyncgen_hooks(*hooks)
        vloop._thread_id = None
        asyncio.events._set_running_loop(host)


async def simulate(main, *, real_limit_s: float = 10.0, slice_s: float = 0.02,
                   spin_steps: int = 20_000, cleanup_steps: int = 10_000, seed: int = 0):
    """``main()``'s result, run on a fresh virtual-clock loop stepped on this thread,
    `slice_s` real seconds at a time, with a turn of the running loop between slices (so its
    watchdog sees a blocking answer as a blocked loop). Raises `Spinning`, `TooSlow`,
    `sim.SimDeadlock` (everything waits on something that never happens) or what `main`
    raised; always cancels what is left and closes the loop."""
    real_limit_s = validate.number("real_limit_s", real_limit_s, 0, lo_open=True, unit=" seconds")
    slice_s = validate.number("slice_s", slice_s, 0, lo_open=True, unit=" seconds")
    spin_steps = validate.integer("spin_steps", spin_steps, 1)
    cleanup_steps = validate.integer("cleanup_steps", cleanup_steps, 1)
    vloop = sim.VirtualClockLoop(seed=seed)
    start = time.monotonic()
    try:
        with _running(vloop):
            task = vloop.create_task(main())
        still, at = 0, vloop.time()
        while not task.done():
            with _running(vloop):
                end = time.monotonic() + slice_s
                while not task.done() and time.monotonic() < end:
                    vloop._run_once()
                    if vloop.time() != at:
                        still, at = 0, vloop.time()
                    else:
                        still += 1
                        if still > spin_steps:
                            raise Spinning(at, spin_steps)
            if not task.done():
                if time.monotonic() - start > real_limit_s:
                    raise TooSlow(real_limit_s)
                await asyncio.sleep(0)
        return task.result()
    finally:
        _close(vloop, cleanup_steps)


def _close(vloop, steps: int) -> None:
    """Cancel the virtual loop's tasks, give them at most `steps` steps to finish, close."""
    with _running(vloop):
        tasks = [t for t in asyncio.all_tasks(vloop) if not t.done()]
        for t in tasks:
            t.cancel()
        for _ in range(steps):
            if all(t.done() for t in tasks):
                break
            try:
                vloop._run_once()
            except sim.SimDeadlock:
                break
        for t in tasks:
            if t.done() and not t.cancelled():
                t.exception()                   # retrieved: asyncio logs nothing about it
    vloop.close()


def awaitable(got, *, call: str, result: str, signature: str, waits_on: str, wait_with: str):
    """`got`, what calling the learner's function (`call`, as the learner would write it)
    gave, if it is something to await (an async def's coroutine, or a plain def or object
    returning one); else Wrong saying to `return {result}` (an async generator) or to make it
    an `async def` (`signature`) that waits on `waits_on` with `await {wait_with}`."""
    if inspect.isasyncgen(got):
        raise Wrong(f"your {signature.split('(')[0]} is an async generator (it uses `yield`): "
                    f"calling it gives an async generator, not a {result}. Return the {result} "
                    f"instead: `return {result}`.", f"Replace `yield {result}` with "
                    f"`return {result}`.")
    if not inspect.isawaitable(got):
        shown = repr(got)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise Wrong(f"calling {call} returned {shown} right away, not something to await: it "
                    f"waits on {waits_on}, so make it an `async def` and wait with "
                    f"`await {wait_with}`.", f"`async def {signature}:` with `await {wait_with}` "
                    "inside.")
    return got


def _functions(impl) -> list:
    """The plain functions behind `impl`: through functools.partial, decorators that set
    __wrapped__, and objects with a __call__ method."""
    seen, todo = [], [impl]
    while todo and len(seen) < 8:
        f = todo.pop()
        if isinstance(f, functools.partial):
            todo.append(f.func)
        elif inspect.isfunction(f) or inspect.ismethod(f):
            f = getattr(f, "__func__", f)
            if f not in seen:
                seen.append(f)
                if hasattr(f, "__wrapped__"):
                    todo.append(f.__wrapped__)
        elif callable(f) and hasattr(type(f), "__call__"):
            todo.append(type(f).__call__)
    return seen


def calls(impl, module: str, names) -> str | None:
    """'time.sleep()' (or 'sleep()' for `from time import sleep`) if the answer's code (nested
    functions included) uses one of `names` from `module`, else None."""
    for fn in _functions(impl):
        glb = getattr(fn, "__globals__", {})
        stack = [fn.__code__]
        while stack:
            c = stack.pop()
            stack.extend(k for k in c.co_consts if hasattr(k, "co_code"))
            prev = None
            for ins in dis.get_instructions(c):
                if ins.opname == "LOAD_GLOBAL" and glb.get(ins.argval) is not None:
                    obj = glb[ins.argval]
                    if getattr(obj, "__name__", None) == module and inspect.ismodule(obj):
                        prev = ins.argval
                        continue
                    if getattr(obj, "__module__", None) == module and ins.argval in names:
                        return f"{ins.argval}()"
                elif prev and ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval in names:
                    return f"{prev}.{ins.argval}()"
                prev = None
    return None


def clock_misuse(impl, *, name: str, meanwhile: str = "", wait_with: str) -> str | None:
    """Why `impl` (the learner's `name`) fails in virtual time, if its code shows it: it calls
    time.sleep (`meanwhile` adds what else is blocked, `wait_with` what to await instead), or
    it reads a wall clock. None otherwise."""
    if calls(impl, "time", {"sleep"}):
        return (f"your {name} calls time.sleep: time.sleep blocks the event loop (nothing else "
                f"runs meanwhile{meanwhile}) and does not advance the loop's clock, so in the "
                f"check's virtual time it waited no time at all. Wait with `await {wait_with}`.")
    clock = calls(impl, "time", WALL_CLOCKS)
    if clock:
        return (f"your {name} reads the wall clock ({clock}), but asyncio's timers (and this "
                "check's virtual time) run on the event loop's clock: use `loop = "
                "asyncio.get_running_loop()` and `loop.time()`.")
    return None
