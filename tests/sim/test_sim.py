"""Virtual-time loop and queueing simulator: instant sleeps, exact timer times, M/M/1 theory."""
import asyncio
import json
import math
import statistics
import threading
import time

import pytest

from labkit import sim
from labkit.patterns.errors import ErrorKind, ServiceError


def test_an_hour_of_sleep_is_instant_and_exact():
    async def main():
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    assert sim.run(main) == 3600.0


def test_long_sleeps_beyond_a_day():
    async def main():
        await asyncio.sleep(10 * 86400)
        return sim.now()

    assert sim.run(main) == 864000.0


def test_timeouts_fire_at_the_right_virtual_time():
    async def main():
        loop = asyncio.get_running_loop()
        out = []
        try:
            async with asyncio.timeout(2.5):
                await asyncio.sleep(10)
        except TimeoutError:
            out.append(loop.time())
        try:
            await asyncio.wait_for(asyncio.sleep(10), 1.25)
        except TimeoutError:
            out.append(loop.time())
        done, pending = await asyncio.wait([asyncio.ensure_future(asyncio.sleep(s)) for s in (3, 1, 2)],
                                           return_when=asyncio.FIRST_COMPLETED)
        out.append(loop.time())
        for p in pending:
            p.cancel()
        return out

    assert sim.run(main) == [2.5, 3.75, 4.75]


def test_timers_at_the_same_instant_run_in_scheduling_order():
    async def main():
        loop = asyncio.get_running_loop()
        order = []
        for i in range(20):
            loop.call_at(5.0, order.append, i)
        loop.call_at(4.0, order.append, "early")
        await asyncio.sleep(6)
        return order

    assert sim.run(main) == ["early"] + list(range(20))


def test_deadlock_is_reported_not_hung():
    async def main():
        await asyncio.get_running_loop().create_future()  # nobody will ever resolve it

    with pytest.raises(sim.SimDeadlock, match="deadlocked"):
        sim.run(main)


def test_until_s_stops_the_run():
    async def main():
        await asyncio.sleep(100)

    with pytest.raises(sim.SimTimeout, match="until_s=10"):
        sim.run(main, until_s=10)
    with pytest.raises(ValueError, match="until_s"):
        sim.run(main, until_s=-1)
    with pytest.raises(ValueError, match="coroutine"):
        sim.run(lambda: 42)


def test_run_works_inside_a_running_loop_like_jupyter():
    async def main():
        await asyncio.sleep(1000)
        return threading.current_thread().name, sim.now()

    async def kernel_cell():
        loop = asyncio.get_running_loop()
        t0, m0 = loop.time(), time.monotonic()
        result = sim.run(main)  # blocks this (real) loop briefly, never nests it
        return result, loop.time() - t0, time.monotonic() - m0, threading.current_thread().name

    (thread, virtual_t), loop_elapsed, wall_elapsed, outer_thread = asyncio.run(kernel_cell())
    assert virtual_t == 1000.0
    assert thread != outer_thread
    # The outer loop's clock stayed real: it advanced as the wall clock did, not by 1000 s.
    assert abs(loop_elapsed - wall_elapsed) < 0.5, (loop_elapsed, wall_elapsed)


def test_progress_bar_option_runs():
    async def main():
        await asyncio.sleep(50)
        return "ok"

    assert sim.run(main, until_s=100, progress=True) == "ok"


def test_queueing_service_has_real_queue_and_rejects_when_full():
    async def main():
        svc = sim.SimService("db", workers=1, queue_limit=2, latency=1.0)
        loop = asyncio.get_running_loop()

        async def one():
            try:
                await svc.call()
                return ("ok", loop.time())
            except ServiceError as e:
                return (e.status, loop.time())

        return await asyncio.gather(*(one() for _ in range(5))), svc

    results, svc = sim.run(main)
    assert results == [("ok", 1.0), ("ok", 2.0), ("ok", 3.0), (503, 0.0), (503, 0.0)]
    assert [(r.start, r.end, r.status) for r in svc.records if r.status == 200] == \
        [(0.0, 1.0, 200), (1.0, 2.0, 200), (2.0, 3.0, 200)]
    assert svc.summary()["rejected"] == 2


