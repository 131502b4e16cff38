"""Chapter 06, exercise 06.collect_batch (notebooks/06_performance.ipynb): the flush rule of a
batcher, as the consumer side of a queue. ``async def collect_batch(queue, max_batch,
max_wait_s) -> list``: wait for the first item, then take items until the batch holds
`max_batch` or `max_wait_s` has passed since the first was taken; return them in arrival order
(a tuple is accepted too). Items already waiting go in without waiting, up to max_batch (like
`labkit.patterns.batcher.Batcher`); the rest stay queued. At max_wait_s = 0 only the first item
is accepted too: on Python 3.11 ``asyncio.wait_for(queue.get(), 0)`` times out even with an
item waiting (3.12 returns it). The check feeds an `asyncio.Queue` on labkit.sim's virtual
clock, calls `collect_batch` again and again as a consumer loop would, and compares each batch
and when it came back with this rule; sizes, waits and arrivals vary per run. The answer runs
through `labkit.checks.virtual_time` on the check's own thread: one that blocks or spins on
asyncio.sleep(0) is stopped, and no thread is left running.
"""
from __future__ import annotations

import asyncio
import collections

from labkit import sim
from . import Wrong, exercise, run_rng, virtual_time

_TOL_S = 1e-6          # virtual time is exact: only float rounding is forgiven
_REAL_LIMIT_S = 10.0   # real seconds the whole simulated check may take
_SPIN_STEPS = 20_000   # loop steps without the virtual clock moving: the answer spins


async def collect_batch(queue, max_batch, max_wait_s):
    """The next batch from `queue`: at most `max_batch` items, returned as soon as it is full
    or when `max_wait_s` has passed since its first item was taken (seconds, loop clock)."""
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]                  # the timer starts with the first item
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        if not queue.empty():                    # already waiting: no need to wait for it
            batch.append(queue.get_nowait())
            continue
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return batch


def _expected(arrivals, max_batch, max_wait_s, now=0.0):
    """[(return time, items, time the first item was taken)] for a consumer that calls the
    rule at `now`, then again as soon as it returns. `arrivals` is [(time, item)] sorted."""
    ts = [t for t, _ in arrivals]
    out, i, n = [], 0, len(arrivals)
    while i < n:
        start = max(now, ts[i])
        deadline = start + max_wait_s
        j = i
        while j < n and j - i < max_batch and (ts[j] <= start or ts[j] < deadline):
            j += 1
        t_ret = max(start, ts[j - 1]) if j - i == max_batch else deadline
        out.append((t_ret, [x for _, x in arrivals[i:j]], start))
        i, now = j, t_ret
    return out


def _clear_of_deadlines(arrivals, max_batch, max_wait_s, gap_s=0.002) -> bool:
    """No arrival lands within `gap_s` of a max_wait deadline (no ties to argue about; items
    already waiting when the batch started are no tie)."""
    for t_ret, items, start in _expected(arrivals, max_batch, max_wait_s):
        if len(items) < max_batch and any(abs(t - t_ret) < gap_s for t, _ in arrivals
                                          if t > start):
            return False
    return True


def _items(rng, n):
    """n item values, unsorted, one of them twice (two callers may ask for the same thing)."""
    xs = rng.sample(range(100, 1000), n)
    if n >= 3:
        xs[2] = xs[0]
    if xs == sorted(xs):
        xs.reverse()
    return xs


