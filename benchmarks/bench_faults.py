"""Per-request cost of labkit's fault layer (all faults off) against a bare aiohttp handler.

Both servers run on 127.0.0.1 in this process's loop, as in a notebook; one aiohttp client
session sends the same GET to each, interleaved in rounds so machine noise hits both alike.
Prints the median time per request for each and the ratio labkit / bare (target <= 1.15).

    .venv/bin/python benchmarks/bench_faults.py [--requests 2000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from aiohttp import web

from labkit.services.http import SPECS, Service


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/health"


async def _time(session, url: str, n: int, concurrency: int) -> float:
    """Seconds per request for n GETs with `concurrency` workers."""
    per_worker = n // concurrency

    async def worker():
        for _ in range(per_worker):
            async with session.get(url) as resp:
                await resp.read()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - start) / (per_worker * concurrency)


async def measure(requests: int = 2000, rounds: int = 7, concurrency: int = 8) -> dict:
    async def bare(request):
        return web.json_response({"status": "ok", "service": "users"})

    bare_app = web.Application()
    bare_app.router.add_get("/health", bare)
    service = Service(SPECS["users"])
    runners, urls = [], {}
    for name, app in (("bare aiohttp", bare_app), ("labkit, no fault layer", service.make_app(faults=False)),
                      ("labkit, faults off", service.make_app(faults=True))):
        runner, urls[name] = await _serve(app)
        runners.append(runner)
    service.loop = asyncio.get_running_loop()
    times = {name: [] for name in urls}
    async with aiohttp.ClientSession() as session:
        for name, url in urls.items():                         # warm up
            await _time(session, url, 200, concurrency)
        for _ in range(rounds):
            for name, url in urls.items():
                times[name].append(await _time(session, url, requests, concurrency))
    for runner in runners:
        await runner.cleanup()
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {"per_request_us": {k: v * 1e6 for k, v in med.items()},
            "ratio_faults_off_vs_bare": med["labkit, faults off"] / med["bare aiohttp"],
            "ratio_no_layer_vs_bare": med["labkit, no fault layer"] / med["bare aiohttp"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.requests, args.rounds))
    for name, us in result["per_request_us"].items():
        print(f"  {name:<26} {us:7.1f} µs/request (median of {args.rounds} rounds)")
    print(f"  fault layer overhead ratio (faults off / bare aiohttp): "
          f"{result['ratio_faults_off_vs_bare']:.3f}  (target <= 1.15)")
    return result


if __name__ == "__main__":
    main()
