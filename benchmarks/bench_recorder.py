"""The metrics recorder (chapter 06): ns per record and percentile error at 10^6 samples, and the
speed ratio over the tutorial's collector at 10^5 samples (goal >= 100x).

`labkit.obs.histogram.LogHistogram` records 10^6 lognormal latencies (median 20 ms, a tail to
seconds); its percentiles from p0 to p100 are compared with numpy's exact ones on the same
samples (the bound is 1 %). Then `labkit.labs.recorder.record_cost` (the notebook's
measurement) times a record at 10^5 samples held: the tutorial's `MetricsCollector` (every
record rebuilds its whole sample list, so it is timed over fewer records) against labkit's
`Recorder` with a window of 10^5 calls, in interleaved rounds; medians of the rounds.

    .venv/bin/python benchmarks/bench_recorder.py [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from labkit.labs import recorder as lab
from labkit.obs.histogram import LogHistogram

QS = (0, 0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100)


def histogram_figures(samples: int, seed: int = 2024) -> dict:
    """ns per record (best of 3 passes over the same values) and the worst relative error."""
    xs = np.random.default_rng(seed).lognormal(np.log(0.02), 1.0, samples).tolist()
    best = float("inf")
    for _ in range(3):
        h = LogHistogram()
        record = h.record
        start = time.perf_counter()
        for x in xs:
            record(x)
        best = min(best, time.perf_counter() - start)
    exact = np.percentile(xs, QS)
    got = h.percentiles(QS)
    errors = [abs(g - e) / e for g, e in zip(got, exact)]
    return {"samples": samples, "ns_per_record": best / samples * 1e9,
            "max_rel_error": max(errors), "worst_q": QS[errors.index(max(errors))],
            "buckets": h.bucket_count}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer records and rounds")
    args = parser.parse_args(argv)
    hist = histogram_figures(10**6)
    print(f"  LogHistogram at {hist['samples']:,} samples: {hist['ns_per_record']:.0f} ns/record "
          f"(best of 3), max percentile error {hist['max_rel_error']:.3%} "
          f"(at p{hist['worst_q']:g}; bound 1 %), {hist['buckets']} buckets")
    rounds = 3 if args.quick else 5
    tutorial_records = 20 if args.quick else 100
    rows = [lab.record_cost(100_000, tutorial_records=tutorial_records,
                            recorder_records=100_000, seed=i) for i in range(rounds)]
    tut = statistics.median(r["tutorial_us"] for r in rows)
    rec = statistics.median(r["recorder_us"] for r in rows)
    print(f"  at 100,000 samples held (medians of {rounds} rounds): tutorial MetricsCollector "
          f"{tut:,.0f} µs/record (timed over {tutorial_records} records), labkit Recorder "
          f"{rec:.2f} µs/record (over 100,000 records, window 100,000)")
    print(f"  speed ratio Recorder / tutorial: {tut / rec:,.0f}x  (goal >= 100x)")
    return {**hist, "tutorial_us": tut, "recorder_us": rec, "ratio": tut / rec}


if __name__ == "__main__":
    main()
