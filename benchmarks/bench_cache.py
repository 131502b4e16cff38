"""Single-flight: backend calls for 1,000 concurrent misses of one key, with and without it.

Two backends: an in-process one (an asyncio.sleep of 20 ms per call) and labkit's inventory
service over HTTP (30 ms injected latency, so the misses overlap), where the count is the
server's own (`requests_seen`). Prints calls, wall time and the ratio. Counts are exact; the
times are one run on whatever machine this is.

    .venv/bin/python benchmarks/bench_cache.py [--misses 1000] [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import time

from labkit.patterns.cache import Cache


async def _in_process(misses: int, single_flight: bool) -> tuple[int, float]:
    calls = [0]

    async def load(key):
        calls[0] += 1
        await asyncio.sleep(0.02)
        return {"key": key}

    cache = Cache(load, ttl_s=60, single_flight=single_flight, max_entries=10)
    t0 = time.perf_counter()
    await asyncio.gather(*(cache.get("hot") for _ in range(misses)))
    took = time.perf_counter() - t0
    await cache.close()
    return calls[0], took


async def _over_http(misses: int, single_flight: bool, service, client,
                     item_id: int) -> tuple[int, float]:
    async def load(key):
        reply = await client.get(f"/items/{key}")
        return reply.data

    cache = Cache(load, ttl_s=60, single_flight=single_flight, timeout_s=30.0)
    before = service.requests_seen
    t0 = time.perf_counter()
    await asyncio.gather(*(cache.get(item_id) for _ in range(misses)))
    took = time.perf_counter() - t0
    await cache.close()
    return service.requests_seen - before, took


async def measure(misses: int = 1000) -> list[dict]:
    import labkit
    from labkit.services.clients import AsyncClient
    rows = []
    for sf in (False, True):
        calls, took = await _in_process(misses, sf)
        rows.append({"backend": "in-process (20 ms)", "single_flight": sf, "calls": calls,
                     "seconds": took})
    service = await labkit.start_service("inventory")
    try:
        async with AsyncClient(service.url, timeout_s=60.0) as client:
            item = (await client.post("/items", json={"sku": "bench-cache", "stock": 1})).data
            service.faults.latency_ms = 30
            for sf in (False, True):
                calls, took = await _over_http(misses, sf, service, client, item["id"])
                rows.append({"backend": "inventory over HTTP (30 ms)", "single_flight": sf,
                             "calls": calls, "seconds": took})
    finally:
        service.faults.reset()
        await labkit.shutdown()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="same run (it takes ~1 s)")
    args = parser.parse_args(argv)
    rows = asyncio.run(measure(args.misses))
    print(f"{args.misses} concurrent misses of one key:")
    for r in rows:
        print(f"  {r['backend']:28s} single-flight {'on ' if r['single_flight'] else 'off'}: "
              f"{r['calls']:5d} backend calls, {r['seconds'] * 1000:7.0f} ms")
    for backend in dict.fromkeys(r["backend"] for r in rows):
        off, on = (r for r in rows if r["backend"] == backend)
        print(f"  {backend}: {off['calls'] / max(on['calls'], 1):.0f}x fewer backend calls "
              f"with single-flight")


if __name__ == "__main__":
    main()
