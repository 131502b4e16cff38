"""`await sim.run_async(main)`: a simulation that does not freeze the caller's loop, and that
stops when the await is cancelled (how a widget supersedes an older run)."""
import asyncio
import threading

import pytest

from labkit import sim


async def _busy_sim(events=20_000):
    """Lots of Python work in virtual time (a few tenths of a second of CPU)."""
    for _ in range(events // 1000):
        await asyncio.gather(*(asyncio.sleep(0.001 * i) for i in range(1000)))
    return sim.now()


async def _ticker(counter):
    while True:
        await asyncio.sleep(0.01)
        counter[0] += 1


def test_run_async_returns_what_run_returns():
    async def main():
        await asyncio.sleep(5)
        return sim.now(), sim.rng("x").random()

    async def cell():
        return await sim.run_async(main, seed=3)

    assert asyncio.run(cell()) == sim.run(main, seed=3)


def test_the_callers_loop_keeps_running_while_it_computes():
    async def cell():
        ticks = [0]
        ticker = asyncio.ensure_future(_ticker(ticks))
        await asyncio.sleep(0)
        before = ticks[0]
        result = await sim.run_async(_busy_sim)
        during = ticks[0] - before
        ticker.cancel()
        return result, during

    result, during = asyncio.run(cell())
    assert result == pytest.approx(20 * 0.999)
    # sim.run here would block the loop: 0 ticks until it returns.
    assert during >= 2


def test_cancelling_the_await_stops_the_simulation():
    stopped = threading.Event()

    async def forever():
        try:
            while True:
                await asyncio.sleep(1.0)          # virtual time: never ends by itself
        finally:
            stopped.set()

    async def cell():
        task = asyncio.ensure_future(sim.run_async(forever))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.get_running_loop().run_in_executor(None, stopped.wait, 60)

    assert asyncio.run(asyncio.wait_for(cell(), 120)) is True


def test_timeout_s_bounds_the_wait_and_stops_the_run():
    stopped = threading.Event()

    async def forever():
        try:
            while True:
                await asyncio.sleep(1.0)
        finally:
            stopped.set()

    async def cell():
        with pytest.raises(TimeoutError):
            await sim.run_async(forever, timeout_s=0.2)
        return await asyncio.get_running_loop().run_in_executor(None, stopped.wait, 60)

    assert asyncio.run(cell()) is True


@pytest.mark.parametrize("kwargs,needle", [
    ({"timeout_s": 0}, "timeout_s"), ({"timeout_s": float("nan")}, "timeout_s"),
    ({"until_s": -1.0}, "until_s"), ({"seed": "1"}, "seed"),
])
def test_bad_arguments(kwargs, needle):
    async def main():
        return 1

    async def cell():
        await sim.run_async(main, **kwargs)

    with pytest.raises(ValueError, match=needle):
        asyncio.run(cell())
