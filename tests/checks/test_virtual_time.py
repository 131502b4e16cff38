"""labkit/checks/virtual_time.py: a learner's async code runs in virtual time on the check's
own thread; spinning, a real-time cap and waits that never end are reported; what is left is
cancelled and no thread is started; the answer's calls to time.sleep or a wall clock are
found through partials, decorators and callable objects."""
import asyncio
import functools
import threading
import time
from time import monotonic

import pytest

from labkit import sim
from labkit.checks import Wrong, virtual_time


def test_virtual_waits_take_no_real_time_and_the_host_loop_comes_back(run):
    async def main():
        loop = asyncio.get_running_loop()
        await asyncio.sleep(3600)
        return loop.time(), isinstance(loop, sim.VirtualClockLoop)

    async def host():
        before = asyncio.get_running_loop()
        got = await virtual_time.simulate(main)
        return got, asyncio.get_running_loop() is before

    (t, virtual), same_loop = run(host())
    assert t == pytest.approx(3600) and virtual and same_loop


def test_the_host_loop_gets_turns_between_slices(run):
    async def main():
        for _ in range(3000):
            await asyncio.sleep(0.001)
        return "done"

    async def host():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.ensure_future(tick())
        await asyncio.sleep(0)
        first = ticks
        got = await virtual_time.simulate(main, slice_s=1e-5)
        ticker.cancel()
        return got, ticks > first + 1

    assert run(host()) == ("done", True)


def test_spinning_on_sleep_zero_is_stopped_and_cleaned_up(run):
    cleaned = []

    async def main():
        await asyncio.sleep(2.5)
        try:
            while True:
                await asyncio.sleep(0)
        finally:
            cleaned.append("spinner")

    before = set(threading.enumerate())
    with pytest.raises(virtual_time.Spinning) as err:
        run(virtual_time.simulate(main, spin_steps=500))
    assert err.value.at_s == pytest.approx(2.5) and err.value.steps == 500
    assert cleaned == ["spinner"]
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]
    message = err.value.explain("f", at="2500.0 ms", advice="Await something.")
    assert "your f kept the event loop busy at t = 2500.0 ms for 500 loop" in message
    assert message.endswith("Await something.")


def test_a_run_past_the_real_time_cap_is_stopped(run):
    cleaned = []

    async def main():
        try:
            while True:
                time.sleep(0.01)                # blocks a little, then lets virtual time pass
                await asyncio.sleep(1)
        finally:
            cleaned.append("slow")

    with pytest.raises(virtual_time.TooSlow) as err:
        run(virtual_time.simulate(main, real_limit_s=0.2))
    assert cleaned == ["slow"]
    assert "checking f took more than 0.2 s of real time" in err.value.explain("f")


def test_a_wait_that_never_ends_is_a_deadlock_and_errors_come_through(run):
    async def never():
        await asyncio.get_running_loop().create_future()

    async def fails():
        await asyncio.sleep(1)
        raise KeyError("boom")

    with pytest.raises(sim.SimDeadlock):
        run(virtual_time.simulate(never))
    with pytest.raises(KeyError, match="boom"):
        run(virtual_time.simulate(fails))


@pytest.mark.parametrize("kwargs, needle", [({"real_limit_s": 0}, "real_limit_s"),
                                            ({"slice_s": -1.0}, "slice_s"),
                                            ({"spin_steps": 0}, "spin_steps")])
def test_bad_arguments(run, kwargs, needle):
    async def main():
        return 1

    with pytest.raises(ValueError, match=needle):
        run(virtual_time.simulate(main, **kwargs))


_SHAPE = dict(call="f(q, 1)", result="batch", signature="f(q, n)", waits_on="a queue",
              wait_with="q.get()")


def test_awaitable_passes_a_coroutine_and_names_the_wrong_shapes():
    async def coro():
        return 1

    async def agen():
        yield 1

    c = coro()
    assert virtual_time.awaitable(c, **_SHAPE) is c
    c.close()
    with pytest.raises(Wrong, match=r"your f is an async generator .*`return batch`"):
        virtual_time.awaitable(agen(), **_SHAPE)
    with pytest.raises(Wrong, match=r"calling f\(q, 1\) returned \[1\] right away.* waits on "
                                    r"a queue.*`await q.get\(\)`"):
        virtual_time.awaitable([1], **_SHAPE)


async def _sleeps():
    time.sleep(0.1)


async def _reads_clock():
    def inner():
        return monotonic()
    return inner()


async def _clean():
    await asyncio.sleep(0)


class _Callable:
    async def __call__(self):
        time.perf_counter()


def test_calls_finds_the_clock_through_wrappers():
    @functools.wraps(_sleeps)
    def wrapper():
        return _sleeps()

    assert virtual_time.calls(_sleeps, "time", {"sleep"}) == "time.sleep()"
    assert virtual_time.calls(wrapper, "time", {"sleep"}) == "time.sleep()"
    assert virtual_time.calls(functools.partial(_reads_clock), "time",
                              virtual_time.WALL_CLOCKS) == "monotonic()"
    assert virtual_time.calls(_Callable(), "time", virtual_time.WALL_CLOCKS) == "time.perf_counter()"
    assert virtual_time.calls(_clean, "time", virtual_time.WALL_CLOCKS | {"sleep"}) is None


def test_clock_misuse_says_why_in_virtual_time():
    kw = dict(name="f", meanwhile=", not even the producer", wait_with="q.get()")
    assert virtual_time.clock_misuse(_sleeps, **kw).startswith(
        "your f calls time.sleep: time.sleep blocks the event loop (nothing else runs "
        "meanwhile, not even the producer)")
    assert "reads the wall clock (monotonic())" in virtual_time.clock_misuse(_reads_clock, **kw)
    assert virtual_time.clock_misuse(_clean, **kw) is None
