"""The harness of chapter 6's single_flight check (exercise 06.single_flight, caching, in
notebooks/06_performance.ipynb; the check's steps are in labkit/checks/perf_cache.py): a fake
backend whose loads the check holds open and lets go key by key, the `inflight` dict that notes
a stored coroutine, helpers that start callers and collect what they got (every wait bounded),
and the diagnoses that turn those outcomes into a message true for the answer it is shown to.
"""
from __future__ import annotations

import asyncio
import collections
import inspect

from . import Wrong, raised


MISSING = object()
WAIT_S = 2.0          # callers must all have answered this long after their loads ended
SETTLE_TICKS = 30     # loop iterations given to the answer to start its loads


# Named _Backend, as before the split: a wrong call of load() raises a TypeError naming
# `_Backend.__init__.<locals>.load()`, and the check's message quotes it.
class _Backend:
    """`load(key)` for the check: records calls (and which returned, failed or were
    cancelled), waits at the key's gate, fails on demand."""

    def __init__(self, values: dict):
        self.values, self.calls, self.gates, self.fail_once = values, [], {}, {}
        self.tasks = []         # the asyncio task each load ran in, parallel to `calls`
        self.returned, self.failed, self.cancelled = [], [], []
        self.last = {}          # key -> how its latest load ended so far ("started", ...)
        self.made = collections.deque(maxlen=1000)   # coroutines load() returned, to close
                                                     # those never awaited

        def load(key):          # a plain function named `load`, so errors read "load() ..."
            coro = self._load(key)
            self.made.append(coro)
            return coro
        load.__qualname__ = "load"   # Python names nested functions by their path otherwise
        self.load = load

    def hold(self, *keys) -> None:
        for k in keys:
            self.gates[k] = asyncio.Event()

    def release(self, key) -> None:
        self.gates.pop(key).set()

    async def _load(self, key):
        self.calls.append(key)
        self.tasks.append(asyncio.current_task())
        self.last[key] = "started"
        try:
            gate = self.gates.get(key)
            if gate is not None:
                await asyncio.wait_for(gate.wait(), 10 * WAIT_S)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            self.last[key] = "cancelled"
            raise
        err = self.fail_once.pop(key, None)
        if err is not None:
            self.failed.append(key)
            self.last[key] = "failed"
            raise err
        value = self.values[key]
        self.returned.append(key)
        self.last[key] = "returned"
        return value

    def close_unawaited(self) -> None:
        """Close the coroutines nobody awaited (no "never awaited" warning from the check)."""
        for coro in self.made:
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()

    def count(self, key) -> int:
        return sum(1 for k in self.calls if k == key)

    def tasks_of(self, key) -> list:
        """The task each load of `key` ran in, in call order."""
        return [t for k, t in zip(self.calls, self.tasks) if k == key]


async def settle() -> None:
    for _ in range(SETTLE_TICKS):
        await asyncio.sleep(0)


def start(impl, cache, inflight, key, backend, n=1) -> list:
    return [asyncio.ensure_future(_call(impl, cache, inflight, key, backend)) for _ in range(n)]


async def _call(impl, cache, inflight, key, backend):
    got = impl(cache, inflight, key, backend.load)
    if not inspect.isawaitable(got):
        raise Wrong(f"`single_flight` returned {got!r} without awaiting anything: make it an "
                    "`async def` and `await load(key)` (callers await single_flight(...)).",
                    "`async def single_flight(cache, inflight, key, load):`")
    got = await got
    if inspect.isawaitable(got):
        if inspect.iscoroutine(got):
            got.close()
        raise Wrong(f"single_flight(..., {key!r}, load) returned {type(got).__name__} instead "
                    "of the value: await it (`value = await load(key)` or `await task`).",
                    "Return the value itself, not the coroutine or task that produces it.")
    return got


_ENDED = {"failed": "after the load failed", "returned": "after the load had returned",
          "cancelled": "after the load was cancelled", "started": "while the load ran",
          None: "and load had not been called"}


