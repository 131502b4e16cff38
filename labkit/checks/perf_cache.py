"""Chapter 6 exercise (notebooks/06_performance.ipynb, caching): single_flight, the heart of
`labkit.patterns.cache`. N callers that miss the same key at the same time must make ONE
backend call, not N.

The check drives the answer with a fake backend whose loads it holds open (an asyncio.Event per
key), so every question ("how many loads had started while the first was still running?") has
one answer, whatever the machine's speed. Keys, values, errors and the number of callers are
drawn per run. Every wait is bounded. Besides misses, hits (of a cached None and of a falsy
value too), failures and different keys, it cancels one waiting caller and then the first caller
of another key (a caller that gives up, even the one whose miss started the load, must not
cancel the load the others share), and checks that `cache` and `inflight` gain no key nobody
asked for and keep the entries of other keys.
"""
from __future__ import annotations

import asyncio
import collections
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


_MISSING = object()
_WAIT_S = 2.0          # callers must all have answered this long after their loads ended
_SETTLE_TICKS = 30     # loop iterations given to the answer to start its loads


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
                await asyncio.wait_for(gate.wait(), 10 * _WAIT_S)
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


_ENDED = {"failed": "after the load failed", "returned": "after the load had returned",
          "cancelled": "after the load was cancelled", "started": "while the load ran",
          None: "and load had not been called"}


async def _finish(tasks, what: str, backend: _Backend, *keys) -> list:
    """Outcomes (value or exception; CancelledError for a cancelled caller) of `tasks`, or
    Wrong if some still wait _WAIT_S after the loads of `keys` were let go (the message says
    how the latest of those loads ended)."""
    if tasks:
        await asyncio.wait(tasks, timeout=_WAIT_S)
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
        ends = [backend.last.get(k) for k in keys]
        ended = _ENDED[next((e for e in ("failed", "cancelled", "started", None) if e in ends),
                            "returned")]
        raise Wrong(f"{len(pending)} of the {len(tasks)} callers {what} were still waiting "
                    f"{_WAIT_S:g} s {ended}: they wait for something nobody "
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


def _no_errors(outcomes, keys, backend: _Backend) -> None:
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


def _shared_coroutine(outcomes, inflight_seen: bool, key, n: int) -> None:
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
         "`value = await asyncio.shield(task)` (so a caller that gives up does not cancel the "
         "load for the others), store it in `cache[key]` and return it.")


class _Inflight(dict):
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


@exercise("06.single_flight", reference=single_flight, title="Exercise 2 · single_flight",
          hint=_HINT, timeout_s=20.0)
async def check_single_flight(impl) -> None:
    rng = run_rng("06.single_flight")
    names = rng.sample(range(100, 1000), 11)
    k1, k_falsy, k_none, k2, ka, kb, ke, kc, kd, k_spare, k_kept = (f"user:{n}" for n in names)
    values = {k: f"profile of {k} (#{rng.randint(1000, 9999)})"
              for k in (k1, k2, ka, kb, ke, kc, kd)}
    values[k_falsy], values[k_none] = rng.choice([0, "", [], 0.0]), None
    backend = _Backend(values)
    kept = f"profile of {k_kept} (cached earlier by someone else)"
    cache, inflight = {k_kept: kept}, _Inflight()
    inflight[k_spare] = "(a load of another key, made by someone else)"
    started: list = []
    try:
        await _check(impl, rng, backend, cache, inflight, started, k1, k_falsy, k_none, k2, ka,
                     kb, ke, kc, kd, k_spare, k_kept)
    finally:
        for t in started:
            t.cancel()
        for gate in backend.gates.values():
            gate.set()
        if started:
            await asyncio.wait(started, timeout=1.0)
        backend.close_unawaited()


def _others_kept(cache, inflight, k_spare, k_kept, kept, asked) -> None:
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


def _loaded_again(load_tasks, callers, key, err, n) -> None:
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