def _scenarios(rng):
    """[(name, arrivals, max_batch, max_wait_s)] for one check run."""
    out = []
    for _ in range(100):                     # a trickle: items closer together than max_wait
        mw = rng.choice([0.02, 0.03, 0.05, 0.08])
        m = rng.randint(6, 8)
        gap = mw * rng.uniform(0.25, 0.45)
        first = rng.uniform(0.003, 0.012)
        arr = list(zip([first + k * gap for k in range(m)], _items(rng, m)))
        mb = m + rng.randint(2, 5)
        if _clear_of_deadlines(arr, mb, mw):
            break
    out.append(("trickle", arr, mb, mw))
    mb = rng.choice([3, 4, 5, 6, 7, 12])       # a burst: full batches, then a remainder
    mw = rng.choice([0.02, 0.04, 0.06])
    t = rng.uniform(0.002, 0.01)
    out.append(("burst", [(t, x) for x in _items(rng, 2 * mb + rng.randint(1, mb - 1))], mb, mw))
    for _ in range(100):                       # the queue is empty when collect_batch starts
        mw = rng.choice([0.02, 0.03, 0.05])
        t1 = mw * rng.uniform(2.2, 3.0)
        ts = [t1, t1 + mw * rng.uniform(0.2, 0.6), t1 + mw * rng.uniform(1.3, 1.6)]
        arr = list(zip(ts, _items(rng, 3)))
        if _clear_of_deadlines(arr, 5, mw):
            break
    out.append(("late first item", arr, 5, mw))
    for _ in range(100):                       # Poisson arrivals: some batches fill, some time out
        mb, mw = rng.randint(3, 6), rng.choice([0.01, 0.02])
        t, arr = 0.0, []
        for x in _items(rng, 40):
            t += rng.expovariate(mb / mw * rng.choice([0.3, 1.5]))
            arr.append((t, x))
        if _clear_of_deadlines(arr, mb, mw):
            break
    out.append(("random arrivals", arr, mb, mw))
    mb = rng.randint(3, 6)                     # max_wait_s = 0: take what is already waiting
    t = rng.uniform(0.002, 0.01)
    xs = _items(rng, mb + rng.randint(1, mb - 1) + 2)
    arr = [(t, x) for x in xs[:-2]] + [(t + 0.005, xs[-2]), (t + 0.011, xs[-1])]
    out.append(("max_wait_s 0, items already queued", arr, mb, 0.0))
    return out


def _call(impl, queue, max_batch, max_wait_s):
    """impl(...) to await: an async def, a def returning a coroutine, an async __call__..."""
    return virtual_time.awaitable(
        impl(queue, max_batch, max_wait_s), result="batch", waits_on="a queue",
        call=f"collect_batch(queue, {max_batch}, {max_wait_s:g})", wait_with="queue.get()",
        signature="collect_batch(queue, max_batch, max_wait_s)")