async def finish(tasks, what: str, backend: _Backend, *keys) -> list:
    """Outcomes (value or exception; CancelledError for a cancelled caller) of `tasks`, or
    Wrong if some still wait WAIT_S after the loads of `keys` were let go (the message says
    how the latest of those loads ended)."""
    if tasks:
        await asyncio.wait(tasks, timeout=WAIT_S)
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
        ends = [backend.last.get(k) for k in keys]
        ended = _ENDED[next((e for e in ("failed", "cancelled", "started", None) if e in ends),
                            "returned")]
        raise Wrong(f"{len(pending)} of the {len(tasks)} callers {what} were still waiting "
                    f"{WAIT_S:g} s {ended}: they wait for something nobody "
                    "sets (a future or event never completed, a lock never released?).",
                    "Every waiter must be woken when the load ends, whether it succeeded or "
                    "failed: complete the future (or set the event) in a `finally`.")
    out = []
    for t in tasks:
        if t.cancelled():
            out.append(asyncio.CancelledError())
            continue
        err = t.exception()
        if isinstance(err, Wrong):
            raise err
        out.append(err if err is not None else t.result())
    return out


_IN_A_LOOP = ("running event loop", "loop is already running", "another loop is running")


def no_errors(outcomes, keys, backend: _Backend) -> None:
    """Wrong if a caller got an exception where the value was due; `keys` is the key of every
    outcome (or one key for all), and the message says what the load of that key had done."""
    keys = keys if isinstance(keys, list) else [keys] * len(outcomes)
    for key, got in zip(keys, outcomes):
        if isinstance(got, NotImplementedError):
            raise got
        if not isinstance(got, BaseException):
            continue
        head = f"single_flight(cache, inflight, {key!r}, load) raised {raised(got)}"
        if isinstance(got, RuntimeError) and any(s in str(got) for s in _IN_A_LOOP):
            raise Wrong(f"{head}. single_flight is called from inside a running event loop: "
                        "make it `async def` and `await load(key)`.",
                        "asyncio.run() starts a new event loop and cannot run inside one; "
                        "`async def single_flight(...)` and `value = await load(key)`.")
        if key in backend.returned:
            raise Wrong(f"{head} although load succeeded.")
        if key in backend.calls:
            raise Wrong(f"{head} before its load had returned.")
        raise Wrong(f"{head}, and load({key!r}) never ran.",
                    "Start the load with `load(key)` (the key is its one argument) and await "
                    "it, or the task that runs it.")


def shared_coroutine(outcomes, inflight_seen: bool, key, n: int) -> None:
    """Wrong if callers awaited one coroutine together (only the first may await it)."""
    twice = [got for got in outcomes if isinstance(got, RuntimeError)
             and ("being awaited already" in str(got) or "already awaited" in str(got))]
    if twice:
        held = (f"inflight[{key!r}] held a coroutine (what load(key) returns), and a coroutine"
                if inflight_seen else "a coroutine (what load(key) returns)")
        raise Wrong(f"{held} can be awaited only once: {len(twice)} of the {n} callers of "
                    f"{key!r} awaited it too and got {raised(twice[0])}.",
                    "Wrap it in a task, which any number of callers can await: "
                    "`inflight[key] = asyncio.ensure_future(load(key))`.")


async def timed_keys(impl, n_keys: int, load_s: float) -> float:
    """Seconds for n_keys different keys, loaded concurrently, each load taking load_s."""
    async def load(key):
        await asyncio.sleep(load_s)
        return key
    cache, inflight = {}, {}
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tasks = [asyncio.ensure_future(impl(cache, inflight, k, load)) for k in range(n_keys)]
    done, pending = await asyncio.wait(tasks, timeout=n_keys * load_s + WAIT_S)
    for t in pending:
        t.cancel()
    for t in done:
        t.cancelled() or t.exception()
    return loop.time() - t0