def test_client_timeout_leaves_the_server_working():
    async def main():
        svc = sim.SimService("slow", latency=2.0)
        with pytest.raises(ServiceError) as info:
            await svc.call(timeout_s=0.5)
        t = sim.now()
        await asyncio.sleep(5)
        return info.value, t, svc.records

    exc, t, records = sim.run(main)
    assert exc.kind is ErrorKind.TIMEOUT and t == 0.5
    assert records[0].end == 2.0 and records[0].client == "timeout"


def test_error_rate_and_determinism():
    def once(seed):
        async def main():
            svc = sim.SimService("api", workers=4, latency=sim.Exponential(0.01), error_rate=0.2)

            async def req():
                return await svc.call()

            await sim.poisson_arrivals(200, 20, req)
            return svc.records
        return sim.run(main, seed=seed)

    a, b, c = once(1), once(1), once(2)
    assert a == b and a != c
    errors = sum(r.status == 500 for r in a) / len(a)
    # ~4000 requests: binomial sd = sqrt(.2*.8/4000) = 0.0063; 4 sd = 0.025.
    assert abs(errors - 0.2) < 0.025


def test_poisson_arrival_count():
    async def main():
        async def req():
            return sim.now()

        return await sim.poisson_arrivals(100, 100, req, seed=3)

    times = sim.run(main)
    # Poisson count with mean 10000 has sd 100: accept 4 sd.
    assert abs(len(times) - 10000) < 400
    assert times == sorted(times) and 0 < times[0] and times[-1] < 100


def test_lognormal_from_percentiles():
    import random
    d = sim.LogNormal.from_p50_p99(0.010, 0.060)
    draw = d.sampler(random.Random(1))
    xs = sorted(draw() for _ in range(40000))
    # Order-statistic sd of the median: sqrt(p(1-p)/n)/f(x) ~ 1.3% of p50 here; p99 ~ 3%.
    assert xs[20000] == pytest.approx(0.010, rel=0.04)
    assert xs[39600] == pytest.approx(0.060, rel=0.10)
    assert d.mean_s == pytest.approx(math.exp(d.mu + d.sigma ** 2 / 2))
    with pytest.raises(ValueError, match="p99_s"):
        sim.LogNormal.from_p50_p99(0.01, 0.005)
    with pytest.raises(ValueError, match="workers"):
        sim.SimService("x", workers=0)
    with pytest.raises(ValueError, match="error_rate"):
        sim.SimService("x", error_rate=1.5)


def batch_means(values, batches=20):
    size = len(values) // batches
    means = [statistics.fmean(values[i * size:(i + 1) * size]) for i in range(batches)]
    return statistics.fmean(means), statistics.stdev(means) / math.sqrt(batches)


def test_mm1_response_time_and_littles_law():
    lam, mu = 0.5, 1.0  # rho = 0.5: W = 1/(mu - lam) = 2 s, L = rho/(1 - rho) = 1

    async def main():
        svc = sim.SimService("mm1", workers=1, latency=sim.Exponential(1 / mu))
        mon = sim.Monitor([svc], every_s=1.0)

        async def req():
            return await svc.call()

        await sim.poisson_arrivals(lam, 80000, req, seed=1)
        mon.stop()
        return svc.records, mon.rows

    records, rows = sim.run(main, seed=1)
    warm = 1000  # drop the start-up transient (the queue starts empty)
    w = [r.end - r.arrival for r in records[warm:]]
    n_t = [row["in_system"] for row in rows[2000:]]
    lam_hat = len(records) / 80000
    # Response times are autocorrelated, so i.i.d. error bars would be too narrow. Batch means:
    # 20 batches of ~2000 requests (~4000 s each, far longer than the queue's relaxation time of
    # ~1/(mu (1 - sqrt(rho))^2) ~ 12 s) are nearly independent; 4 standard errors is beyond the
    # t(19) 99.9% quantile (3.88). The SE bound below keeps the test able to fail: it detects a
    # bias of ~10% in W.
    w_hat, w_se = batch_means(w)
    assert w_se < 0.05
    assert abs(w_hat - 1 / (mu - lam)) < 4 * w_se
    # Little's law, with L measured independently: the monitor samples the number in system
    # every second (a time average), while W comes from per-request records.
    l_hat, l_se = batch_means(n_t)
    assert l_se < 0.03
    assert abs(l_hat - lam_hat * w_hat) < 4 * math.hypot(l_se, lam_hat * w_se)
    assert abs(l_hat - 1.0) < 4 * l_se
    assert json.loads(json.dumps(rows[:3])) == rows[:3]
