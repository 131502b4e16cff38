"""Peak shaving (chapter 02): a burst of orders, sent directly or through a queue, in virtual time.

The kitchen (a service) has a fixed capacity: `WORKERS` cooks, each order taking
WORKERS / capacity_per_s seconds. `burst` orders arrive at seeded random times within
`burst_s` seconds.

- "direct": each caller calls the service and waits at most `timeout_s` (its wait in line
  counts). Orders beyond what the kitchen does in about burst_s + timeout_s time out: errors,
  and a caller who gave up leaves the line (the kitchen drops it).
- "queued": each caller publishes the order to a queue and is done once the broker confirms
  (zero errors); WORKERS consumers with prefetch 1, the same capacity, drain it. The queue's
  depth rises during the burst, then drains; end-to-end latency grows to about
  burst / capacity_per_s for the last order: the burst is absorbed, paid for in waiting.

Series are sampled every `SAMPLE_S`; times are virtual seconds, latencies in ms.
"""
from __future__ import annotations

import asyncio

from labkit import sim
from labkit._core import validate
from labkit.messaging import Broker, DeliveryChecker, Message, connect
from labkit.obs.metrics import percentile

__all__ = ["WORKERS", "SAMPLE_S", "peak_lab", "peak_chart"]

WORKERS = 10
SAMPLE_S = 0.1


def _arrivals(burst, burst_s, seed):
    r = sim.rng("peak-lab:arrivals", seed)
    return sorted(r.uniform(0.0, burst_s) for _ in range(burst))


async def _sampler(series, depth, in_flight):
    """Sample every SAMPLE_S until cancelled (the run then adds one last sample)."""
    loop = asyncio.get_running_loop()
    while True:
        series.append((round(loop.time(), 6), depth(), in_flight()))
        await asyncio.sleep(SAMPLE_S)


async def _direct(arrivals, service_s, timeout_s):
    loop = asyncio.get_running_loop()
    kitchen = asyncio.Semaphore(WORKERS)
    state = {"waiting": 0, "busy": 0}
    orders = []                                  # (arrival, latency_s or None)

    async def cook():
        state["waiting"] += 1
        try:
            await kitchen.acquire()
        finally:
            state["waiting"] -= 1
        state["busy"] += 1
        try:
            await asyncio.sleep(service_s)
        finally:
            state["busy"] -= 1
            kitchen.release()

    async def caller(t0):
        await asyncio.sleep(t0 - loop.time())
        try:
            await asyncio.wait_for(cook(), timeout_s)
            orders.append((t0, loop.time() - t0))
        except asyncio.TimeoutError:
            orders.append((t0, None))

    series: list = []
    sampler = asyncio.create_task(_sampler(series, lambda: state["waiting"],
                                           lambda: state["busy"]))
    await asyncio.gather(*(caller(t) for t in arrivals))
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    series.append((round(loop.time(), 6), state["waiting"], state["busy"]))
    return orders, series, None


async def _queued(arrivals, service_s):
    loop = asyncio.get_running_loop()
    broker = Broker()
    checker = DeliveryChecker()
    broker.journal.subscribe(checker.observe)
    conn = await connect(broker=broker)
    ch = await conn.channel()
    q = await ch.declare_queue("orders", durable=True)
    orders = []
    errors = [0]

    async def cook(m):
        await asyncio.sleep(service_s)
        broker.journal.handled(m)
        orders.append((float(m.body), loop.time() - float(m.body)))
        await m.ack()

    for _ in range(WORKERS):
        c = await conn.channel()
        await c.set_qos(prefetch_count=1)
        await (await c.get_queue("orders")).consume(cook)

    async def caller(i, t0):
        await asyncio.sleep(t0 - loop.time())
        if not await ch.default_exchange.publish(
                Message(repr(t0).encode(), message_id=f"o{i}", persistent=True),
                routing_key=q.name):
            errors[0] += 1

    series: list = []
    info = lambda: broker.queue_info("orders")      # noqa: E731
    sampler = asyncio.create_task(_sampler(series, lambda: info()["ready"],
                                           lambda: info()["unacked"]))
    await asyncio.gather(*(caller(i, t) for i, t in enumerate(arrivals)))
    while len(orders) + errors[0] < len(arrivals):
        await asyncio.sleep(SAMPLE_S / 10)
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    series.append((round(loop.time(), 6), info()["ready"], info()["unacked"]))
    await conn.close()
    return orders, series, (errors[0], checker.result())


def _summary(orders, series, burst):
    ok = sorted(lat * 1000 for _, lat in orders if lat is not None)
    peak = max(series, key=lambda s: s[1]) if series else (0.0, 0, 0)
    return {
        "ok": len(ok), "errors": burst - len(ok),
        "latency_p50_ms": round(percentile(ok, 50), 3) if ok else None,
        "latency_max_ms": round(ok[-1], 3) if ok else None,
        "peak_depth": peak[1], "peak_depth_at_s": peak[0],
        "drained_at_s": round(max((t + lat for t, lat in orders if lat is not None),
                                  default=0.0), 6),
        "series": {"t": [s[0] for s in series], "depth": [s[1] for s in series],
                   "in_flight": [s[2] for s in series]},
        "orders": [{"t_s": round(t, 6), "latency_ms": None if lat is None
                    else round(lat * 1000, 3)} for t, lat in sorted(orders)],
    }


def peak_lab(*, burst: int = 500, burst_s: float = 1.0, capacity_per_s: float = 100,
             timeout_s: float = 2.0, seed: int = 0) -> dict:
    """Run the burst both ways (see the module docstring); returns {"direct": {...},
    "queued": {...}, ...}: ok/errors, latency, peak depth, series (t, depth, in_flight),
    per-order latency, and the checker's verdict for the queued run."""
    burst = validate.integer("burst", burst, 1, 100_000)
    burst_s = validate.number("burst_s", burst_s, 0, 3600, lo_open=True, unit=" s")
    capacity_per_s = validate.number("capacity_per_s", capacity_per_s, 0, 100_000, lo_open=True,
                                     unit=" orders/s")
    timeout_s = validate.number("timeout_s", timeout_s, 0, 3600, lo_open=True, unit=" s")
    seed = validate.integer("seed", seed)
    arrivals = _arrivals(burst, burst_s, seed)
    service_s = WORKERS / capacity_per_s
    limit = burst_s + burst / capacity_per_s + timeout_s + 60

    direct = _summary(*sim.run(lambda: _direct(arrivals, service_s, timeout_s), seed=seed,
                               until_s=limit)[:2], burst)
    orders, series, (publish_errors, checker) = sim.run(lambda: _queued(arrivals, service_s),
                                                        seed=seed, until_s=limit)
    queued = _summary(orders, series, burst)
    queued.update(errors=publish_errors, checker=checker, verdict=checker["verdict"])
    return {"burst": burst, "burst_s": burst_s, "capacity_per_s": capacity_per_s,
            "timeout_s": timeout_s, "workers": WORKERS, "service_ms": service_s * 1000,
            "direct": direct, "queued": queued}


def peak_chart(result):
    """Depth and latency over time, direct vs queued (a matplotlib Figure; see
    labkit.ui.messaging_charts)."""
    from labkit.ui.messaging_charts import peak_chart as draw
    return draw(result)