class Inflight(dict):
    """The `inflight` dict the check passes: notes whether a coroutine was ever stored in it."""
    coroutine_stored = False

    def _note(self, value):
        if inspect.iscoroutine(value):
            self.coroutine_stored = True
        return value

    def __setitem__(self, key, value):
        super().__setitem__(key, self._note(value))

    def setdefault(self, key, default=None):
        return super().setdefault(key, self._note(default))

    def update(self, *args, **kwargs):
        for value in dict(*args, **kwargs).values():
            self._note(value)
        super().update(*args, **kwargs)


def others_untouched(cache, inflight, k_spare, k_kept, kept, asked) -> None:
    """Wrong unless the entries of other keys, put there by someone else, are still there, and
    neither dict gained a key outside `asked` (the keys the check asked for so far)."""
    for name, d, theirs in (("cache", cache, k_kept), ("inflight", inflight, k_spare)):
        extra = [k for k in list(d) if k != theirs and k not in asked]
        if extra:
            raise Wrong(f"your `single_flight` put {name}[{extra[0]!r}] = {d[extra[0]]!r}, a "
                        "key the check never asked for: only touch the key you were asked for.",
                        f"Store only `{name}[key]`; the dict is shared with other code.")
    if inflight.get(k_spare) is None:
        raise Wrong(f"your `single_flight` removed {k_spare!r} from inflight: only touch the key "
                    "you were asked for.")
    if cache.get(k_kept) != kept:
        done = "removed" if k_kept not in cache else "changed"
        raise Wrong(f"your `single_flight` {done} cache[{k_kept!r}], a value someone else had "
                    "cached: only touch the key you were asked for.",
                    "Store the value with `cache[key] = value`; leave the other keys alone.")


def loaded_again(load_tasks, callers, key, err, n) -> None:
    """Wrong for a failed load followed by more loads of `key` among `n` callers: one task that
    retried, the waiters loading themselves, or (neither) more loads started somewhere."""
    head = (f"the load of {key!r} failed with {raised(err)}, and {n} callers made "
            f"{len(load_tasks)} loads in all")
    own = [t for t in load_tasks[1:] if t in callers and t is not load_tasks[0]]
    if len(set(load_tasks)) == 1:
        raise Wrong(f"{head}, every one in the same task: the waiters shared your load, but it "
                    "retried after the error. single_flight should raise the load's error to "
                    "every waiter (retries are chapter 5's job, outside the cache).",
                    "Await `load(key)` once per miss; let its exception reach every waiter.")
    if own:
        raise Wrong(f"{head}: after the first load failed, {len(set(own))} of the waiting "
                    "callers called load again themselves instead of getting its error.",
                    "Waiters await the same task: its "
                    "error is raised to each of them.")
    raise Wrong(f"{head}, in more than one task: single_flight should raise the first "
                "load's error to every waiter and load again only on the next call.",
                "Waiters await the same task: its error is raised to each of them.")


def outcomes_told(tasks, value) -> str:
    """What the other callers `tasks` got, e.g. "of the other 3 callers, 2 got CancelledError,
    1 was still waiting 2 s after the load ended"; "" if all got `value`."""
    told = collections.Counter()
    for t in tasks:
        if not t.done():
            told[f"still waiting {WAIT_S:g} s after the load ended"] += 1
        elif t.cancelled():
            told["got CancelledError"] += 1
        elif t.exception() is not None:
            if isinstance(t.exception(), Wrong):
                raise t.exception()
            told[f"got {raised(t.exception())}"] += 1
        elif t.result() != value:
            told[f"got {t.result()!r}"] += 1
    if not told:
        return ""
    if len(told) == 1 and sum(told.values()) == len(tasks):
        (what,) = told
        return f"the other {len(tasks)} callers all {'were ' * what.startswith('still')}{what}"
    return f"of the other {len(tasks)} callers, " + ", ".join(
        f"{c} {('was ' if c == 1 else 'were ') * what.startswith('still')}{what}"
        for what, c in told.items())
