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

The fake backend, and the helpers that start callers and read what they got, are in
labkit/checks/perf_cache_harness.py; this module holds the reference and the check's steps.
"""
from __future__ import annotations

import asyncio

from . import Wrong, exercise, raised, run_rng
from .perf_cache_harness import (MISSING, SETTLE_TICKS, WAIT_S, Inflight, _Backend, finish,
                                 loaded_again, no_errors, others_untouched, outcomes_told,
                                 settle, shared_coroutine, start, timed_keys)


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


_HINT = ("If the key is in `cache`, return it. Otherwise, if `inflight` has a load for the key, "
         "await that one; if not, start it with `task = asyncio.ensure_future(load(key))`, put "
         "it in `inflight[key]`, and remove it when it ends "
         "(`task.add_done_callback(lambda _: inflight.pop(key, None))`). Then "
         "`value = await asyncio.shield(task)` (so a caller that gives up does not cancel the "
         "load for the others), store it in `cache[key]` and return it.")


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
    cache, inflight = {k_kept: kept}, Inflight()
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


async def _first_caller_gives_up(impl, rng, backend, cache, inflight, started, key) -> None:
    """Wrong unless cancelling the first caller of `key` (the one whose miss started its load)
    leaves the load running for the others, and a caller arriving after that joins it."""
    n = rng.randint(3, 8)
    backend.hold(key)
    callers = start(impl, cache, inflight, key, backend, n)
    started += callers
    await settle()
    first, waiters = callers[0], callers[1:]
    if backend.count(key) != 1:        # shown earlier, in step 3; a load must be running here
        return
    first.cancel()
    await settle()
    load_cancelled = backend.last.get(key) == "cancelled"
    inline = backend.tasks_of(key)[0] is first
    still_inflight = key in inflight
    late = start(impl, cache, inflight, key, backend)
    started += late
    await settle()
    loads_while_running = backend.count(key)
    backend.release(key)
    await asyncio.wait(waiters + late, timeout=WAIT_S)
    told = outcomes_told(waiters, backend.values[key])
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
                    f"its load ran was still waiting {WAIT_S:g} s after the load returned.",
                    "Every caller that finds the load in `inflight` awaits the same task.")
    if late[0].cancelled():
        raise Wrong(f"after the first caller of {key!r} was cancelled, a caller arriving while "
                    "its load ran got CancelledError, though nobody cancelled it.", hint)
    no_errors([late[0].exception() or late[0].result()], key, backend)
    if late[0].result() != backend.values[key]:
        raise Wrong(f"after the first caller of {key!r} was cancelled, a caller arriving while "
                    f"the load ran got {late[0].result()!r} instead of "
                    f"{backend.values[key]!r}.")
    if cache.get(key, MISSING) != backend.values[key]:
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
        others_untouched(cache, inflight, k_spare, k_kept, kept, asked)
    # 1. One call: loads, stores in cache, leaves nothing in inflight.
    started += start(impl, cache, inflight, k1, backend)
    (got,) = await finish(started[-1:], f"for {k1!r}", backend, k1)
    no_errors([got], k1, backend)
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
    started += start(impl, cache, inflight, k1, backend)
    await finish(started[-1:], f"for {k1!r}", backend, k1)
    if backend.count(k1) != 1:
        raise Wrong(f"{k1!r} was in cache, yet the second call loaded it again.",
                    "Check `if key in cache: return cache[key]` first.")
    for k in (k_falsy, k_none):
        for _ in range(2):
            started += start(impl, cache, inflight, k, backend)
            (got,) = await finish(started[-1:], f"for {k!r}", backend, k)
            no_errors([got], k, backend)
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
    started += start(impl, cache, inflight, k2, backend, n)
    await settle()
    loads = backend.count(k2)
    backend.release(k2)
    outcomes = await finish(started[-n:], f"for {k2!r}", backend, k2)
    shared_coroutine(outcomes, inflight.coroutine_stored, k2, n)
    if loads > 1:
        raise Wrong(f"{n} callers missed {k2!r} at the same time and load was called {loads} "
                    "times while the first load was still running (no single-flight: each "
                    "caller checks the cache, finds nothing, and loads; that is the thundering "
                    "herd).", "The first miss records its load in `inflight[key]`; later misses "
                    "find it there and await the same task instead of calling load.")
    if loads == 0:
        raise Wrong(f"{n} callers missed {k2!r} and none had called load after "
                    f"{SETTLE_TICKS} turns of the event loop.", "Call load on a miss.")
    no_errors(outcomes, k2, backend)
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
        tasks += start(impl, cache, inflight, k, backend)
    started += tasks
    await settle()
    both = {ka, kb} <= set(backend.calls)
    first = next((k for k in backend.calls if k in (ka, kb)), ka)
    other = kb if first == ka else ka
    backend.release(first)
    await settle()
    backend.release(other)
    outcomes = await finish(tasks, f"for {ka!r} and {kb!r}", backend, ka, kb)
    for k, got in zip(order, outcomes):
        if got != values[k] and got in (values[ka], values[kb]):
            raise Wrong(f"a caller for {k!r} got the value of {other if k == first else first!r}"
                        f" ({got!r}): one in-flight load shared by all keys (a single global "
                        "future or task) hands every caller whatever is loading, whatever its "
                        "key.", "Keep one load per key: `inflight[key]`.")
    no_errors(outcomes, order, backend)
    if not both:
        took_s = await timed_keys(impl, 10, 0.03)
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
    started += start(impl, cache, inflight, ke, backend, n)
    await settle()
    backend.release(ke)
    outcomes = await finish(started[-n:], f"for {ke!r}", backend, ke)
    loads = backend.count(ke)
    bad = [got for got in outcomes if not (type(got) is type(err) and str(got) == str(err))]
    if loads > 1:
        loaded_again(backend.tasks_of(ke), started[-n:], ke, err, n)
    if bad:
        raise Wrong(f"the load of {ke!r} failed with {raised(err)}; a waiting caller got "
                    f"{raised(bad[0]) if isinstance(bad[0], BaseException) else repr(bad[0])} "
                    "instead of that error.", "Let the load's exception reach every waiter.")
    stored = cache.get(ke, MISSING)
    started += start(impl, cache, inflight, ke, backend)
    (got,) = await finish(started[-1:], f"for {ke!r}", backend, ke)
    retried = backend.count(ke) > loads
    if isinstance(stored, BaseException):
        raise Wrong(f"after the load of {ke!r} failed, cache[{ke!r}] = {stored!r}: caching the "
                    "exception, for ever, turns one blip into a permanent error for that key.",
                    "Store only values; a failed load leaves the cache as it was.")
    if stored is not MISSING:
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
    no_errors([got], ke, backend)
    if got != values[ke]:
        raise Wrong(f"the retry of {ke!r} returned {got!r}, expected {values[ke]!r}.")
    others_kept(k2, ka, kb, ke)
    # 6. One caller gives up (is cancelled) while the others wait: the load runs on for them.
    n = rng.randint(3, 8)
    backend.hold(kc)
    callers = start(impl, cache, inflight, kc, backend, n)
    started += callers
    await settle()
    callers[-1].cancel()                  # the last to arrive: a waiter, not the one loading
    await settle()
    load_cancelled = kc in backend.cancelled
    backend.release(kc)
    others = callers[:-1]
    outcomes = await finish(others, f"for {kc!r}", backend, kc)
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
    no_errors(outcomes, kc, backend)
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
