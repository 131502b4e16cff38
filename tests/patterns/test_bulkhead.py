"""Bulkhead: concurrency cap, bounded FIFO queue with a time limit, no leaked slots."""
import asyncio
import json
import random

import pytest

from labkit import sim
from labkit.patterns.bulkhead import Bulkhead, BulkheadFull
from labkit.patterns.errors import ErrorKind


async def hold(bh, seconds, log, name):
    async with bh:
        log.append((asyncio.get_running_loop().time(), name, bh.in_use))
        await asyncio.sleep(seconds)
    return name


def test_rejects_beyond_the_limit_without_queue():
    async def main():
        bh = Bulkhead(2)
        log = []
        return await asyncio.gather(*(hold(bh, 1, log, i) for i in range(3)), return_exceptions=True), bh

    results, bh = sim.run(main)
    assert results[:2] == [0, 1]
    assert isinstance(results[2], BulkheadFull) and results[2].kind is ErrorKind.UNAVAILABLE
    assert bh.in_use == 0 and bh.summary()["counts"]["rejected"] == 1


def test_queue_is_fifo_and_times_out_at_max_wait():
    async def main():
        bh = Bulkhead(1, max_queue=2, max_wait_s=1.5)
        log = []
        res = await asyncio.gather(*(hold(bh, 1, log, i) for i in range(4)), return_exceptions=True)
        return res, log, bh

    res, log, bh = sim.run(main)
    assert [(t, n) for t, n, _ in log] == [(0.0, 0), (1.0, 1)]  # 1 got the slot after 1 s wait
    assert isinstance(res[2], BulkheadFull)  # waited 1.5 s, slot only free at 2.0
    assert isinstance(res[3], BulkheadFull)  # queue (2) full at arrival: rejected at once
    timed_out = [e for e in bh.events if e.what == "timed_out"]
    assert [e.at for e in timed_out] == [1.5]
    assert bh.in_use == 0 and bh.queued == 0


def test_cancelled_waiter_does_not_leak_a_slot():
    async def main():
        bh = Bulkhead(1, max_queue=5, max_wait_s=10)
        log = []
        first = asyncio.ensure_future(hold(bh, 1, log, "a"))
        waiter = asyncio.ensure_future(hold(bh, 1, log, "b"))
        await asyncio.sleep(0.5)
        waiter.cancel()
        await asyncio.gather(first, waiter, return_exceptions=True)
        await hold(bh, 1, log, "c")
        return bh, log

    bh, log = sim.run(main)
    assert [n for _, n, _ in log] == ["a", "c"] and bh.in_use == 0


def test_random_workload_never_exceeds_the_cap():
    async def main():
        bh = Bulkhead(3, max_queue=4, max_wait_s=0.7)
        rng = random.Random(5)
        log = []

        async def one(i):
            await asyncio.sleep(rng.uniform(0, 10))
            try:
                await hold(bh, rng.expovariate(2.0), log, i)
            except BulkheadFull:
                pass

        await asyncio.gather(*(one(i) for i in range(300)))
        return bh, log

    bh, log = sim.run(main)
    counts = bh.summary()["counts"]
    assert max(n for _, _, n in log) == 3
    assert counts["admitted"] == len(log) and counts.get("rejected", 0) + counts.get("timed_out", 0) > 0
    assert bh.in_use == 0
    assert json.loads(json.dumps(bh.summary())) == bh.summary()


def test_events_are_bounded_and_counters_stay_exact():
    n = 10**5

    async def main():
        bh = Bulkhead(1, max_queue=1, max_wait_s=0.5)
        for _ in range(n):
            async with bh:
                pass
        # One caller waits 0.25 s for the slot, one more is rejected (queue full).
        holder = asyncio.ensure_future(hold(bh, 0.25, [], "a"))
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(hold(bh, 0.0, [], "b"))
        await asyncio.sleep(0)
        with pytest.raises(BulkheadFull):
            await bh.acquire()
        await asyncio.gather(holder, waiter)
        return bh

    bh = sim.run(main)
    assert len(bh.events) == 1000
    counts = bh.summary()["counts"]
    assert counts == {"admitted": n + 2, "released": n + 2, "queued": 1, "rejected": 1}
    assert bh.summary()["max_waited_s"] == 0.25 and bh.in_use == 0


@pytest.mark.parametrize("kwargs,needle", [
    ({"max_concurrent": 0}, "max_concurrent"), ({"max_concurrent": 1, "max_queue": -1}, "max_queue"),
    ({"max_concurrent": 1, "max_wait_s": -1}, "max_wait_s"),
    ({"max_concurrent": 2.0}, "max_concurrent"), ({"max_concurrent": True}, "max_concurrent"),
    ({"max_concurrent": 1, "max_queue": 1.0}, "max_queue"),
    ({"max_concurrent": 1, "max_wait_s": float("nan")}, "max_wait_s"),
    ({"max_concurrent": 1, "max_wait_s": float("inf")}, "max_wait_s"),
    ({"max_concurrent": 1, "max_wait_s": 10**400}, "max_wait_s"),
])
def test_bad_input(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Bulkhead(**kwargs)
