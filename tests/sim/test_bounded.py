"""Long simulations keep bounded state: per-request records and results are capped or not
kept, while the counters still cover every request."""
import asyncio
import tracemalloc

import pytest

from labkit import sim


def test_sim_service_keeps_at_most_max_records_and_counts_the_rest():
    async def main():
        svc = sim.SimService("api", workers=4, latency=0.001, max_records=100)
        await asyncio.gather(*(svc.call() for _ in range(1000)))
        return svc

    svc = sim.run(main)
    assert len(svc.records) == 100 and svc.records_dropped == 900
    assert svc.summary()["completed"] == svc.arrived == 1000
    assert [r.id for r in svc.records] == list(range(1, 101))        # the first ones


def test_monitor_keeps_at_most_max_rows():
    async def main():
        svc = sim.SimService("api")
        mon = sim.Monitor([svc], every_s=1.0, max_rows=10)
        await asyncio.sleep(50.5)
        mon.stop()
        return mon

    mon = sim.run(main)
    assert len(mon.rows) == 10 and mon.rows_dropped == 40
    assert [r["t"] for r in mon.rows] == [float(k) for k in range(1, 11)]


def _peak_bytes(n_requests: int) -> int:
    async def req():
        await asyncio.sleep(0.001)

    async def main():
        return await sim.poisson_arrivals(1000.0, n_requests / 1000.0, req, seed=1,
                                          keep_results=False)

    tracemalloc.start()
    try:
        started = sim.run(main)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(started - n_requests) < 5 * n_requests ** 0.5        # Poisson count
    return peak


def test_poisson_arrivals_without_results_keeps_memory_flat():
    # 10x the requests, about the same peak: nothing is kept per request (a list of 20 000
    # results alone would add 160 kB).
    _peak_bytes(200)                           # one-time allocations (imports, caches) first
    small, large = _peak_bytes(2_000), _peak_bytes(20_000)
    assert large - small < 80_000, (small, large)


def test_poisson_arrivals_keeps_results_by_default():
    async def main():
        async def req():
            return sim.now()
        return await sim.poisson_arrivals(100.0, 1.0, req, seed=2)

    out = sim.run(main)
    assert isinstance(out, list) and out == sorted(out) and len(out) > 50


def test_without_results_an_exception_escaping_a_request_is_raised_not_lost():
    async def main():
        async def req():
            raise KeyError("a bug in the request")
        return await sim.poisson_arrivals(100.0, 1.0, req, seed=2, keep_results=False)

    with pytest.raises(KeyError, match="a bug"):
        sim.run(main)
