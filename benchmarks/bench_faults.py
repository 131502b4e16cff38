"""Per-request cost of labkit's fault layer (all faults off) against a bare aiohttp handler.

The fault layer alone is measured against its target; the full stack a service really runs
(plus the outer layers of chapters 06-07: tracing, RED metrics, load shedding; see
labkit/services/layers.py) is reported beside it.

Both servers run on 127.0.0.1 in this process's loop, as in a notebook; one aiohttp client
session sends the same GET to each, interleaved in rounds so machine noise hits both alike.
Every GET carries a fresh X-Request-Id, as labkit's clients send, so the fault layer takes the
path it takes for them (the fault decided from a hash of seed, service and id).
Prints the median time per request for each and the ratio labkit / bare (target <= 1.15),
in wall-clock time and in this process's CPU time (client and server share the process, so
CPU time is the cost of the work itself, and varies far less when other processes compete
for the cores).

    .venv/bin/python benchmarks/bench_faults.py [--requests 2000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time

import aiohttp
from aiohttp import web

from labkit.services.http import SPECS, Service

ALL_LAYERS = "labkit, + outer layers"


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/health"


async def _time(session, url: str, n: int, concurrency: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) per request for n GETs with `concurrency` workers."""
    per_worker = n // concurrency
    ids = itertools.count(1)

    async def worker():
        for _ in range(per_worker):
            async with session.get(url, headers={"X-Request-Id": f"bench-{next(ids)}"}) as resp:
                await resp.read()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = per_worker * concurrency
    return (time.perf_counter() - start) / done, (time.process_time() - cpu) / done


async def measure(requests: int = 2000, rounds: int = 7, concurrency: int = 8) -> dict:
    async def bare(request):
        return web.json_response({"status": "ok", "service": "users"})

    bare_app = web.Application()
    bare_app.router.add_get("/health", bare)
    service = Service(SPECS["users"])
    runners, urls = [], {}
    apps = (("bare aiohttp", bare_app), ("labkit, no fault layer", service.make_app(faults=False)),
            ("labkit, faults off", service.make_app(faults=True, layers=False)),
            (ALL_LAYERS, service.make_app(faults=True)))
    for name, app in apps:
        runner, urls[name] = await _serve(app)
        runners.append(runner)
    service.loop = asyncio.get_running_loop()
    times = {name: [] for name in urls}
    cpu = {name: [] for name in urls}
    async with aiohttp.ClientSession() as session:
        for name, url in urls.items():                         # warm up
            await _time(session, url, 200, concurrency)
        for _ in range(rounds):
            for name, url in urls.items():
                wall, used = await _time(session, url, requests, concurrency)
                times[name].append(wall)
                cpu[name].append(used)
    for runner in runners:
        await runner.cleanup()
    med = {name: statistics.median(ts) for name, ts in times.items()}
    med_cpu = {name: statistics.median(ts) for name, ts in cpu.items()}
    return {"per_request_us": {k: v * 1e6 for k, v in med.items()},
            "cpu_per_request_us": {k: v * 1e6 for k, v in med_cpu.items()},
            "ratio_faults_off_vs_bare": med["labkit, faults off"] / med["bare aiohttp"],
            "ratio_no_layer_vs_bare": med["labkit, no fault layer"] / med["bare aiohttp"],
            "cpu_ratio_faults_off_vs_bare": (med_cpu["labkit, faults off"]
                                             / med_cpu["bare aiohttp"]),
            "ratio_all_layers_vs_bare": med[ALL_LAYERS] / med["bare aiohttp"],
            "cpu_ratio_all_layers_vs_bare": med_cpu[ALL_LAYERS] / med_cpu["bare aiohttp"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.requests, args.rounds))
    for name, us in result["per_request_us"].items():
        print(f"  {name:<26} {us:7.1f} µs/request, {result['cpu_per_request_us'][name]:7.1f} µs "
              f"CPU (medians of {args.rounds} rounds)")
    print(f"  fault layer overhead ratio (faults off / bare aiohttp): "
          f"{result['ratio_faults_off_vs_bare']:.3f} wall-clock, "
          f"{result['cpu_ratio_faults_off_vs_bare']:.3f} CPU  (target <= 1.15)")
    print(f"  with the outer layers too (tracing, /metrics, shedding; chapters 06-07): "
          f"{result['ratio_all_layers_vs_bare']:.3f} wall-clock, "
          f"{result['cpu_ratio_all_layers_vs_bare']:.3f} CPU  (reported)")
    return result


if __name__ == "__main__":
    main()
