"""labkit.labs.timeouts: percentiles for choosing a timeout, and a retry policy's worst case."""
import asyncio

import pytest

from labkit import sim
from labkit.labs import timeouts
from labkit.patterns import backoff
from labkit.patterns.retry import Retry


def test_measure_reports_percentiles_of_what_the_caller_saw_in_virtual_time():
    async def main():
        n = 0

        async def call():
            nonlocal n
            n += 1
            await asyncio.sleep(1.0 if n % 100 == 0 else 0.01)    # 1 % of calls are slow
        return await timeouts.measure(call, calls=1000, concurrency=10), n

    stats, n = sim.run(main)
    assert n == 1000 and stats["n"] == 1000 and stats["failed"] == 0
    assert stats["p50_ms"] == pytest.approx(10)
    assert 10 <= stats["p99_ms"] < 1000               # 1 % of calls are at least as slow as 1 s
    assert stats["p999_ms"] == pytest.approx(1000) and stats["max_ms"] == pytest.approx(1000)


def test_measure_counts_failures_and_stops_a_hung_call():
    async def main():
        async def hang():
            await asyncio.sleep(3600)
        return await timeouts.measure(hang, calls=3, concurrency=3, timeout_s=2.0)

    stats = sim.run(main)
    assert stats["failed"] == 3 and stats["max_ms"] == pytest.approx(2000)


def test_longest_waits_take_the_top_of_every_range():
    assert timeouts.longest_waits(backoff.FullJitter(0.1, 0.5), 4) == pytest.approx([0.2, 0.4, 0.5, 0.5])
    assert timeouts.longest_waits(backoff.NoBackoff(), 2) == [0.0, 0.0]


def test_worst_case_adds_every_timeout_and_the_longest_waits_and_respects_max_total():
    policy = Retry(max_attempts=3, attempt_timeout_s=0.25, backoff=backoff.FullJitter(0.1, 0.5))
    assert timeouts.worst_case_s(policy) == pytest.approx(3 * 0.25 + 0.2 + 0.4)
    capped = Retry(max_attempts=3, attempt_timeout_s=0.25, max_total_s=1.0,
                   backoff=backoff.FullJitter(0.1, 0.5))
    assert timeouts.worst_case_s(capped) == 1.0


def test_worst_case_holds_for_a_real_retry_loop_in_virtual_time():
    policy = Retry(max_attempts=3, attempt_timeout_s=0.25, backoff=backoff.FullJitter(0.1, 0.5))

    async def main():
        async def always_hangs():
            await asyncio.sleep(3600)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await policy.call(always_hangs)
        return loop.time() - t0

    assert 3 * 0.25 <= sim.run(main) <= timeouts.worst_case_s(policy) + 1e-9


def test_worst_case_needs_an_attempt_timeout():
    with pytest.raises(ValueError, match="attempt_timeout_s"):
        timeouts.worst_case_s(Retry(max_attempts=3))


@pytest.mark.parametrize("kwargs,name", [({"calls": 0}, "calls"), ({"concurrency": 0}, "concurrency"),
                                         ({"timeout_s": 0}, "timeout_s")])
def test_bad_arguments_name_themselves(kwargs, name):
    async def main():
        async def call():
            pass
        with pytest.raises(ValueError, match=name):
            await timeouts.measure(call, **kwargs)
    sim.run(main)
