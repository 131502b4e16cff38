"""Chapter 06, exercise 06.collect_batch (notebooks/06_performance.ipynb): the flush rule of a
batcher, written as the consumer side of a queue.

``async def collect_batch(queue, max_batch, max_wait_s) -> list``: wait for the first item,
then keep taking items until the batch holds `max_batch` of them or `max_wait_s` has passed
since the first one was taken, whichever comes first; return the items in arrival order.
The check feeds an `asyncio.Queue` on labkit.sim's virtual clock (so times are exact and the
run is instant), calls `collect_batch` again and again as a consumer loop would, and compares
each batch and the moment it came back with this rule; `max_batch`, `max_wait_s` and the
arrivals vary per run. `labkit.patterns.batcher.Batcher` follows the same rule with a timer.
"""
from __future__ import annotations

import asyncio
import collections

from labkit import sim
from . import Wrong, exercise, run_rng

_TOL_S = 1e-6          # virtual time is exact: only float rounding is forgiven
_REAL_LIMIT_S = 10.0   # real seconds the whole simulated check may take


async def collect_batch(queue, max_batch, max_wait_s):
    """The next batch from `queue`: at most `max_batch` items, returned as soon as it is full
    or when `max_wait_s` has passed since its first item was taken (seconds, loop clock)."""
    loop = asyncio.get_running_loop()
    batch = [await queue.get()]                  # the timer starts with the first item
    deadline = loop.time() + max_wait_s
    while len(batch) < max_batch:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return batch


def _expected(arrivals, max_batch, max_wait_s):
    """[(return time, items, time the first item was taken)] for a consumer that calls the
    rule again as soon as it returns. `arrivals` is [(time, item)] sorted by time."""
    ts = [t for t, _ in arrivals]
    out, i, now, n = [], 0, 0.0, len(arrivals)
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
    """No arrival lands within `gap_s` of a max_wait deadline (no ties to argue about)."""
    for t_ret, items, start in _expected(arrivals, max_batch, max_wait_s):
        if len(items) < max_batch and any(abs(t - t_ret) < gap_s for t, _ in arrivals):
            return False
    return True


def _items(rng, n):
    """n item values, not in sorted order, with one value twice (two callers may ask for
    the same thing)."""
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
    n = 2 * mb + rng.randint(1, mb - 1)
    out.append(("burst", [(t, x) for x in _items(rng, n)], mb, mw))
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
    return out


