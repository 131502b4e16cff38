"""Hedged requests (labkit/patterns/hedge.py), in virtual time: the first success wins, the
loser is cancelled and awaited, a failure falls back to the other attempt, non-idempotent
calls are refused, and no task is left behind."""
import asyncio

import pytest

from labkit import sim
from labkit.obs.metrics import Call, Recorder
from labkit.patterns.hedge import HedgeStats, hedge_delay_s, hedged


class Replicas:
    """attempt -> (seconds before answering, result or exception); logs what happened."""

    def __init__(self, plan):
        self.plan = plan
        self.log = []          # (attempt, "start"|"done"|"cancelled"|"failed", loop time)

    async def __call__(self, attempt):
        now = asyncio.get_running_loop().time
        delay, outcome = self.plan[attempt]
        self.log.append((attempt, "start", now()))
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.log.append((attempt, "cancelled", now()))
            raise
        if isinstance(outcome, BaseException):
            self.log.append((attempt, "failed", now()))
            raise outcome
        self.log.append((attempt, "done", now()))
        return outcome


def others_left():
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not me and not t.done()]


def test_fast_call_is_not_hedged():
    async def main():
        stats = HedgeStats()
        calls = Replicas({0: (0.004, "a"), 1: (0.001, "b")})
        got = await hedged(calls, hedge_after_s=0.010, idempotent=True, stats=stats)
        return got, calls.log, stats.summary(), others_left()

    got, log, summary, left = sim.run(main)
    assert got == "a" and [a for a, *_ in log] == [0, 0]
    assert summary["hedges"] == 0 and summary["extra_share"] == 0.0 and left == []


def test_slow_original_is_hedged_and_the_loser_is_cancelled_and_awaited():
    async def main():
        stats = HedgeStats()
        calls = Replicas({0: (2.0, "slow"), 1: (0.005, "hedge")})
        t0 = asyncio.get_running_loop().time()
        got = await hedged(calls, hedge_after_s=0.010, idempotent=True, stats=stats)
        took = asyncio.get_running_loop().time() - t0
        return got, took, list(calls.log), stats.summary(), others_left()

    got, took, log, summary, left = sim.run(main)
    assert got == "hedge"
    assert took == pytest.approx(0.015)                  # hedge sent at 10 ms, answered 5 ms later
    assert (1, "start", pytest.approx(0.010)) in log
    assert (0, "cancelled", pytest.approx(0.015)) in log  # the loser saw its cancellation ...
    assert log[-1][:2] == (0, "cancelled")               # ... before hedged() returned
    assert summary["hedges"] == 1 and summary["hedge_wins"] == 1 and summary["cancelled"] == 1
    assert left == []


def test_original_still_wins_if_it_answers_before_the_hedge():
    async def main():
        calls = Replicas({0: (0.012, "original"), 1: (0.050, "hedge")})
        got = await hedged(calls, hedge_after_s=0.010, idempotent=True)
        return got, calls.log

    got, log = sim.run(main)
    assert got == "original"
    assert [(a, what) for a, what, _ in log] == [(0, "start"), (1, "start"), (0, "done"),
                                                 (1, "cancelled")]


def test_failure_of_the_original_falls_back_to_the_hedge():
    async def main():
        stats = HedgeStats()
        calls = Replicas({0: (0.020, ConnectionError("replica 0 down")), 1: (0.030, "hedge")})
        got = await hedged(calls, hedge_after_s=0.010, idempotent=True, stats=stats)
        return got, asyncio.get_running_loop().time(), stats.summary()

    got, t, summary = sim.run(main)
    assert got == "hedge" and t == pytest.approx(0.040)
    assert summary["failed_attempts"] == 1 and summary["failed_calls"] == 0


def test_failure_of_the_hedge_waits_for_the_original():
    async def main():
        calls = Replicas({0: (0.100, "original"), 1: (0.001, RuntimeError("boom"))})
        return await hedged(calls, hedge_after_s=0.010, idempotent=True)

    assert sim.run(main) == "original"


def test_a_failure_before_the_hedge_is_raised_not_hedged():
    async def main():
        stats = HedgeStats()
        calls = Replicas({0: (0.001, KeyError("nope")), 1: (0.001, "hedge")})
        with pytest.raises(KeyError):
            await hedged(calls, hedge_after_s=0.010, idempotent=True, stats=stats)
        return calls.log, stats.summary(), others_left()

    log, summary, left = sim.run(main)
    assert [a for a, *_ in log] == [0, 0]                # no hedge: failures are retry's job
    assert summary["hedges"] == 0 and summary["failed_calls"] == 1 and left == []


def test_every_attempt_failing_raises_the_last_failure():
    async def main():
        calls = Replicas({0: (0.020, ValueError("first")), 1: (0.030, OSError("second"))})
        with pytest.raises(OSError, match="second"):
            await hedged(calls, hedge_after_s=0.010, idempotent=True)
        return others_left()

    assert sim.run(main) == []


