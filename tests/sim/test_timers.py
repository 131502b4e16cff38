"""VirtualClockLoop's timer bookkeeping: the cancelled-timer counter never goes below 0 and
`pending_timers()` is exact for every way a timer can be cancelled (issue 7, section 2)."""
import asyncio
import random

from labkit import sim
from labkit.sim.loop import VirtualClockLoop


def _cancelled_in_heap(loop) -> int:
    return sum(1 for e in loop._vheap if e[2]._cancelled)


def _check(loop, live: int) -> None:
    """The counter equals the cancelled entries still in the heap; pending == live timers."""
    assert loop._vcancelled >= 0
    assert loop._vcancelled == _cancelled_in_heap(loop)
    assert loop.pending_timers() == live


def test_cancel_twice_and_after_it_fired():
    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        h = loop.call_later(1.0, fired.append, 1)
        _check(loop, 1)
        h.cancel()
        h.cancel()                              # twice: counted once
        _check(loop, 0)
        g = loop.call_later(1.0, fired.append, 2)
        await asyncio.sleep(2.0)
        g.cancel()                              # after it fired: nothing to count
        g.cancel()
        _check(loop, 0)
        return fired

    assert sim.run(main) == [2]


def test_cancel_during_run_by_a_timer_due_at_the_same_instant():
    async def main():
        loop = asyncio.get_running_loop()
        fired, handles = [], []

        def first():
            fired.append("first")
            handles[1].cancel()                 # already moved to the ready queue
            handles[2].cancel()                 # still in the heap (later)
            _check(loop, 0)

        handles.append(loop.call_at(1.0, first))
        handles.append(loop.call_at(1.0, fired.append, "second"))
        handles.append(loop.call_at(5.0, fired.append, "third"))
        await asyncio.sleep(10)
        _check(loop, 0)
        return fired

    assert sim.run(main) == ["first"]


def test_mass_cancellation_that_compacts_the_heap_keeps_the_count_exact():
    async def main():
        loop = asyncio.get_running_loop()
        r = random.Random(1)
        handles = [loop.call_later(r.uniform(0.1, 10), lambda: None) for _ in range(3000)]
        live = set(range(3000))
        for i in r.sample(range(3000), 2500):   # passes the compaction threshold several times
            handles[i].cancel()
            live.discard(i)
            assert loop._vcancelled >= 0
        _check(loop, len(live))
        for h in handles:
            h.cancel()
        _check(loop, 0)
        await asyncio.sleep(20)
        _check(loop, 0)
        return loop._vcancelled

    assert sim.run(main) == 0


def test_random_schedule_cancel_and_run_patterns():
    async def main():
        loop = asyncio.get_running_loop()
        r = random.Random(7)
        handles, fired = {}, set()
        for step in range(4000):
            op = r.random()
            if op < 0.5:
                k = step
                handles[k] = loop.call_later(r.uniform(0, 2), fired.add, k)
            elif op < 0.85 and handles:
                handles[r.choice(list(handles))].cancel()
            else:
                await asyncio.sleep(r.uniform(0, 0.5))
            live = sum(1 for k, h in handles.items() if not h._cancelled and k not in fired
                       and h._scheduled)
            assert loop._vcancelled >= 0
            assert loop.pending_timers() == live
        return True

    assert sim.run(main)


def test_close_clears_the_count_and_later_cancels_do_not_count():
    loop = VirtualClockLoop()
    handles = [loop.call_later(i, lambda: None) for i in range(10)]
    handles[0].cancel()
    loop.close()
    for h in handles:
        h.cancel()
    assert loop._vcancelled == 0 and loop.pending_timers() == 0


def test_cancelled_timers_do_not_pile_up_in_the_heap():
    """Heavy timeout churn (a timer per attempt, cancelled when the reply comes) keeps the heap
    within max(2 x live, live + 513) entries: cancelled timers are compacted away."""
    async def main():
        loop = asyncio.get_running_loop()
        r = random.Random(3)
        live = []
        for _ in range(20_000):
            live.append(loop.call_later(r.uniform(100, 200), lambda: None))
            if len(live) > 50:
                live.pop(r.randrange(len(live))).cancel()
            if r.random() < 0.05:
                await asyncio.sleep(0)
            n = loop.pending_timers()
            assert n == len(live)
            assert len(loop._vheap) <= max(2 * n, n + 513)
        for h in live:
            h.cancel()
        return loop._vcancelled

    assert sim.run(main) >= 0
