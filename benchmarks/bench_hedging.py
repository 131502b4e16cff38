"""Hedged requests: "The Tail at Scale" (Dean & Barroso, 2013) reproduced, beside the paper.

Workload: a request reads 1,000 keys (spread over 100 servers) and is done when the last read
is; each read's latency is labkit.labs.hedging.PAPER_MODEL, a lognormal fitted to the paper's
unhedged system (2 % of reads over 10 ms; request p99.9 1,800 ms). A hedge goes to another
replica after 10 ms. Prints request p99 and p99.9 with and without hedging and the extra
reads, for 12 seeds of 20,000 requests each (20 requests beyond the p99.9 per seed),
then the cross-check: the real `labkit.patterns.hedge.hedged()` in virtual time gives the
same request times as the numpy engine, and its cost per read.

Run:  .venv/bin/python benchmarks/bench_hedging.py [--quick] [--seeds N] [--requests N]
No asserts: the printed numbers are the result.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit.labs import hedging as H  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 seeds, 5,000 requests each")
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--requests", type=int, default=20_000)
    args = ap.parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    requests = 5_000 if args.quick else args.requests
    m = H.PAPER_MODEL
    print(f"model: read latency lognormal, median {m.median_ms:.3f} ms, sigma {m.sigma:.3f} "
          f"(P(read > 10 ms) = {m.share_over(10):.3%}, read p99.9999 = "
          f"{m.quantile_ms(1 - 1e-6):.0f} ms)")
    print(f"{requests:,} requests x 1,000 reads per seed, {seeds} seeds; hedge after 10 ms")
    runs = []
    t0 = time.perf_counter()
    for seed in range(1, seeds + 1):
        runs.append(H.tail_at_scale(requests=requests, seed=seed))
    took = time.perf_counter() - t0
    print(f"(numpy engine: {took / seeds:.2f} s per seed, "
          f"{took / seeds / runs[0]['reads'] * 1e9:.0f} ns per read)")

    def col(kind, key):
        xs = [r[kind][key] for r in runs]
        return f"{statistics.median(xs):7.0f}  ({min(xs):.0f}..{max(xs):.0f})"

    extra = [r["extra_share"] for r in runs]
    print(f"\n{'':22}{'measured: median (range over seeds)':>36}   paper")
    print(f"{'unhedged p99':22}{col('unhedged', 'p99_ms'):>36}   -")
    print(f"{'unhedged p99.9':22}{col('unhedged', 'p999_ms'):>36}   1,800 ms (fitted)")
    print(f"{'hedged p99':22}{col('hedged', 'p99_ms'):>36}   -")
    print(f"{'hedged p99.9':22}{col('hedged', 'p999_ms'):>36}   74 ms (predicted here)")
    spread = f"({min(extra):.2%}..{max(extra):.2%})"
    print(f"{'extra reads':22}{statistics.median(extra):>28.2%} {spread}   2 % (fitted)")
    ratio = [r["unhedged"]["p999_ms"] / r["hedged"]["p999_ms"] for r in runs]
    spread = f"({min(ratio):.0f}..{max(ratio):.0f}x)"
    print(f"{'p99.9 cut by':22}{statistics.median(ratio):>27.1f}x {spread}   24x")

    print("\nsweep: hedge delay at a percentile of the read latency (seed 1)")
    rows = H.sweep(requests=requests, seed=1)
    print(f"{'hedge after':>16} {'delay ms':>9} {'extra':>8} {'p99 ms':>8} {'p99.9 ms':>9}")
    for r in rows:
        name = "never" if r["percentile"] is None else f"read p{r['percentile']:g}"
        delay = "-" if r["hedge_after_ms"] is None else f"{r['hedge_after_ms']:.2f}"
        print(f"{name:>16} {delay:>9} {r['extra_share']:>8.2%} {r['p99_ms']:>8.0f} "
              f"{r['p999_ms']:>9.0f}")

    n = 5 if args.quick else 20
    t0 = time.perf_counter()
    virtual = H.simulate(requests=n, seed=1)
    took = time.perf_counter() - t0
    same = H.request_times_ms(requests=n, seed=1)[10.0]
    diff = float(np.max(np.abs(np.array(virtual["request_ms"]) - same)))
    print(f"\nvirtual time, real hedged() per read: {n} requests = {n * 1000:,} reads in "
          f"{took:.2f} s ({took / (n * 1000) * 1e6:.0f} µs per read); largest difference from "
          f"the numpy engine {diff:.1e} ms; hedges {virtual['stats']['hedges']}, losers "
          f"cancelled {virtual['stats']['cancelled']}, tasks left {virtual['tasks_left']}")
    return {"runs": runs, "sweep": rows, "virtual_diff_ms": diff}


if __name__ == "__main__":
    main(sys.argv[1:])