def test_max_extra_sends_at_most_that_many_hedges_one_per_delay():
    async def main():
        stats = HedgeStats()
        calls = Replicas({0: (1.0, "a"), 1: (1.0, "b"), 2: (0.001, "c"), 3: (0.0, "d")})
        got = await hedged(calls, hedge_after_s=0.010, idempotent=True, max_extra=2, stats=stats)
        return got, calls.log, stats.summary()

    got, log, summary = sim.run(main)
    starts = [(a, t) for a, what, t in log if what == "start"]
    assert got == "c" and [a for a, _ in starts] == [0, 1, 2]
    assert [t for _, t in starts] == pytest.approx([0.0, 0.010, 0.020])
    assert summary["hedges"] == 2 and summary["cancelled"] == 2


def test_hedges_keep_their_schedule_when_an_attempt_fails_in_between():
    async def main():
        calls = Replicas({0: (1.0, "a"), 1: (0.003, OSError("hedge 1 failed")), 2: (0.001, "c")})
        got = await hedged(calls, hedge_after_s=0.010, idempotent=True, max_extra=2)
        return got, [(a, t) for a, what, t in calls.log if what == "start"]

    got, starts = sim.run(main)
    assert got == "c"
    assert starts == [(0, 0.0), (1, pytest.approx(0.010)), (2, pytest.approx(0.020))]


def test_max_extra_zero_is_a_plain_call():
    async def main():
        calls = Replicas({0: (5.0, "a"), 1: (0.0, "b")})
        return await hedged(calls, hedge_after_s=0.010, idempotent=True, max_extra=0), calls.log

    got, log = sim.run(main)
    assert got == "a" and {a for a, *_ in log} == {0}


def test_non_idempotent_calls_are_refused_before_anything_is_sent():
    async def main():
        calls = Replicas({0: (0.0, "a")})
        with pytest.raises(ValueError, match="idempotent"):
            await hedged(calls, hedge_after_s=0.010, idempotent=False)
        return calls.log

    assert sim.run(main) == []


@pytest.mark.parametrize("kwargs, name", [
    ({"hedge_after_s": -1}, "hedge_after_s"), ({"hedge_after_s": float("nan")}, "hedge_after_s"),
    ({"hedge_after_s": 0.01, "max_extra": -1}, "max_extra"),
    ({"hedge_after_s": 0.01, "max_extra": 1000}, "max_extra"),
    ({"hedge_after_s": 0.01, "stats": {}}, "stats"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    async def main():
        with pytest.raises(ValueError, match=name):
            await hedged(Replicas({0: (0.0, 1)}), idempotent=True, **kwargs)

    sim.run(main)


def test_a_call_that_returns_no_awaitable_is_refused():
    async def main():
        with pytest.raises(ValueError, match="awaitable"):
            await hedged(lambda attempt: 42, hedge_after_s=0.01, idempotent=True)

    sim.run(main)


def test_cancelling_the_caller_cancels_and_awaits_every_attempt():
    async def main():
        calls = Replicas({0: (10.0, "a"), 1: (10.0, "b")})
        task = asyncio.ensure_future(hedged(calls, hedge_after_s=0.010, idempotent=True))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return calls.log, others_left()

    log, left = sim.run(main)
    assert sorted((a, what) for a, what, _ in log if what == "cancelled") == [(0, "cancelled"),
                                                                             (1, "cancelled")]
    assert left == []


def test_many_concurrent_hedged_calls_leave_no_tasks_and_count_the_extra_share():
    async def main():
        stats = HedgeStats()
        r = sim.rng("test-hedge")
        plans = [Replicas({0: (r.choice([0.001, 0.002, 0.5]), i), 1: (0.003, -i - 1)})
                 for i in range(300)]
        got = await asyncio.gather(*(hedged(p, hedge_after_s=0.010, idempotent=True, stats=stats)
                                     for p in plans))
        slow = sum(p.plan[0][0] > 0.010 for p in plans)
        return got, slow, stats.summary(), others_left()

    got, slow, summary, left = sim.run(main)
    assert summary["calls"] == 300 and summary["hedges"] == slow == summary["hedge_wins"]
    assert summary["extra_share"] == pytest.approx(slow / 300)
    assert 50 < slow < 150 and left == []
    assert sum(g < 0 for g in got) == slow


def test_hedge_delay_from_a_sample_a_recorder_and_a_histogram_like_object():
    sample = [i / 1000 for i in range(1, 101)]          # 1 .. 100 ms
    assert hedge_delay_s(sample, percentile=95) == pytest.approx(0.09505)
    rec = Recorder(window=200)
    for x in sample:
        rec.record(Call(0.0, x, True, "200"))
    assert hedge_delay_s(rec, percentile=50) == pytest.approx(0.0505)

    class Histogram:
        def percentile(self, q):
            return q / 1000

    assert hedge_delay_s(Histogram(), percentile=99) == pytest.approx(0.099)
    with pytest.raises(ValueError, match="no latencies"):
        hedge_delay_s([])
    with pytest.raises(ValueError, match="percentile"):
        hedge_delay_s(sample, percentile=101)
    with pytest.raises(ValueError, match="latency"):
        hedge_delay_s([0.1, -1.0])
