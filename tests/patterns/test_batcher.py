"""The Batcher (labkit.patterns.batcher), in virtual time: full batches go at once, a partial
batch goes when its oldest item has waited max_wait_s, every item gets its own result or
error, the queue is bounded, and close() loses nothing and never hangs."""
import asyncio

import pytest

from labkit import sim
from labkit.patterns.batcher import Batcher, BatcherClosed, BatcherFull, BatchResultMismatch


def _recording(calls, service_s=0.0):
    async def process(items):
        calls.append((asyncio.get_running_loop().time(), list(items)))
        if service_s:
            await asyncio.sleep(service_s)
        return [f"r{x}" for x in items]
    return process


def test_full_batch_goes_at_once_partial_after_max_wait_from_the_oldest():
    async def main():
        calls = []
        b = Batcher(_recording(calls), max_batch=3, max_wait_s=0.010)

        async def at(t, x):
            await asyncio.sleep(t)
            return await b.submit(x), asyncio.get_running_loop().time()
        got = await asyncio.gather(*(at(t, x) for t, x in
                                     [(0, 1), (0, 2), (0, 3), (0.001, 4), (0.008, 5),
                                      (0.015, 6)]))
        return calls, got
    calls, got = sim.run(main)
    assert calls == [(0.0, [1, 2, 3]),          # full: sent at once
                     (pytest.approx(0.011), [4, 5]),   # oldest (t=0.001) waited 10 ms
                     (pytest.approx(0.025), [6])]
    assert [r for r, _ in got] == ["r1", "r2", "r3", "r4", "r5", "r6"]


def test_steady_trickle_never_starves_the_oldest():
    """Items every 4 ms with max_wait 10 ms: a timer from the newest item would never fire."""
    async def main():
        calls = []
        b = Batcher(_recording(calls), max_batch=100, max_wait_s=0.010)

        async def at(t, x):
            await asyncio.sleep(t)
            await b.submit(x)
        await asyncio.gather(*(at(0.004 * i, i) for i in range(10)))
        return calls
    calls = sim.run(main)
    assert [c[1] for c in calls] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert calls[0][0] == pytest.approx(0.010)


def test_one_failing_item_fails_alone_and_a_raising_processor_fails_its_batch():
    async def main():
        async def process(items):
            if "boom" in items:
                raise RuntimeError("backend down")
            return [ValueError(f"no {x}") if x == "bad" else x.upper() for x in items]
        b = Batcher(process, max_batch=3, max_wait_s=0.01)
        first = await asyncio.gather(b.submit("a"), b.submit("bad"), b.submit("c"),
                                     return_exceptions=True)
        second = await asyncio.gather(b.submit("boom"), b.submit("x"), return_exceptions=True)
        return first, second, b.unanswered
    first, second, unanswered = sim.run(main)
    assert first[0] == "A" and first[2] == "C"
    assert isinstance(first[1], ValueError) and str(first[1]) == "no bad"
    assert all(isinstance(e, RuntimeError) and "backend down" in str(e) for e in second)
    assert unanswered == 0


@pytest.mark.parametrize("answer", [lambda items: items[:-1], lambda items: items + [0],
                                    lambda items: None])
def test_wrong_number_of_results_fails_every_item_clearly(answer):
    async def main():
        async def process(items):
            return answer(list(items))
        b = Batcher(process, max_batch=2, max_wait_s=0.01)
        return await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
    got = sim.run(main)
    assert all(isinstance(e, BatchResultMismatch) for e in got)
    assert "for a batch of 2 items" in str(got[0]) and "one result per item" in str(got[0])


def test_bounded_queue_refuses_with_a_clear_error():
    async def main():
        b = Batcher(_recording([], service_s=1.0), max_batch=2, max_wait_s=0.01, max_queue=4)
        tasks = [asyncio.ensure_future(b.submit(i)) for i in range(4)]
        await asyncio.sleep(0.02)                 # two batches in flight, 4 unanswered
        with pytest.raises(BatcherFull, match="max_queue=4"):
            await b.submit(99)
        assert b.unanswered == 4
        results = await asyncio.gather(*tasks)
        await b.submit(5)                         # room again
        return results
    assert sim.run(main) == ["r0", "r1", "r2", "r3"]


def test_close_flushes_waiting_items_and_refuses_new_ones():
    async def main():
        calls = []
        b = Batcher(_recording(calls, service_s=0.005), max_batch=4, max_wait_s=60.0)
        tasks = [asyncio.ensure_future(b.submit(i)) for i in range(6)]
        await asyncio.sleep(0)
        t0 = asyncio.get_running_loop().time()
        await b.close()
        results = await asyncio.gather(*tasks)
        with pytest.raises(BatcherClosed):
            await b.submit(7)
        return calls, results, asyncio.get_running_loop().time() - t0, b.stats()
    calls, results, took_s, stats = sim.run(main)
    assert results == [f"r{i}" for i in range(6)]
    assert [c[1] for c in calls] == [[0, 1, 2, 3], [4, 5]]
    assert took_s == pytest.approx(0.005)        # not the 60 s max_wait
    assert stats["flushes"] == {"full": 1, "close": 1} and stats["unanswered"] == 0


def test_close_without_flush_fails_waiting_items_and_a_stuck_batch_is_cut_off():
    async def main():
        async def stuck(items):
            await asyncio.sleep(3600)
            return items
        b = Batcher(stuck, max_batch=2, max_wait_s=10.0)
        sent = [asyncio.ensure_future(b.submit(i)) for i in range(2)]    # full: in flight
        waiting = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0)
        await b.close(flush=False, timeout_s=5.0)
        got = await asyncio.gather(*sent, waiting, return_exceptions=True)
        return got, asyncio.get_running_loop().time(), b.unanswered
    got, t, unanswered = sim.run(main)
    assert all(isinstance(e, BatcherClosed) for e in got)
    assert "while this item's batch" in str(got[0]) and "before this item was sent" in str(got[2])
    assert t == pytest.approx(5.0) and unanswered == 0


def test_zero_wait_batches_what_arrives_in_the_same_instant():
    async def main():
        calls = []
        b = Batcher(_recording(calls), max_batch=10, max_wait_s=0.0)
        await asyncio.gather(*(b.submit(i) for i in range(3)))
        await b.submit(3)
        return calls
    assert [c[1] for c in sim.run(main)] == [[0, 1, 2], [3]]


@pytest.mark.parametrize("kwargs, needle", [
    ({"max_batch": 0, "max_wait_s": 0.1}, "max_batch"),
    ({"max_batch": 2.0, "max_wait_s": 0.1}, "max_batch"),
    ({"max_batch": 2, "max_wait_s": -1}, "max_wait_s"),
    ({"max_batch": 2, "max_wait_s": float("nan")}, "max_wait_s"),
    ({"max_batch": 4, "max_wait_s": 0.1, "max_queue": 3}, "max_queue"),
])
def test_bad_arguments_name_themselves(kwargs, needle):
    async def process(items):
        return items
    with pytest.raises(ValueError, match=needle):
        Batcher(process, **kwargs)
    with pytest.raises(ValueError, match="process_batch"):
        Batcher(None, max_batch=1, max_wait_s=0.1)
