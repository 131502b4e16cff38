"""Chapter 6 exercise (notebooks/06_performance.ipynb, caching): single_flight, the heart of
`labkit.patterns.cache`. N callers that miss the same key at the same time must make ONE
backend call, not N.

The check drives the answer with a fake backend whose loads it holds open (an asyncio.Event per
key), so every question ("how many loads had started while the first was still running?") has
one answer, whatever the machine's speed. Keys, values, errors and the number of callers are
drawn per run. Every wait is bounded.
"""
from __future__ import annotations

import asyncio
import inspect

from . import Wrong, exercise, raised, run_rng


async def single_flight(cache, inflight, key, load):
    """The value for `key`: from `cache` (key -> finished value) if there; otherwise from
    `await load(key)`, started ONCE for all callers that miss at the same time (the running
    load is kept in `inflight`, key -> task, and the others wait for it). The value goes into
    `cache`; a failed load raises its error to every waiter and is not stored, so the next
    call loads again. The key leaves `inflight` when its load ends."""
    if key in cache:
        return cache[key]
    task = inflight.get(key)
    if task is None:                                  # the first miss starts the one load
        task = asyncio.ensure_future(load(key))
        inflight[key] = task
        task.add_done_callback(lambda _: inflight.pop(key, None))
    value = await asyncio.shield(task)    # a caller that gives up does not cancel the others'
    cache[key] = value
    return value


_WAIT_S = 2.0          # callers must all have answered this long after their loads ended
_SETTLE_TICKS = 30     # loop iterations given to the answer to start its loads


class _Backend:
    """`load(key)` for the check: records calls, waits at the key's gate, fails on demand."""

    def __init__(self, values: dict):
        self.values, self.calls, self.gates, self.fail_once = values, [], {}, {}

    def hold(self, *keys) -> None:
        for k in keys:
            self.gates[k] = asyncio.Event()

    def release(self, key) -> None:
        self.gates.pop(key).set()

    async def load(self, key):
        self.calls.append(key)
        gate = self.gates.get(key)
        if gate is not None:
            await asyncio.wait_for(gate.wait(), 10 * _WAIT_S)
        err = self.fail_once.pop(key, None)
        if err is not None:
            raise err
        return self.values[key]

    def count(self, key) -> int:
        return sum(1 for k in self.calls if k == key)


async def _settle() -> None:
    for _ in range(_SETTLE_TICKS):
        await asyncio.sleep(0)


def _start(impl, cache, inflight, key, backend, n=1) -> list:
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


async def _finish(tasks, what: str) -> list:
    """Outcomes (value or exception) of `tasks`, or Wrong if some still wait after _WAIT_S."""
    if tasks:
        await asyncio.wait(tasks, timeout=_WAIT_S)
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
        raise Wrong(f"{len(pending)} of the {len(tasks)} callers {what} were still waiting "
                    f"{_WAIT_S:g} s after the load had ended: they wait for something nobody "
                    "sets (a future or event never completed, a lock never released?).",
                    "Every waiter must be woken when the load ends, whether it succeeded or "
                    "failed: complete the future (or set the event) in a `finally`.")
    out = []
    for t in tasks:
        err = t.exception()
        if isinstance(err, Wrong):
            raise err
        out.append(err if err is not None else t.result())
    return out


def _no_errors(outcomes, key) -> None:
    for got in outcomes:
        if isinstance(got, NotImplementedError):
            raise got
        if isinstance(got, BaseException):
            raise Wrong(f"single_flight(cache, inflight, {key!r}, load) raised {raised(got)} "
                        "although load succeeded.")


async def _timed_keys(impl, n_keys: int, load_s: float) -> float:
    """Seconds for n_keys different keys, loaded concurrently, each load taking load_s."""
    async def load(key):
        await asyncio.sleep(load_s)
        return key
    cache, inflight = {}, {}
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tasks = [asyncio.ensure_future(impl(cache, inflight, k, load)) for k in range(n_keys)]
    done, pending = await asyncio.wait(tasks, timeout=n_keys * load_s + _WAIT_S)
    for t in pending:
        t.cancel()
    for t in done:
        t.cancelled() or t.exception()
    return loop.time() - t0


_HINT = ("If the key is in `cache`, return it. Otherwise, if `inflight` has a load for the key, "
         "await that one; if not, start it with `task = asyncio.ensure_future(load(key))`, put "
         "it in `inflight[key]`, and remove it when it ends "
         "(`task.add_done_callback(lambda _: inflight.pop(key, None))`). Then "
         "`value = await asyncio.shield(task)`, store it in `cache[key]` and return it.")


