"""Adaptive concurrency limits: the AIMD and gradient arithmetic, bounds, and a Limiter that
enforces a moving limit with a bounded queue, in virtual time."""
import asyncio

import pytest

from labkit import sim
from labkit.patterns.bulkhead import BulkheadFull
from labkit.patterns.errors import ErrorKind
from labkit.patterns.limiter import AIMD, FixedLimit, Gradient, Limiter, Overloaded


def sample(alg, rtt_s, in_flight=100, dropped=False, started_s=0.0, now_s=1.0):
    return alg.on_sample(rtt_s=rtt_s, in_flight=in_flight, dropped=dropped, started_s=started_s,
                         now_s=now_s)


# -- AIMD ----------------------------------------------------------------------------------

def test_aimd_adds_increase_over_limit_on_a_fast_success():
    a = AIMD(initial_limit=10, latency_threshold_s=0.1, increase=1.0)
    assert sample(a, 0.05, in_flight=10) == pytest.approx(10.1)
    assert sample(a, 0.05, in_flight=10) == pytest.approx(10.1 + 1 / 10.1)


def test_aimd_cuts_once_per_congestion_event():
    a = AIMD(initial_limit=10, latency_threshold_s=0.1, backoff_ratio=0.9)
    assert sample(a, 0.2, started_s=0.0, now_s=1.0) == pytest.approx(9.0)     # slow: cut
    assert sample(a, 0.05, dropped=True, started_s=0.5, now_s=1.1) == pytest.approx(9.0)  # same event
    assert sample(a, 0.2, started_s=1.0, now_s=2.0) == pytest.approx(8.1)     # admitted after the cut


def test_aimd_does_not_grow_while_the_limit_is_unused():
    a = AIMD(initial_limit=10, latency_threshold_s=0.1)
    assert sample(a, 0.01, in_flight=4) == 10        # 2 * 4 < 10: app-limited
    assert sample(a, 0.01, in_flight=5) == pytest.approx(10.1)


def test_aimd_stays_within_min_and_max():
    a = AIMD(initial_limit=3, min_limit=2, max_limit=3.05, latency_threshold_s=0.1, backoff_ratio=0.5)
    assert sample(a, 0.01) == pytest.approx(3.05)
    for i in range(10):
        sample(a, 1.0, started_s=10.0 + i, now_s=10.0 + i)
    assert a.limit == 2


# -- Gradient ------------------------------------------------------------------------------

def test_gradient_formula_by_hand():
    g = Gradient(initial_limit=10, smoothing=0.2, queue_allowance=4, tolerance=1.0, rtt_smoothing=1.0)
    # no queueing yet: gradient 1, target 10*1 + 4 = 14, limit 0.8*10 + 0.2*14
    assert sample(g, 0.1) == pytest.approx(10.8)
    assert g.min_rtt_s == pytest.approx(0.1)
    # RTT doubled: gradient 0.1/0.2 = 0.5, target 10.8*0.5 + 4 = 9.4, limit 0.8*10.8 + 0.2*9.4
    assert sample(g, 0.2) == pytest.approx(10.52)
    assert g.gradient == pytest.approx(0.5)
    # RTT 10x: the gradient is clamped at 0.5 (one outlier cannot halve the limit at once)
    sample(g, 1.0)
    assert g.gradient == 0.5


def test_gradient_tolerance_allows_some_queueing():
    g = Gradient(initial_limit=10, smoothing=1.0, queue_allowance=0, tolerance=2.0, rtt_smoothing=1.0)
    sample(g, 0.1)
    assert sample(g, 0.15) == pytest.approx(10)      # 2 * 0.1 / 0.15 > 1: no cut
    assert sample(g, 0.4) == pytest.approx(5)        # 2 * 0.1 / 0.4 = 0.5


def test_gradient_smooths_the_rtt_it_compares():
    g = Gradient(initial_limit=10, queue_allowance=0, tolerance=1.0, rtt_smoothing=0.5)
    sample(g, 0.1)
    sample(g, 0.3)
    assert g.rtt_s == pytest.approx(0.2)             # 0.5*0.1 + 0.5*0.3
    assert g.gradient == pytest.approx(0.5)