def _outcomes_told(tasks, value) -> str:
    """What the other callers `tasks` got, e.g. "of the other 3 callers, 2 got CancelledError,
    1 was still waiting 2 s after the load ended"; "" if all got `value`."""
    told = collections.Counter()
    for t in tasks:
        if not t.done():
            told[f"still waiting {_WAIT_S:g} s after the load ended"] += 1
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


async def _first_caller_gives_up(impl, rng, backend, cache, inflight, started, key) -> None:
    """Wrong unless cancelling the first caller of `key` (the one whose miss started its load)
    leaves the load running for the others, and a caller arriving after that joins it."""
    n = rng.randint(3, 8)
    backend.hold(key)
    callers = _start(impl, cache, inflight, key, backend, n)
    started += callers
    await _settle()
    first, waiters = callers[0], callers[1:]
    if backend.count(key) != 1:        # shown earlier, in step 3; a load must be running here
        return
    first.cancel()
    await _settle()
    load_cancelled = backend.last.get(key) == "cancelled"
    inline = backend.tasks_of(key)[0] is first
    still_inflight = key in inflight
    late = _start(impl, cache, inflight, key, backend)
    started += late
    await _settle()
    loads_while_running = backend.count(key)
    backend.release(key)
    await asyncio.wait(waiters + late, timeout=_WAIT_S)
    told = _outcomes_told(waiters, backend.values[key])
    late_waiting = not late[0].done()
    for t in waiters + late:
        if not t.done():
            t.cancel()
    gave_up = f"cancelling the first caller of {key!r} (the one whose miss started the load)"
    hint = ("Run the load in a task of its own (`task = asyncio.ensure_future(load(key))`, kept "
            "in `inflight[key]`), and have every caller, the first one too, "
            "`await asyncio.shield(task)`: a caller that gives up then leaves it running.")
    them = told or (f"the other {len(waiters)} callers got the value only from another "
                    f"load ({backend.count(key)} loads in all)")
    if load_cancelled and inline:
        raise Wrong(f"{gave_up} cancelled the load itself: load({key!r}) ran inside that "
                    "caller's own task, not in a task of its own, so it was cancelled with it; "
                    f"{them}.", hint)
    if load_cancelled:
        raise Wrong(f"{gave_up} cancelled the load task the others were waiting for; {them}. "
                    "The first caller must await it through asyncio.shield too.", hint)
    if told:
        raise Wrong(f"{gave_up} left the load running, yet {them}.", hint)
    if loads_while_running > 1:
        where = (f"inflight no longer held {key!r}" if not still_inflight else
                 f"inflight still held {key!r}")
        raise Wrong(f"after the first caller of {key!r} was cancelled, {where}, and a caller "
                    f"arriving while its load still ran started a second load: "
                    f"{loads_while_running} loads for one miss.",
                    "Remove the key from `inflight` when the load ends (a done "
                    "callback on the task), not when a caller stops waiting.")
    if late_waiting:
        raise Wrong(f"after the first caller of {key!r} was cancelled, a caller arriving while "
                    f"its load ran was still waiting {_WAIT_S:g} s after the load returned.",
                    "Every caller that finds the load in `inflight` awaits the same task.")
    if late[0].cancelled():
        raise Wrong(f"after the first caller of {key!r} was cancelled, a caller arriving while "
                    "its load ran got CancelledError, though nobody cancelled it.", hint)
    _no_errors([late[0].exception() or late[0].result()], key, backend)
    if late[0].result() != backend.values[key]:
        raise Wrong(f"after the first caller of {key!r} was cancelled, a caller arriving while "
                    f"the load ran got {late[0].result()!r} instead of "
                    f"{backend.values[key]!r}.")
    if cache.get(key, _MISSING) != backend.values[key]:
        raise Wrong(f"the first caller of {key!r} was cancelled while the load ran; the load "
                    f"returned and the others got its value, yet cache[{key!r}] is "
                    f"{cache.get(key, '(missing)')!r}.",
                    "Store the value whoever is still waiting when the load ends: in every "
                    "caller after its await, or in the task itself.")


