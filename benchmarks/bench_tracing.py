"""Tracing overhead per request on a labkit service, and labkit's span path vs the OTel SDK's.

1. Per request: one labkit service app (every outer layer, faults off) in this process's loop,
   measured under three process tracers (`tracing.set_default`): tracing off, labkit's path (the
   OpenTelemetry SDK with labkit's in-memory SpanRecord processor), and labkit's path plus an
   OTel BatchSpanProcessor feeding an exporter that drops everything (what pointing labkit at
   a collector adds, minus the network). One aiohttp session sends GETs with no traceparent
   (each request a new trace, the most expensive case: new ids), interleaved in rounds so
   machine noise hits all alike. Prints median µs per request (wall and CPU) and the ratios
   traced / untraced.
2. Per span: `Tracer.span` (labkit's path) against a plain SDK tracer with a
   BatchSpanProcessor and a dropping exporter (OTel's usual setup), µs per parent+child pair.

    .venv/bin/python benchmarks/bench_tracing.py [--requests 2000] [--rounds 5] [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from labkit.obs import tracing
from labkit.services.http import SPECS, Service

from bench_faults import _serve, _time   # the same server and timing loop as the fault bench


class DropExporter(SpanExporter):
    """An exporter that accepts and forgets every span (no network, no memory)."""

    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


async def per_request(requests: int, rounds: int, concurrency: int = 8) -> dict:
    off = tracing.Tracer(max_spans=1000, seed=1)
    off.enabled = False
    tracers = {"untraced": off,
               "labkit tracing": tracing.Tracer(max_spans=1000, seed=1),
               "labkit + OTel batch exporter": tracing.Tracer(
                   max_spans=1000, seed=1,
                   processors=(BatchSpanProcessor(DropExporter(), max_queue_size=4096),))}
    service = Service(SPECS["users"])
    service.loop = asyncio.get_running_loop()
    runner, url = await _serve(service.make_app(faults=True))
    wall = {n: [] for n in tracers}
    cpu = {n: [] for n in tracers}
    before = tracing.default()
    try:
        async with aiohttp.ClientSession() as session:
            for tracer in tracers.values():                    # warm up
                tracing.set_default(tracer)
                await _time(session, url, 200, concurrency)
            for _ in range(rounds):
                for name, tracer in tracers.items():           # the layer reads it per request
                    tracing.set_default(tracer)
                    w, c = await _time(session, url, requests, concurrency)
                    wall[name].append(w)
                    cpu[name].append(c)
    finally:
        tracing.set_default(before)
        await runner.cleanup()
        for t in tracers.values():
            t.provider.shutdown()
    med = {n: statistics.median(v) * 1e6 for n, v in wall.items()}
    med_cpu = {n: statistics.median(v) * 1e6 for n, v in cpu.items()}
    return {"wall_us": med, "cpu_us": med_cpu,
            "spans_recorded": len(tracers["labkit tracing"].store)}


def per_span(n: int) -> dict:
    """µs per (parent + child) pair: labkit's Tracer.span vs a plain SDK batch pipeline."""
    lab = tracing.Tracer(max_spans=1000, seed=1)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=4096))
    sdk = provider.get_tracer("bench")

    def run_lab():
        for _ in range(n):
            with lab.span("parent", service="a"):
                with lab.span("child", service="a"):
                    pass

    def run_sdk():
        for _ in range(n):
            with sdk.start_as_current_span("parent", attributes={"service.name": "a"}):
                with sdk.start_as_current_span("child", attributes={"service.name": "a"}):
                    pass
    out = {"labkit Tracer.span": [], "OTel SDK + BatchSpanProcessor": []}
    for _ in range(5):
        for name, fn in (("labkit Tracer.span", run_lab),
                         ("OTel SDK + BatchSpanProcessor", run_sdk)):
            t = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - t) / n * 1e6)
    provider.shutdown()
    lab.provider.shutdown()
    return {k: statistics.median(v) for k, v in out.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    requests, rounds = (800, 3) if args.quick else (args.requests, args.rounds)
    r = asyncio.run(per_request(requests, rounds))
    base, base_cpu = r["wall_us"]["untraced"], r["cpu_us"]["untraced"]
    for name in r["wall_us"]:
        wall = r["wall_us"][name]
        print(f"  {name:<30} {wall:7.1f} µs/request ({wall / base:.3f}x)"
              f", {r['cpu_us'][name]:7.1f} µs CPU ({r['cpu_us'][name] / base_cpu:.3f}x)"
              f"   medians of {rounds} rounds of {requests}")
    s = per_span(2000 if args.quick else 10_000)
    lab, sdk = s["labkit Tracer.span"], s["OTel SDK + BatchSpanProcessor"]
    print(f"  per parent+child span pair: labkit {lab:.1f} µs, plain OTel SDK batch pipeline "
          f"{sdk:.1f} µs (labkit / SDK = {lab / sdk:.2f})")
    return {**r, "per_span_pair_us": s}


if __name__ == "__main__":
    main()