async def _consume(impl, arrivals, max_batch, max_wait_s):
    """Call impl again and again on a queue fed with `arrivals` (virtual time). Returns
    [(call time, return time, batch, lost, leaked)]: `lost` the items taken from the queue so
    far but never returned, `leaked` the first return time at which a queue.get() the answer
    started was still waiting (None: never); it ends with ("waiting", time, items queued,
    "get"/"join"/None: what the call waited on) if one never returned."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    queue: asyncio.Queue = asyncio.Queue()
    put = 0

    async def produce():
        nonlocal put
        for t, x in arrivals:
            if t0 + t > loop.time():
                await asyncio.sleep(t0 + t - loop.time())
            queue.put_nowait(x)
            put += 1

    producer = asyncio.ensure_future(produce())
    horizon = t0 + arrivals[-1][0] + 4 * max_wait_s + 1.0
    on = []          # just before the horizon (whose timeout cancels it): what a call waits on
    watch = loop.call_at(horizon - _TOL_S, lambda: on.append(
        "get" if any(not g.done() for g in queue._getters) else "join"
        if any(not f.done() for f in queue._finished._waiters) else None))
    got, taken, returned, leaked, previous = [], 0, collections.Counter(), None, None
    try:
        while taken < len(arrivals) and len(got) <= len(arrivals) + 2:
            called = loop.time() - t0
            try:
                async with asyncio.timeout_at(horizon) as cm:
                    batch = await _call(impl, queue, max_batch, max_wait_s)
            except TimeoutError as err:
                if not cm.expired():
                    raise Wrong(f"your collect_batch raised TimeoutError at t = "
                                f"{(loop.time() - t0) * 1000:.1f} ms: when max_wait_s runs "
                                "out, that is not an error; return the batch collected so far.",
                                "Catch the timeout (`except asyncio.TimeoutError: break`) and "
                                "return the batch.") from err
                got.append(("waiting", loop.time() - t0, queue.qsize(), (on or [None])[-1]))
                break
            if not isinstance(batch, (list, tuple)):
                raise Wrong(f"collect_batch returned {batch!r}; return the batch as a list of "
                            "the items taken from the queue.", "`return batch`")
            if isinstance(batch, list) and batch is previous:
                raise Wrong("collect_batch returned the very same list object twice: the "
                            "second call emptied and refilled the list the first call had "
                            "returned, so whoever still held the first batch saw its items "
                            "change. Make a new list in every call.",
                            "Start each call with a fresh `batch = [...]` inside the function.")
            previous = batch
            if any(isinstance(x, (list, tuple, set, dict)) for x in batch):
                shown = repr(batch) if len(repr(batch)) <= 80 else repr(batch)[:77] + "..."
                raise Wrong(f"collect_batch returned a list of lists ({shown}): return the "
                            "items themselves, as a flat list (`return batch`, not `return "
                            "[batch]`).", "`return batch`")
            returned.update(batch)
            if leaked is None and any(not g.done() for g in queue._getters):
                leaked = loop.time() - t0
            removed = put - queue.qsize()
            lost = list((collections.Counter(x for _, x in arrivals[:removed]) - returned)
                        .elements()) if removed > sum(returned.values()) else []
            got.append((called, loop.time() - t0, list(batch), lost, leaked))
            taken += len(batch)
    finally:
        producer.cancel()
        watch.cancel()
    return got


def _ms(t: float) -> str:
    return f"{t * 1000:.1f} ms"


def _apart(t_exp: float, t_got: float) -> tuple[str, str, str]:
    """Both times and the gap between them in ms, with enough decimals (1 to 3) to tell the
    two apart: 39.80 ms and 39.84 ms, 0.04 ms, not 39.8 ms twice."""
    gap = abs(t_got - t_exp)
    for d in range(1 if gap >= 1e-4 else 2 if gap >= 1e-5 else 3, 4):
        a, b = round(t_exp * 1000, d), round(t_got * 1000, d)
        if a != b:
            break
    return f"{a:.{d}f} ms", f"{b:.{d}f} ms", f"{abs(b - a):.{d}f} ms"


def _diagnose(name, arrivals, max_batch, max_wait_s, got) -> None:
    """Raise Wrong at the first batch that differs from the rule, saying how it differs."""
    setup = (f"[{name}: max_batch={max_batch}, max_wait_s={max_wait_s:g}; items arrived at "
             f"{', '.join(_ms(t) for t, _ in arrivals[:8])}{' ...' if len(arrivals) > 8 else ''}"
             "; every t is in ms since this scenario started]")
    hint = ("Take the first item with `await queue.get()`, set deadline = loop.time() + "
            "max_wait_s once, then `await asyncio.wait_for(queue.get(), deadline - "
            "loop.time())` until the batch is full or the time is up.")
    taken, now, i = 0, 0.0, -1
    while taken < len(arrivals):
        t_exp, want, start = _expected(arrivals[taken:], max_batch, max_wait_s, now)[0]
        i += 1
        if i >= len(got):
            raise Wrong(f"collect_batch returned too many batches {setup}.", hint)
        if got[i][0] == "waiting":
            _, t_now, queued, on = got[i]
            part = len(want) < max_batch
            why = {"get": "waiting for more items", None: "waiting on something other than the "
                   "queue (no queue.get() was pending)", "join": "waiting in queue.join(), which "
                   "returns only once every item put in the queue has been marked task_done()"
                   + (f", the {queued} still queued for later batches too" if queued else "")}
            due = (f"{want} at t = {_ms(t_exp)}, when its first item had waited max_wait_s" if part
                   else f"the full batch {want} at t = {_ms(t_exp)}, once it held max_batch items")
            raise Wrong(f"at t = {_ms(t_now)}, long after the last item arrived (t = "
                        f"{_ms(arrivals[-1][0])}), your collect_batch had not returned: it was "
                        f"{why[on]}{', and a partial batch was never sent' * part}. It should "
                        f"have returned {due} {setup}.", "Stop waiting when max_wait_s has "
                        "passed since the first item: `asyncio.wait_for(queue.get(), time_left)`"
                        ", and return the partial batch." if part and on == "get" else "Return "
                        "the batch once it is full or max_wait_s is up; wait for nothing else."
                        + " queue.join() is for a producer waiting for all the work to be done."
                        * (on == "join"))
        called, t_got, batch, lost, leaked = got[i]
        if lost:
            ids = ", ".join(map(str, lost[:8])) + (" ..." if len(lost) > 8 else "")
            s, were, them, callers = (("s", "were", "them", "their callers") if len(lost) > 1
                                      else ("", "was", "it", "its caller"))
            if leaked is not None:
                raise Wrong(f"item{s} {ids} {were} taken from the queue but no call of "
                            f"collect_batch returned {them}. When your collect_batch "
                            f"returned at t = {_ms(leaked)}, a queue.get() it had started was "
                            "still waiting: did a queue.get() keep running after your "
                            "timeout? Such a get() takes the next item that arrives, and "
                            f"nobody answers its caller {setup}.",
                            "Cancel the get() you stop waiting for (`getter.cancel()`), or use "
                            "`asyncio.wait_for(queue.get(), time_left)`, which cancels it.")
            took = len(batch) + len(lost)
            if took <= max_batch and all(x in batch for x in lost):
                raise Wrong(f"collect_batch returned {batch}, but {batch + lost} were taken "
                            f"(in some order): the duplicate item {lost[0]} was lost. Two "
                            "callers may ask for the same thing and each needs its own "
                            f"answer: keep every item (a list, not a set) {setup}.", hint)
            if took <= max_batch:
                raise Wrong(f"at t = {_ms(t_got)} collect_batch took {took} items from the "
                            f"queue but returned {len(batch)}: {ids} {were} lost, and nobody "
                            f"answers {callers}. Return every item you take from the queue "
                            f"{setup}.", hint)
            raise Wrong(f"at t = {_ms(t_got)} collect_batch took {took} items from the queue "
                        f"but returned {len(batch)}: {len(lost)} item{s} ({ids}) {were} lost, "
                        f"and nobody answers {callers}. Take at most max_batch items; leave "
                        f"the rest in the queue for the next call {setup}.",
                        "Check len(batch) < max_batch before each `queue.get()` / "
                        "`get_nowait()`, instead of taking everything and cutting the list.")
        late, early = t_got > t_exp + _TOL_S, t_got < t_exp - _TOL_S
        if max_wait_s == 0 and not late and not early and batch == want[:1]:
            want = want[:1]             # also right at max_wait_s = 0 (see the docstring)
        s_exp, s_got, s_gap = _apart(t_exp, t_got)
        if late and len(want) == max_batch:
            raise Wrong(f"a full batch waited: {max_batch} items were waiting at t = {s_exp}, "
                        f"but your collect_batch returned only at t = {s_got}, {s_gap} late. "
                        "A full batch is max_batch items, and it goes out as soon as it has "
                        f"them {setup}.", hint)
        if len(batch) == max_batch + 1:
            raise Wrong(f"collect_batch returned {len(batch)} items with max_batch="
                        f"{max_batch}: off by one, stop when len(batch) == max_batch "
                        f"(max_batch + 1 is one too many) {setup}.", hint)
        if len(batch) > max_batch:
            raise Wrong(f"collect_batch returned {len(batch)} items with max_batch="
                        f"{max_batch}: a full batch is max_batch items, no more {setup}.", hint)
        if not batch:
            raise Wrong(f"collect_batch returned an empty batch at t = {_ms(t_got)}: wait for "
                        "the first item (`await queue.get()`) before the max_wait_s timer "
                        f"starts; an empty batch is a wasted call {setup}.", hint)
        arrived = [t for t, _ in arrivals[taken:taken + len(batch)]]
        if max_wait_s == 0 and not late and not early and 1 < len(batch) < len(want):
            raise Wrong(f"with max_wait_s=0, at t = {_ms(t_got)} collect_batch returned "
                        f"{batch} while {len(want)} items were already waiting in the queue "
                        f"(max_batch={max_batch}): it should have returned {want} (every item "
                        f"already waiting, up to max_batch) or just {want[:1]} (the first "
                        "item; Python 3.11's wait_for(queue.get(), 0) does that), not some of "
                        f"them {setup}.",
                        "Before waiting, take what is already there: `while len(batch) < "
                        "max_batch and not queue.empty(): batch.append(queue.get_nowait())`.")
        if not late and not early and len(want) == max_batch and len(batch) < max_batch:
            raise Wrong(f"at t = {_ms(t_got)} collect_batch returned {len(batch)} items while "
                        f"{max_batch} items were waiting and max_batch={max_batch}: "
                        f"a full batch is max_batch items {setup}.", hint)
        if late and len(batch) > len(want) and abs(t_got - (arrived[-1] + max_wait_s)) <= _TOL_S:
            raise Wrong(f"your batch went out at t = {_ms(t_got)}, max_wait_s after its newest "
                        f"item (t = {_ms(arrived[-1])}): you measured the wait from the newest "
                        f"item. Its oldest item was taken at t = {_ms(start)}, so the batch was "
                        f"due at t = {_ms(t_exp)}; with items arriving steadily, a timer that "
                        f"restarts on every item may never fire {setup}.",
                        "Compute deadline = loop.time() + max_wait_s once, after the first "
                        "item, and wait only for deadline - loop.time() each time.")
        if early and len(batch) < max_batch and abs(t_got - (called + max_wait_s)) <= _TOL_S \
                and called < start - _TOL_S:
            raise Wrong(f"your max_wait_s timer started when collect_batch was called (t = "
                        f"{_ms(called)}), before the first item arrived (t = {_ms(start)}): "
                        f"the batch went out at t = {_ms(t_got)} instead of t = {_ms(t_exp)} "
                        f"{setup}.",
                        "Take the first item with `await queue.get()` (no timeout), and only "
                        "then set the deadline.")
        if batch != want and collections.Counter(batch) == collections.Counter(want):
            raise Wrong(f"collect_batch returned {batch}, the right items but not in arrival "
                        f"order {want}: callers' results are matched by position, so keep the "
                        f"queue's order {setup}.", hint)
        if set(batch) == set(want) and len(batch) < len(want):
            dup = [x for x, k in collections.Counter(want).items() if k > 1]
            raise Wrong(f"collect_batch returned {batch}, but {want} were taken: the "
                        f"duplicate item {dup[0] if dup else ''} was lost. Two callers may ask "
                        "for the same thing and each needs its own answer: keep every item "
                        f"(a list, not a set) {setup}.", hint)
        if late:
            raise Wrong(f"collect_batch returned {batch} at t = {s_got} ({s_gap} late), but "
                        f"its first item had waited max_wait_s at t = {s_exp}: it should have "
                        f"returned {want} then (polling in steps? wait with a timeout of "
                        f"exactly the time left) {setup}.", hint)
        if early:
            raise Wrong(f"collect_batch returned {batch} at t = {s_got}, before the batch was "
                        f"full and before its first item (taken at t = {_ms(start)}) had waited "
                        f"max_wait_s: more items were coming, and it should have returned "
                        f"{want} at t = {s_exp} {setup}.", hint)
        if batch != want:
            also = f" (or just {want[:1]}: max_wait_s is 0)" * (max_wait_s == 0 < len(want) - 1)
            raise Wrong(f"collect_batch returned {batch} at t = {_ms(t_got)}, expected {want}"
                        f"{also} {setup}.", hint)
        taken, now = taken + len(batch), t_exp


@exercise("06.collect_batch", reference=collect_batch, title="Exercise 1 · collect_batch",
          hint="The timer starts with the first item and is never restarted: deadline = "
               "loop.time() + max_wait_s after the first `await queue.get()`; then take items "
               "with `asyncio.wait_for(queue.get(), deadline - loop.time())` until "
               "len(batch) == max_batch or the time is up (items already in the queue first: "
               "`queue.get_nowait()` while not queue.empty()).")
async def check_collect_batch(impl) -> None:
    scenarios = _scenarios(run_rng("06.collect_batch"))
    started = [0.0]                     # virtual time the current scenario started at

    async def main():
        out = []
        for name, arrivals, mb, mw in scenarios:
            started[0] = asyncio.get_running_loop().time()
            out.append(await _consume(impl, arrivals, mb, mw))
        return out

    try:
        try:
            runs = await virtual_time.simulate(main, real_limit_s=_REAL_LIMIT_S,
                                               spin_steps=_SPIN_STEPS)
            for (name, arrivals, mb, mw), got in zip(scenarios, runs):
                _diagnose(name, arrivals, mb, mw, got)
        except virtual_time.Spinning as err:
            raise Wrong(err.explain("collect_batch", advice="Wait for the next item instead.",
                                    at=f"{_ms(err.at_s - started[0])} (since its scenario "
                                       "started)"),
                        "`await asyncio.wait_for(queue.get(), deadline - loop.time())` waits "
                        "exactly until an item arrives or the time is up.") from None
        except virtual_time.TooSlow as err:
            raise Wrong(err.explain("collect_batch"), err.HINT) from None
        except sim.SimDeadlock:
            raise Wrong("collect_batch waited on something that never happens (not the queue, "
                        "not a timer).") from None
    except Wrong as w:
        why = virtual_time.clock_misuse(impl, name="collect_batch",
                                        meanwhile=", not even the producer filling the queue",
                                        wait_with="asyncio.wait_for(queue.get(), time_left)")
        if why:
            raise Wrong(f"{why} What the check saw: {w.message}", w.hint) from None
        raise