async def _consume(impl, arrivals, max_batch, max_wait_s):
    """Call impl again and again on a queue fed with `arrivals` (virtual time). Returns
    [(call time, return time, batch)] and ends with ("waiting", time, queued items) if a
    call was still waiting long after the last arrival."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    queue: asyncio.Queue = asyncio.Queue()

    async def produce():
        for t, x in arrivals:
            if t0 + t > loop.time():
                await asyncio.sleep(t0 + t - loop.time())
            queue.put_nowait(x)

    producer = asyncio.ensure_future(produce())
    horizon = t0 + arrivals[-1][0] + 4 * max_wait_s + 1.0
    got, taken = [], 0
    try:
        while taken < len(arrivals) and len(got) <= len(arrivals) + 2:
            called = loop.time() - t0
            try:
                async with asyncio.timeout_at(horizon) as cm:
                    batch = await impl(queue, max_batch, max_wait_s)
            except TimeoutError as err:
                if not cm.expired():
                    raise Wrong(f"your collect_batch raised TimeoutError at t = "
                                f"{(loop.time() - t0) * 1000:.1f} ms: when max_wait_s runs "
                                "out, that is not an error; return the batch collected so far.",
                                "Catch the timeout (`except asyncio.TimeoutError: break`) and "
                                "return the batch.") from err
                got.append(("waiting", loop.time() - t0, queue.qsize()))
                break
            if not isinstance(batch, (list, tuple)):
                raise Wrong(f"collect_batch returned {batch!r}; return the batch as a list of "
                            "the items taken from the queue.", "`return batch`")
            got.append((called, loop.time() - t0, list(batch)))
            taken += len(batch)
    finally:
        producer.cancel()
    return got


def _ms(t: float) -> str:
    return f"{t * 1000:.1f} ms"


def _diagnose(name, arrivals, max_batch, max_wait_s, got) -> None:
    """Raise Wrong at the first batch that differs from the rule, saying how it differs."""
    setup = (f"[{name}: max_batch={max_batch}, max_wait_s={max_wait_s:g}; items arrived at "
             f"{', '.join(_ms(t) for t, _ in arrivals[:8])}{' ...' if len(arrivals) > 8 else ''}]")
    hint = ("Take the first item with `await queue.get()`, set deadline = loop.time() + "
            "max_wait_s once, then `await asyncio.wait_for(queue.get(), deadline - "
            "loop.time())` until the batch is full or the time is up.")
    expected = _expected(arrivals, max_batch, max_wait_s)
    taken = 0
    for i, (t_exp, want, start) in enumerate(expected):
        if i >= len(got):
            raise Wrong(f"collect_batch returned too many batches {setup}.", hint)
        if got[i][0] == "waiting":
            t_now = got[i][1]
            raise Wrong(f"at t = {_ms(t_now)}, long after the last item arrived (t = "
                        f"{_ms(arrivals[-1][0])}), your collect_batch was still waiting for "
                        f"more: a partial batch was never sent. It "
                        f"should have returned {want} at t = {_ms(t_exp)}, when its first "
                        f"item had waited max_wait_s {setup}.",
                        "Stop waiting when max_wait_s has passed since the first item: "
                        "`asyncio.wait_for(queue.get(), time_left)`, and return the partial "
                        "batch.")
        called, t_got, batch = got[i]
        late, early = t_got > t_exp + _TOL_S, t_got < t_exp - _TOL_S
        full_at = f"{max_batch} items were waiting at t = {_ms(t_exp)}"
        if late and len(want) == max_batch:
            raise Wrong(f"a full batch waited: {full_at}, but your collect_batch returned "
                        f"only at t = {_ms(t_got)}. A full batch is max_batch items, and it goes "
                        f"out as soon as it has them {setup}.", hint)
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
        if not late and not early and len(want) == max_batch and len(batch) < max_batch:
            raise Wrong(f"at t = {_ms(t_got)} collect_batch returned {len(batch)} items while "
                        f"{full_at.split(' were')[0]} were waiting and max_batch={max_batch}: "
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
        if len(batch) == len(want) and batch != want:
            if collections.Counter(batch) == collections.Counter(want):
                raise Wrong(f"collect_batch returned {batch}, the right items but not in "
                            f"arrival order {want}: callers' results are matched by position, "
                            f"so keep the queue's order {setup}.", hint)
        if set(batch) == set(want) and len(batch) < len(want):
            dup = [x for x, k in collections.Counter(want).items() if k > 1]
            raise Wrong(f"collect_batch returned {batch}, but {want} were taken: the "
                        f"duplicate item {dup[0] if dup else ''} was lost. Two callers may ask "
                        "for the same thing and each needs its own answer: keep every item "
                        f"(a list, not a set) {setup}.", hint)
        if late:
            raise Wrong(f"collect_batch returned {batch} at t = {_ms(t_got)}, but its first "
                        f"item had waited max_wait_s at t = {_ms(t_exp)}: it should have "
                        f"returned {want} then (polling in steps? wait with a timeout of "
                        f"exactly the time left) {setup}.", hint)
        if early:
            raise Wrong(f"collect_batch returned {batch} at t = {_ms(t_got)}, before the batch "
                        f"was full and before its first item (taken at t = {_ms(start)}) had "
                        f"waited max_wait_s: more items were coming, and it should have "
                        f"returned {want} at t = {_ms(t_exp)} {setup}.", hint)
        if batch != want:
            raise Wrong(f"collect_batch returned {batch} at t = {_ms(t_got)}, expected {want} "
                        f"{setup}.", hint)
        taken += len(batch)


@exercise("06.collect_batch", reference=collect_batch, title="Exercise 1 · collect_batch",
          hint="The timer starts with the first item and is never restarted: deadline = "
               "loop.time() + max_wait_s after the first `await queue.get()`; then take items "
               "with `asyncio.wait_for(queue.get(), deadline - loop.time())` until "
               "len(batch) == max_batch or the time is up.")
async def check_collect_batch(impl) -> None:
    if not asyncio.iscoroutinefunction(impl):
        raise Wrong("`collect_batch` waits on a queue: make it an `async def`.")
    scenarios = _scenarios(run_rng("06.collect_batch"))

    async def main():
        out = []
        for name, arrivals, mb, mw in scenarios:
            out.append(await _consume(impl, arrivals, mb, mw))
        return out

    try:
        runs = await sim.run_async(main, seed=0, timeout_s=_REAL_LIMIT_S)
        for (name, arrivals, mb, mw), got in zip(scenarios, runs):
            _diagnose(name, arrivals, mb, mw, got)
    except asyncio.TimeoutError:
        raise Wrong(f"checking collect_batch took more than {_REAL_LIMIT_S:g} s of real time "
                    "(the check runs it in virtual time, where waits take no real time): does "
                    "it block (time.sleep) or loop without awaiting? If so it may still run in "
                    "the background: restart the kernel if the notebook gets slow.") from None
    except sim.SimDeadlock:
        raise Wrong("collect_batch waited on something that never happens (not the queue, "
                    "not a timer).") from None
    except Wrong as w:
        clock = _wall_clock(impl)
        if clock:
            raise Wrong(f"your collect_batch reads the wall clock ({clock}), but asyncio's "
                        "timers (and this check's virtual time) run on the event loop's clock: "
                        "use `loop = asyncio.get_running_loop()` and `loop.time()`. What the "
                        f"check saw: {w.message}", w.hint) from None
        raise


_WALL_CLOCKS = {"time", "monotonic", "perf_counter", "monotonic_ns", "time_ns", "perf_counter_ns"}


def _wall_clock(impl) -> str | None:
    """'time.monotonic' (or similar) if the answer calls the time module's clocks."""
    import dis
    import time as time_module
    code = getattr(impl, "__code__", None)
    if code is None:
        return None
    glb = getattr(impl, "__globals__", {})
    stack = [code]
    while stack:
        c = stack.pop()
        stack.extend(k for k in c.co_consts if hasattr(k, "co_code"))
        prev = None
        for ins in dis.get_instructions(c):
            if ins.opname == "LOAD_GLOBAL" and glb.get(ins.argval) is not None:
                obj = glb[ins.argval]
                if obj is time_module:
                    prev = ins.argval
                    continue
                if getattr(obj, "__module__", None) == "time" and ins.argval in _WALL_CLOCKS:
                    return f"{ins.argval}()"
            elif prev and ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval in _WALL_CLOCKS:
                return f"{prev}.{ins.argval}()"
            prev = None
    return None