async def _check(impl, rng, backend, cache, inflight, started, k1, k_falsy, k_none, k2, ka, kb,
                 ke, kc, kd, k_spare, k_kept) -> None:
    values, kept = backend.values, cache[k_kept]
    asked = []

    def others_kept(*keys):
        asked.extend(k for k in keys if k not in asked)
        _others_kept(cache, inflight, k_spare, k_kept, kept, asked)
    # 1. One call: loads, stores in cache, leaves nothing in inflight.
    started += _start(impl, cache, inflight, k1, backend)
    (got,) = await _finish(started[-1:], f"for {k1!r}", backend, k1)
    _no_errors([got], k1, backend)
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
    others_kept(k1)
    # 2. A hit, and values that are falsy: one of 0, "", [], 0.0, then None.
    started += _start(impl, cache, inflight, k1, backend)
    await _finish(started[-1:], f"for {k1!r}", backend, k1)
    if backend.count(k1) != 1:
        raise Wrong(f"{k1!r} was in cache, yet the second call loaded it again.",
                    "Check `if key in cache: return cache[key]` first.")
    for k in (k_falsy, k_none):
        for _ in range(2):
            started += _start(impl, cache, inflight, k, backend)
            (got,) = await _finish(started[-1:], f"for {k!r}", backend, k)
            _no_errors([got], k, backend)
        if backend.count(k) != 1:
            raise Wrong(f"the value of {k!r} is {values[k]!r}, and two calls loaded it "
                        f"{backend.count(k)} times: a falsy value is still a cached value, and "
                        "so is None (`if cache.get(key):` treats every falsy value as missing, "
                        "`if cache.get(key) is not None:` treats None as missing).",
                        "Test `if key in cache: return cache[key]`.")
    others_kept(k_falsy, k_none)
    # 3. Concurrent misses for one key: one load; everyone gets its value.
    n = rng.randint(4, 12)
    backend.hold(k2)
    started += _start(impl, cache, inflight, k2, backend, n)
    await _settle()
    loads = backend.count(k2)
    backend.release(k2)
    outcomes = await _finish(started[-n:], f"for {k2!r}", backend, k2)
    _shared_coroutine(outcomes, inflight.coroutine_stored, k2, n)
    if loads > 1:
        raise Wrong(f"{n} callers missed {k2!r} at the same time and load was called {loads} "
                    "times while the first load was still running (no single-flight: each "
                    "caller checks the cache, finds nothing, and loads; that is the thundering "
                    "herd).", "The first miss records its load in `inflight[key]`; later misses "
                    "find it there and await the same task instead of calling load.")
    if loads == 0:
        raise Wrong(f"{n} callers missed {k2!r} and none had called load after "
                    f"{_SETTLE_TICKS} turns of the event loop.", "Call load on a miss.")
    _no_errors(outcomes, k2, backend)
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
    outcomes = await _finish(tasks, f"for {ka!r} and {kb!r}", backend, ka, kb)
    for k, got in zip(order, outcomes):
        if got != values[k] and got in (values[ka], values[kb]):
            raise Wrong(f"a caller for {k!r} got the value of {other if k == first else first!r}"
                        f" ({got!r}): one in-flight load shared by all keys (a single global "
                        "future or task) hands every caller whatever is loading, whatever its "
                        "key.", "Keep one load per key: `inflight[key]`.")
    _no_errors(outcomes, order, backend)
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
    outcomes = await _finish(started[-n:], f"for {ke!r}", backend, ke)
    loads = backend.count(ke)
    bad = [got for got in outcomes if not (type(got) is type(err) and str(got) == str(err))]
    if loads > 1:
        _loaded_again(backend.tasks_of(ke), started[-n:], ke, err, n)
    if bad:
        raise Wrong(f"the load of {ke!r} failed with {raised(err)}; a waiting caller got "
                    f"{raised(bad[0]) if isinstance(bad[0], BaseException) else repr(bad[0])} "
                    "instead of that error.", "Let the load's exception reach every waiter.")
    stored = cache.get(ke, _MISSING)
    started += _start(impl, cache, inflight, ke, backend)
    (got,) = await _finish(started[-1:], f"for {ke!r}", backend, ke)
    retried = backend.count(ke) > loads
    if isinstance(stored, BaseException):
        raise Wrong(f"after the load of {ke!r} failed, cache[{ke!r}] = {stored!r}: caching the "
                    "exception, for ever, turns one blip into a permanent error for that key.",
                    "Store only values; a failed load leaves the cache as it was.")
    if stored is not _MISSING:
        then = ("makes later calls return it instead of retrying (the next call returned "
                f"{raised(got) if isinstance(got, BaseException) else repr(got)} without "
                "calling load)" if not retried else
                "puts a value there that load never returned, for any reader of the cache")
        raise Wrong(f"after the load failed, cache[{ke!r}] = {stored!r}: storing anything for "
                    f"a failed load {then}.",
                    "Store only values; a failed load leaves the cache as it was.")
    if not retried:
        where = ("inflight still holds the failed load (never removing the in-flight entry), "
                 "so every later caller awaits it and gets its old error"
                 if ke in inflight else "the failure was remembered")
        raise Wrong(f"after the load of {ke!r} failed, the next call got "
                    f"{raised(got) if isinstance(got, BaseException) else repr(got)} without "
                    f"calling load: {where}. The next call must try again.",
                    "Remove the key from `inflight` when the load ends, success or failure.")
    _no_errors([got], ke, backend)
    if got != values[ke]:
        raise Wrong(f"the retry of {ke!r} returned {got!r}, expected {values[ke]!r}.")
    others_kept(k2, ka, kb, ke)
    # 6. One caller gives up (is cancelled) while the others wait: the load runs on for them.
    n = rng.randint(3, 8)
    backend.hold(kc)
    callers = _start(impl, cache, inflight, kc, backend, n)
    started += callers
    await _settle()
    callers[-1].cancel()                  # the last to arrive: a waiter, not the one loading
    await _settle()
    load_cancelled = kc in backend.cancelled
    backend.release(kc)
    others = callers[:-1]
    outcomes = await _finish(others, f"for {kc!r}", backend, kc)
    cancelled = sum(isinstance(got, asyncio.CancelledError) for got in outcomes)
    if cancelled:
        what, shield = (("the shared load", "asyncio.shield(task)") if load_cancelled else
                        ("what the others were awaiting (the load itself was not cancelled)",
                         "asyncio.shield(...) around the shared task or future"))
        whom = (f"the other {len(others)} callers" if cancelled == len(others) else
                f"{cancelled} of the other {len(others)} callers")
        nothing = "" if kc in cache else "; nothing was cached"
        raise Wrong(f"cancelling one caller of {kc!r} cancelled {what}: {whom} got "
                    f"CancelledError{nothing}. Await {shield} so a caller that gives up "
                    "leaves the load running for the others.",
                    "`value = await asyncio.shield(task)`: cancelling the caller cancels only "
                    "its wait, not the task the others share.")
    _no_errors(outcomes, kc, backend)
    if backend.count(kc) != 1:
        raise Wrong(f"{n} callers of {kc!r}, one of them cancelled while the load ran, made "
                    f"{backend.count(kc)} loads, expected 1.")
    if any(got != values[kc] for got in outcomes):
        wrong = next(got for got in outcomes if got != values[kc])
        raise Wrong(f"one caller of {kc!r} was cancelled; another got {wrong!r} instead of "
                    f"{values[kc]!r}.")
    if cache.get(kc) != values[kc]:
        raise Wrong(f"one of {n} callers of {kc!r} was cancelled while the load ran; the load "
                    f"returned, yet cache[{kc!r}] is {cache.get(kc, '(missing)')!r}.",
                    "The callers still waiting store the value when they get it.")
    others_kept(kc)
    # 7. The first caller, whose miss started the load, gives up: the load runs on for the
    # others, and a caller arriving after that still joins it.
    await _first_caller_gives_up(impl, rng, backend, cache, inflight, started, kd)
    others_kept(kd)
