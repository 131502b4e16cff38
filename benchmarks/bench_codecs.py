"""Codecs by format and fixture: bytes and µs per encode + decode, ratios to stdlib JSON (chapter 04).

Runs `labkit.labs.serialization.size_and_speed` (the notebook's measurement) with a longer
budget: every codec of labkit.codecs on the fixtures in data/fixtures/ (an order, a large
list, a nested document), measured in interleaved rounds so machine noise hits all alike;
medians of the rounds. Sizes are exact and deterministic; time ratios within 3x of JSON are
printed but not claimed ("no claim") because the machine is shared.

    .venv/bin/python benchmarks/bench_codecs.py [--quick]
"""
from __future__ import annotations

import argparse

from labkit.labs import serialization as ser


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1.5 s budget instead of 10 s")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds")
    args = parser.parse_args(argv)
    budget = 1.5 if args.quick else 10.0
    repeats = args.repeats or (5 if args.quick else 9)
    rows = ser.size_and_speed(repeats=repeats, budget_s=budget)
    print(f"  medians of {repeats} interleaved rounds; ratios vs stdlib JSON on the same fixture;"
          f" time ratios within {ser.MARGIN:g}x are not claimed")
    print(f"    {'fixture':<11} {'codec':<10} {'bytes':>9} {'gzip':>8} {'x JSON':>7} "
          f"{'enc+dec µs':>11} {'x JSON':>7}  claim")
    for r in rows:
        if r["error"]:
            print(f"    {r['fixture']:<11} {r['codec']:<10} {'-':>9}   (cannot carry this fixture: "
                  f"{r['error'][:50]})")
            continue
        total = r["encode_us"] + r["decode_us"]
        print(f"    {r['fixture']:<11} {r['codec']:<10} {r['raw_bytes']:>9} {r['gzip_bytes']:>8} "
              f"{r['bytes_vs_json']:>7.2f} {total:>11.1f} {r['time_vs_json']:>7.2f}  "
              f"{r['speed_claim']}"
              + ("; input: JSON strings" if r["input"] == "strings" else "")
              + (f"; {r['samples']} sample(s)" if r["samples"] < repeats else ""))
    return rows


if __name__ == "__main__":
    main()
