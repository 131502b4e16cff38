"""Print every benchmark figure the README quotes: ``make bench``.

Figures are ratios against baselines measured in the same run, never asserts: the machines
are shared and noisy. Pass --quick for shorter runs.
"""
from __future__ import annotations

import pathlib
import platform
import os
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import bench_faults  # noqa: E402
import bench_notebooks  # noqa: E402


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("\n[1] fault layer overhead (bench_faults.py)")
    bench_faults.main(["--requests", "1000", "--rounds", "5"] if quick else [])
    print("\n[2] notebook execution time (bench_notebooks.py)")
    bench_notebooks.main()
    sim = pathlib.Path(__file__).with_name("bench_sim.py")
    if sim.exists():
        import bench_sim
        print("\n[3] virtual-time simulator vs SimPy, and M/M/1 at rho = 0.8 (bench_sim.py)")
        bench_sim.main(["--quick"] if quick else [])
    import asyncio

    import bench_broker
    print("\n[4] embedded broker vs RabbitMQ through aio-pika (bench_broker.py)")
    asyncio.run(bench_broker.main(1000 if quick else 5000, 100 if quick else 300, 3))
    import bench_protocols
    print("\n[5] gRPC unary vs aiohttp JSON by payload size (bench_protocols.py)")
    bench_protocols.main(["--quick"] if quick else [])
    import bench_codecs
    print("\n[6] codecs: bytes and µs per encode + decode vs stdlib JSON (bench_codecs.py)")
    bench_codecs.main(["--quick"] if quick else [])
    import bench_pooling
    print("\n[7] pooled keep-alive session vs a new connection per request (bench_pooling.py)")
    bench_pooling.main(["--quick"] if quick else [])
    import bench_cache
    print("\n[8] single-flight: backend calls for 1,000 concurrent misses (bench_cache.py)")
    bench_cache.main(["--quick"] if quick else [])
    import bench_recorder
    print("\n[9] ns per record, percentile error, speed vs the tutorial's collector "
          "(bench_recorder.py)")
    bench_recorder.main(["--quick"] if quick else [])
    import bench_hedging
    print("\n[10] The Tail at Scale: p99/p99.9 with and without hedging vs the paper "
          "(bench_hedging.py)")
    bench_hedging.main(["--quick"] if quick else [])
    import bench_tracing
    print("\n[11] overhead per request traced vs untraced, labkit vs the OTel SDK "
          "(bench_tracing.py)")
    bench_tracing.main(["--quick"] if quick else [])


if __name__ == "__main__":
    main()