def test_gradient_does_not_grow_while_app_limited_and_respects_bounds():
    g = Gradient(initial_limit=10, min_limit=4, max_limit=11, rtt_smoothing=1.0, queue_allowance=1)
    assert sample(g, 0.1, in_flight=2) == 10
    for _ in range(20):
        sample(g, 0.1, in_flight=10)
    assert g.limit == 11
    for i in range(50):
        sample(g, 5.0, dropped=i % 2 == 0)
    assert g.limit == 4


def test_gradient_min_rtt_forgets_after_two_windows():
    g = Gradient(initial_limit=10, rtt_smoothing=1.0, min_rtt_window_s=10)
    sample(g, 0.1, now_s=0)
    sample(g, 0.5, now_s=11)                          # new window; 0.1 still in the old one
    assert g.min_rtt_s == pytest.approx(0.1)
    sample(g, 0.5, now_s=22)                          # the 0.1 window is gone
    assert g.min_rtt_s == pytest.approx(0.5)


@pytest.mark.parametrize("make, match", [
    (lambda: AIMD(initial_limit=0.5), "initial_limit must be"),
    (lambda: AIMD(min_limit=5, max_limit=4, initial_limit=5), "max_limit must be"),
    (lambda: AIMD(backoff_ratio=1.0), "backoff_ratio must be"),
    (lambda: AIMD(latency_threshold_s=0), "latency_threshold_s must be"),
    (lambda: Gradient(tolerance=0.9), "tolerance must be"),
    (lambda: Gradient(smoothing=0), "smoothing must be"),
    (lambda: FixedLimit(0), "limit must be"),
    (lambda: Limiter("aimd"), "algorithm must be"),
    (lambda: Limiter(FixedLimit(1), max_queue=-1), "max_queue must be"),
])
def test_bad_arguments_name_themselves(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- Limiter -------------------------------------------------------------------------------

async def hold(lim, seconds, log, name, fail=None):
    async with lim.admit():
        log.append((asyncio.get_running_loop().time(), name))
        await asyncio.sleep(seconds)
        if fail is not None:
            raise fail
    return name


def test_rejects_at_once_without_a_queue_with_a_503_kind_error():
    async def main():
        lim = Limiter(FixedLimit(2), retry_after_s=3)
        log = []
        return await asyncio.gather(*(hold(lim, 1, log, i) for i in range(3)),
                                    return_exceptions=True), lim, log

    res, lim, log = sim.run(main)
    assert res[:2] == [0, 1]
    err = res[2]
    assert isinstance(err, Overloaded) and isinstance(err, BulkheadFull)
    assert err.kind is ErrorKind.UNAVAILABLE and err.status == 503 and err.definite
    assert err.retry_after_s == 3
    assert lim.in_use == 0 and lim.counts["rejected"] == 1 and lim.counts["success"] == 2


def test_waits_at_most_max_wait_s_and_bounds_the_queue():
    async def main():
        lim = Limiter(FixedLimit(1), max_queue=2, max_wait_s=1.5)
        log = []
        res = await asyncio.gather(*(hold(lim, 1, log, i) for i in range(4)), return_exceptions=True)
        return res, log, lim

    res, log, lim = sim.run(main)
    assert log == [(0.0, 0), (1.0, 1)]
    assert isinstance(res[2], Overloaded)       # waited 1.5 s: the slot frees only at 2.0
    assert isinstance(res[3], Overloaded)       # the queue (2) was full on arrival
    assert [e.at for e in lim.events if e.what == "timed_out"] == [1.5]
    assert lim.in_use == 0 and lim.queued == 0


def test_a_lowered_limit_is_enforced_on_waiters():
    """4 slow calls cut the limit 4 -> 2 (once, one congestion event); the 4 waiters then get
    in 2 at a time, and the next slow wave cuts it to 1. A plain Bulkhead would admit all 4
    waiters at t=1."""
    async def main():
        lim = Limiter(AIMD(initial_limit=4, min_limit=1, latency_threshold_s=0.5, backoff_ratio=0.5),
                      max_queue=10, max_wait_s=100)
        log = []
        await asyncio.gather(*(hold(lim, 1, log, i) for i in range(8)))
        return log, lim

    log, lim = sim.run(main)
    assert [t for t, _ in log] == [0, 0, 0, 0, 1, 1, 2, 3]
    assert lim.limit == 1 and lim.in_use == 0
    assert [limit for _, limit in lim.history] == [2, 1]


def test_a_raised_limit_admits_waiters_at_once():
    async def main():
        lim = Limiter(AIMD(initial_limit=1, latency_threshold_s=1, increase=2),
                      max_queue=5, max_wait_s=100)
        log = []
        await asyncio.gather(*(hold(lim, 0.01, log, i) for i in range(4)))
        return log, lim

    log, lim = sim.run(main)
    assert [t for t, _ in log] == [0, 0.01, 0.01, 0.01]   # limit 1 -> 3 after the first success
    assert lim.limit >= 3


def test_admit_turns_timeouts_into_drops_and_ignores_bugs():
    async def main():
        a = AIMD(initial_limit=10, latency_threshold_s=5)
        lim = Limiter(a)
        log = []
        with pytest.raises(KeyError):
            await hold(lim, 0.1, log, "bug", fail=KeyError("x"))
        assert a.limit == 10 and lim.counts["ignored"] == 1
        with pytest.raises(asyncio.TimeoutError):
            await hold(lim, 0.1, log, "slow", fail=asyncio.TimeoutError())
        assert a.limit == 9 and lim.counts["dropped"] == 1
        return lim

    lim = sim.run(main)
    assert lim.in_use == 0 and lim.samples == 1


def test_a_permit_released_twice_frees_one_slot():
    async def main():
        lim = Limiter(FixedLimit(2))
        p1 = await lim.acquire()
        await lim.acquire()
        p1.success()
        p1.success()
        p1.dropped()
        return lim.in_use

    assert sim.run(main) == 1


def test_cancelled_waiter_does_not_leak_a_slot():
    async def main():
        lim = Limiter(FixedLimit(1), max_queue=5, max_wait_s=10)
        log = []
        first = asyncio.ensure_future(hold(lim, 1, log, "a"))
        waiter = asyncio.ensure_future(hold(lim, 1, log, "b"))
        await asyncio.sleep(0.5)
        waiter.cancel()
        await asyncio.gather(first, waiter, return_exceptions=True)
        await hold(lim, 1, log, "c")
        return lim

    lim = sim.run(main)
    assert lim.in_use == 0 and lim.queued == 0


def test_plain_async_with_and_release_are_refused():
    async def main():
        lim = Limiter()
        with pytest.raises(TypeError, match="admit"):
            async with lim:
                pass
        with pytest.raises(TypeError, match="permit"):
            lim.release()

    sim.run(main)


@pytest.mark.parametrize("algorithm", [AIMD(initial_limit=4, latency_threshold_s=0.2),
                                       Gradient(initial_limit=4)], ids=["aimd", "gradient"])
def test_adaptive_limit_keeps_latency_bounded_at_twice_capacity(algorithm):
    """4 workers x 20 ms = 200/s offered 400/s for 20 s: without a limit the queue (and the
    wait) grows for the whole run; with one, the last second's p99 stays a few service times."""
    async def main(limited):
        svc = sim.SimService("backend", workers=4, latency=sim.Exponential(0.02))
        lim = Limiter(algorithm) if limited else None
        late = []

        async def request():
            t0 = asyncio.get_running_loop().time()
            try:
                if lim is None:
                    await svc.call()
                else:
                    async with lim.admit():
                        await svc.call()
            except Overloaded:
                return
            if t0 >= 19:
                late.append(asyncio.get_running_loop().time() - t0)

        await sim.poisson_arrivals(400, 20, request, keep_results=False)
        late.sort()
        return late[int(0.99 * len(late))], svc.delivered_ok

    p99_limited, ok_limited = sim.run(lambda: main(True), seed=3)
    p99_free, _ = sim.run(lambda: main(False), seed=3)
    assert p99_limited < 0.5 < 5 < p99_free
    assert ok_limited > 0.85 * 200 * 20      # and it still serves near capacity