@exercise("06.single_flight", reference=single_flight, title="Exercise · single_flight",
          hint=_HINT, timeout_s=20.0)
async def check_single_flight(impl) -> None:
    rng = run_rng("06.single_flight")
    names = rng.sample(range(100, 1000), 7)
    k1, k_falsy, k2, ka, kb, ke, k_spare = (f"user:{n}" for n in names)
    values = {k: f"profile of {k} (#{rng.randint(1000, 9999)})" for k in (k1, k2, ka, kb, ke)}
    values[k_falsy] = rng.choice([0, "", [], 0.0])
    backend = _Backend(values)
    cache, inflight = {}, {k_spare: "(a load of another key, made by someone else)"}
    started: list = []
    try:
        await _check(impl, rng, backend, cache, inflight, started, k1, k_falsy, k2, ka, kb, ke,
                     k_spare)
    finally:
        for t in started:
            t.cancel()
        for gate in backend.gates.values():
            gate.set()


async def _check(impl, rng, backend, cache, inflight, started, k1, k_falsy, k2, ka, kb, ke,
                 k_spare) -> None:
    values = backend.values
    # 1. One call: loads, stores in cache, leaves nothing in inflight.
    started += _start(impl, cache, inflight, k1, backend)
    (got,) = await _finish(started[-1:], f"for {k1!r}")
    _no_errors([got], k1)
    if backend.count(k1) != 1:
        raise Wrong(f"one call for {k1!r} (not cached) called load {backend.count(k1)} times, "
                    "expected once.", "On a miss, `await load(key)` once.")
    if got != values[k1]:
        raise Wrong(f"single_flight(..., {k1!r}, load) returned {got!r}; load returned "
                    f"{values[k1]!r}.", "Return what the load returned.")
    if cache.get(k1) != values[k1]:
        raise Wrong(f"after loading {k1!r}, cache[{k1!r}] should be the value, so the next call "
                    f"is a hit; cache is {cache!r}.", "Store it: `cache[key] = value`.")
    if k1 in inflight:
        raise Wrong(f"inflight still holds {k1!r} after its load ended (never removing the "
                    "in-flight entry): the dict grows with every key ever loaded, and a load "
                    "that failed would be handed to every later caller instead of retried.",
                    "Remove the key when the load ends: `task.add_done_callback(lambda _: "
                    "inflight.pop(key, None))`, or `del inflight[key]` in a `finally`.")
    if inflight.get(k_spare) is None:
        raise Wrong(f"your `single_flight` removed {k_spare!r} from inflight: only touch the key "
                    "you were asked for.")
    # 2. A hit, and a value that is falsy.
    started += _start(impl, cache, inflight, k1, backend)
    await _finish(started[-1:], f"for {k1!r}")
    if backend.count(k1) != 1:
        raise Wrong(f"{k1!r} was in cache, yet the second call loaded it again.",
                    "Check `if key in cache: return cache[key]` first.")
    for _ in range(2):
        started += _start(impl, cache, inflight, k_falsy, backend)
        (got,) = await _finish(started[-1:], f"for {k_falsy!r}")
        _no_errors([got], k_falsy)
    if backend.count(k_falsy) != 1:
        raise Wrong(f"the value of {k_falsy!r} is {values[k_falsy]!r}, and two calls loaded it "
                    f"{backend.count(k_falsy)} times: a falsy value is still a cached value "
                    "(`if cache.get(key):` treats it as missing).", "Test `key in cache`.")
    # 3. Concurrent misses for one key: one load; everyone gets its value.
    n = rng.randint(4, 12)
    backend.hold(k2)
    started += _start(impl, cache, inflight, k2, backend, n)
    await _settle()
    loads = backend.count(k2)
    backend.release(k2)
    outcomes = await _finish(started[-n:], f"for {k2!r}")
    if loads > 1:
        raise Wrong(f"{n} callers missed {k2!r} at the same time and load was called {loads} "
                    "times while the first load was still running (no single-flight: each "
                    "caller checks the cache, finds nothing, and loads; that is the thundering "
                    "herd).", "The first miss records its load in `inflight[key]`; later misses "
                    "find it there and await the same task instead of calling load.")
    if loads == 0:
        raise Wrong(f"{n} callers missed {k2!r} and none had called load after "
                    f"{_SETTLE_TICKS} turns of the event loop.", "Call load on a miss.")
    _no_errors(outcomes, k2)
    if any(got != values[k2] for got in outcomes):
        wrong = next(got for got in outcomes if got != values[k2])
        raise Wrong(f"a caller for {k2!r} got {wrong!r} instead of {values[k2]!r}.")
    if k2 in inflight:
        raise Wrong(f"inflight still holds {k2!r} after its load ended (never removing the "
                    "in-flight entry).", "Remove the key when the load ends.")
    # 4. Two different keys at once: two loads side by side, each caller its own key's value.
    m_a, m_b = rng.randint(2, 5), rng.randint(2, 5)
    backend.hold(ka, kb)
    order = [ka] * m_a + [kb] * m_b
    rng.shuffle(order)
    tasks = []
    for k in order:
        tasks += _start(impl, cache, inflight, k, backend)
    started += tasks
    await _settle()
    both = {ka, kb} <= set(backend.calls)
    first = next((k for k in backend.calls if k in (ka, kb)), ka)
    other = kb if first == ka else ka
    backend.release(first)
    await _settle()
    backend.release(other)
    outcomes = await _finish(tasks, f"for {ka!r} and {kb!r}")
    for k, got in zip(order, outcomes):
        if got != values[k] and got in (values[ka], values[kb]):
            raise Wrong(f"a caller for {k!r} got the value of {other if k == first else first!r}"
                        f" ({got!r}): one in-flight load shared by all keys (a single global "
                        "future or task) hands every caller whatever is loading, whatever its "
                        "key.", "Keep one load per key: `inflight[key]`.")
    _no_errors(outcomes, f"{ka!r} / {kb!r}")
    if not both:
        took_s = await _timed_keys(impl, 10, 0.03)
        raise Wrong(f"while the load of {first!r} was running, the load of {other!r} had not "
                    "started: a lock held across `await load(key)` (the tutorial's "
                    "PrefetchCache does this) serialises every key behind every other. Measured "
                    f"here: 10 different keys, each load taking 30 ms, took {took_s * 1000:.0f} "
                    "ms instead of about 30 ms.",
                    "Never hold a lock across an await: record the load in `inflight[key]` and "
                    "let callers of other keys start their own.")
    for k in (ka, kb):
        if backend.count(k) != 1:
            raise Wrong(f"callers of {ka!r} and {kb!r} at the same time made "
                        f"{backend.count(k)} loads of {k!r}, expected 1.")
    # 5. A failing load: every waiter gets the error; nothing is kept; the next call retries.
    n = rng.randint(3, 8)
    err = rng.choice([ConnectionError, TimeoutError, RuntimeError])(
        f"backend unavailable (incident #{rng.randint(100, 999)})")
    backend.fail_once[ke] = err
    backend.hold(ke)
    started += _start(impl, cache, inflight, ke, backend, n)
    await _settle()
    backend.release(ke)
    outcomes = await _finish(started[-n:], f"for {ke!r}")
    loads = backend.count(ke)
    bad = [got for got in outcomes if not (type(got) is type(err) and str(got) == str(err))]
    if loads > 1:
        raise Wrong(f"the load of {ke!r} failed with {raised(err)}, and the {n} waiting callers "
                    f"made {loads} loads in all: the waiters did not get the first load's "
                    "error, they loaded again themselves.", "Waiters await the same task: its "
                    "error is raised to each of them.")
    if bad:
        raise Wrong(f"the load of {ke!r} failed with {raised(err)}; a waiting caller got "
                    f"{raised(bad[0]) if isinstance(bad[0], BaseException) else repr(bad[0])} "
                    "instead of that error.", "Let the load's exception reach every waiter.")
    if ke in cache:
        raise Wrong(f"after the load of {ke!r} failed, cache[{ke!r}] = {cache[ke]!r}: caching the "
                    "exception, for ever, turns one blip into a permanent error for that key.",
                    "Store only values; a failed load leaves the cache as it was.")
    started += _start(impl, cache, inflight, ke, backend)
    (got,) = await _finish(started[-1:], f"for {ke!r}")
    if backend.count(ke) == loads:
        where = ("inflight still holds the failed load (never removing the in-flight entry), "
                 "so every later caller awaits it and gets its old error"
                 if ke in inflight else "the failure was remembered")
        raise Wrong(f"after the load of {ke!r} failed, the next call got "
                    f"{raised(got) if isinstance(got, BaseException) else repr(got)} without "
                    f"calling load: {where}. The next call must try again.",
                    "Remove the key from `inflight` when the load ends, success or failure.")
    _no_errors([got], ke)
    if got != values[ke]:
        raise Wrong(f"the retry of {ke!r} returned {got!r}, expected {values[ke]!r}.")
