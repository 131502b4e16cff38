"""The one background-traffic runner (labkit/ui/traffic.py), in virtual time: counts, not
wall-clock windows, so these cannot flake on a busy machine."""
import asyncio

import pytest

from labkit import sim
from labkit.ui.traffic import Traffic
from async_tools import other_tasks as _others


def test_steady_rate_for_its_duration_then_everything_ends():
    async def main():
        async def call():
            await asyncio.sleep(0.05)
        refreshes, ends = [], []

        async def on_refresh():
            refreshes.append(asyncio.get_running_loop().time())

        async def on_end():
            ends.append(asyncio.get_running_loop().time())

        traffic = Traffic(call, rate_per_s=10, timeout_s=1, duration_s=3).start(
            on_refresh=on_refresh, refresh_s=0.5, on_end=on_end)
        assert traffic.running
        await asyncio.sleep(10)
        return traffic, refreshes, ends, _others()

    traffic, refreshes, ends, left = sim.run(main)
    assert (traffic.issued, traffic.completed, traffic.dropped) == (30, 30, 0)
    assert dict(traffic.outcomes) == {"ok": 30} and not traffic.running
    assert len(ends) == 1 and 2.9 < ends[0] < 3.2          # ended after its duration...
    assert 5 <= len(refreshes) <= 6 and max(refreshes) <= ends[0]   # ...and so did the redraws
    assert left == set()                                    # no task of theirs is left


def test_in_flight_calls_are_capped_and_extra_ticks_dropped():
    async def main():
        live = {"now": 0, "max": 0}

        async def hang():
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
            try:
                await asyncio.sleep(60)
            finally:
                live["now"] -= 1

        traffic = Traffic(hang, rate_per_s=10, timeout_s=1, max_in_flight=3, duration_s=5)
        await traffic.run()
        return traffic, live

    traffic, live = sim.run(main)
    assert live["max"] == 3 and live["now"] == 0
    assert traffic.issued + traffic.dropped == 50 and traffic.dropped >= 30
    assert dict(traffic.outcomes) == {"timeout": traffic.issued}


def test_stop_cancels_the_calls_in_flight_and_waits_for_them():
    async def main():
        ended = []

        async def slow():
            try:
                await asyncio.sleep(100)
            finally:
                ended.append(asyncio.get_running_loop().time())

        traffic = Traffic(slow, rate_per_s=5, timeout_s=200).start()
        await asyncio.sleep(1)
        await traffic.stop()
        return traffic, ended, _others()

    traffic, ended, left = sim.run(main)
    assert 5 <= traffic.issued <= 6 and len(ended) == traffic.issued      # every call ended...
    assert max(ended) <= 1.0 + 1e-9 and traffic.completed == 0        # ...at once, cancelled
    assert not traffic.running and left == set()


def test_a_blocked_loop_skips_ticks_instead_of_flooding():
    """A cell that holds the loop for 30 s: afterwards at most one second of ticks is caught up."""
    async def main():
        loop = asyncio.get_running_loop()
        calls = []

        async def call():
            calls.append(loop.time())
            if len(calls) == 1:
                loop._vnow += 30.0                 # the loop was busy elsewhere for 30 s

        traffic = Traffic(call, rate_per_s=10, duration_s=40)
        await traffic.run()
        return traffic, calls

    traffic, calls = sim.run(main)
    assert traffic.issued + traffic.dropped == 400
    assert 280 <= traffic.dropped <= 300
    burst = sum(1 for t in calls if t == calls[1])         # sent at once after the block
    assert burst <= 12                                      # one second of ticks, +1 due now


def test_an_exception_that_stops_the_traffic_is_kept_not_swallowed():
    def buggy_call():
        n = 0

        async def buggy():
            nonlocal n
            n += 1
            if n == 3:
                raise KeyError("bug in the caller")
        return buggy

    async def main():
        ends = []

        async def on_end():
            ends.append(traffic.error)

        traffic = Traffic(buggy_call(), rate_per_s=10, call_errors="stop").start(on_end=on_end)
        await asyncio.sleep(5)
        with pytest.raises(KeyError):                      # in the foreground: raised
            await Traffic(buggy_call(), rate_per_s=10, call_errors="stop").run(duration_s=1)
        return traffic, ends

    traffic, ends = sim.run(main)
    assert isinstance(traffic.error, KeyError) and not traffic.running
    assert ends == [traffic.error] and "KeyError" in traffic.summary()["error"]
    assert traffic.issued <= 4


def test_recorded_exceptions_are_failed_calls_with_their_message():
    async def main():
        async def broken():
            raise RuntimeError("page failed: users 503")
        traffic = Traffic(broken, rate_per_s=10)
        await traffic.run(duration_s=1)
        return traffic

    traffic = sim.run(main)
    assert dict(traffic.outcomes) == {"RuntimeError": 10} and traffic.error is None
    assert traffic.last_error == "RuntimeError: page failed: users 503"
    assert not any(c.ok for c in traffic.calls)


@pytest.mark.parametrize("kwargs, message", [
    ({"rate_per_s": 0}, r"rate_per_s must be a finite number in \(0, 1000\]"),
    ({"rate_per_s": "10"}, "rate_per_s"),
    ({"timeout_s": float("nan")}, "timeout_s"),
    ({"max_in_flight": "x"}, r"max_in_flight must be a whole number \(int\) in 1..10000, got 'x'"),
    ({"max_in_flight": 0}, "max_in_flight"),
    ({"duration_s": -1}, "duration_s"),
    ({"history": 2.5}, "history"),
    ({"call_errors": "ignore"}, "call_errors"),
])
def test_bad_arguments_are_named(kwargs, message):
    async def call():
        return None
    with pytest.raises(ValueError, match=message):
        Traffic(call, **kwargs)
