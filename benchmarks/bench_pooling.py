"""Requests/s with a pooled keep-alive session against a new connection per request.

One labkit "users" service on 127.0.0.1 (fault layer on, no injected latency unless
--latency-ms), in this process's loop as in a notebook. Each round sends the same GET /health
requests, `--concurrency` at a time, once through a new aiohttp session per request and once
through one shared session; rounds alternate so machine noise hits both alike. Prints the
median requests/s of each, the ratio pooled / new, and the connections the server accepted.

    .venv/bin/python benchmarks/bench_pooling.py [--requests 1000] [--rounds 5]
        [--concurrency 20] [--latency-ms 0]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import labkit  # noqa: E402
from labkit.labs.pooling import measure_mode  # noqa: E402


async def measure(requests: int, rounds: int, concurrency: int, latency_ms: float) -> dict:
    users = await labkit.start_service("users")
    try:
        users.faults.set(latency_ms=latency_ms)
        rows = {"new connection per request": [], "shared session": []}
        for _ in range(rounds):
            for mode in rows:
                rows[mode].append(await measure_mode(users, mode, requests=requests,
                                                     concurrency=concurrency))
    finally:
        users.faults.reset()
        await labkit.shutdown()
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--quick", action="store_true", help="300 requests, 3 rounds")
    a = p.parse_args(argv)
    if a.quick:
        a.requests, a.rounds = 300, 3
    rows = asyncio.run(measure(a.requests, a.rounds, a.concurrency, a.latency_ms))
    out = {}
    for mode, runs in rows.items():
        rps = statistics.median(r["requests_per_s"] for r in runs)
        conns = statistics.median(r["connections"] for r in runs)
        out[mode] = rps
        print(f"  {mode:<28} {rps:8.0f} requests/s   {conns:6.0f} server connections "
              f"per {a.requests} requests")
    ratio = out["shared session"] / out["new connection per request"]
    print(f"  pooled / new connection per request: {ratio:.2f}x  ({a.requests} GETs, "
          f"{a.concurrency} at a time, injected latency {a.latency_ms:g} ms, "
          f"median of {a.rounds} rounds)")
    out["ratio"] = ratio
    return out


if __name__ == "__main__":
    main()
