"""Simulated requests per wall-clock second: labkit.sim versus the same model in SimPy.

Reference workload: Poisson arrivals at 1000/s for 100 virtual seconds into one service
(20 workers, queue of 100, lognormal latency p50 10 ms / p99 60 ms, 10% errors); each client
calls through a circuit breaker with a 50 ms timeout, up to 3 attempts with full-jitter
backoff, the whole call bounded by max_total_s (a running attempt is cut when it runs out).
Both models share labkit's pure pattern logic (CircuitBreaker, FullJitter) and the
same seeded random streams, so with continuous random times they make the same decisions:
the printed outcome counts double as a cross-check that the two models are the same model.

Then the chapter 06 figure: M/M/1 at utilisation 0.8 (mean response 5·S by theory), the
simulated mean with its 95 % interval from 20 batch means, over enough customers for ±3 %
(`labkit.sim.formulas.mm1_customers_needed`: about 384,000; 1,000,000 are simulated).

Run:  .venv/bin/python benchmarks/bench_sim.py [--quick] [--repeat N] [--mm1-customers N]
Prints rates and the ratio labkit/SimPy, then the M/M/1 figure; no asserts.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit import sim  # noqa: E402
from labkit._core import seeding  # noqa: E402
from labkit.labs import queueing  # noqa: E402
from labkit.sim import formulas  # noqa: E402
from labkit.patterns.backoff import FullJitter  # noqa: E402
from labkit.patterns.breaker import CircuitBreaker  # noqa: E402
from labkit.patterns.errors import BreakerOpen, ServiceError  # noqa: E402
from labkit.patterns.retry import Retry  # noqa: E402

RATE = 1000.0
WORKERS, QUEUE = 20, 100
LATENCY = sim.LogNormal.from_p50_p99(0.010, 0.060)
ERROR_RATE = 0.10
TIMEOUT_S = 0.050
ATTEMPTS, MAX_TOTAL_S = 3, 1.0
BACKOFF = FullJitter(base=0.010, cap=1.0)
SEED = 7


def make_breaker():
    return CircuitBreaker(window_size=100, failure_rate_threshold=50, minimum_number_of_calls=100,
                          wait_duration_in_open_s=5.0, permitted_calls_in_half_open=10, name="bench")


# -- labkit: the real API (Retry around CircuitBreaker.call around SimService.call) --------

def run_labkit(duration_s: float) -> dict:
    async def main():
        svc = sim.SimService("api", workers=WORKERS, queue_limit=QUEUE, latency=LATENCY,
                             error_rate=ERROR_RATE, record=False)
        breaker = make_breaker()
        policy = Retry(max_attempts=ATTEMPTS, max_total_s=MAX_TOTAL_S, backoff=BACKOFF,
                       name="bench", seed=SEED)

        async def client():
            return await policy.call(breaker.call, svc.call, TIMEOUT_S)

        results = await sim.poisson_arrivals(RATE, duration_s, client)
        ok = sum(1 for r in results if not isinstance(r, BaseException))
        return {"requests": len(results), "ok": ok, "attempts": svc.arrived,
                "rejected_by_breaker": breaker.calls_rejected, "timeouts": svc.timed_out}

    return sim.run(main, seed=SEED)


# -- SimPy: the same model written the SimPy way -------------------------------------------

def run_simpy(duration_s: float) -> dict:
    import simpy

    env = simpy.Environment()
    workers = simpy.Resource(env, capacity=WORKERS)
    r_arr = seeding.rng("sim:arrivals", SEED)
    r_svc = seeding.rng("sim:service:api", SEED)
    r_retry = seeding.rng("retry:bench", SEED)
    draw_latency = LATENCY.sampler(r_svc)
    breaker = make_breaker()
    stats = {"requests": 0, "ok": 0, "attempts": 0, "rejected_by_breaker": 0, "timeouts": 0}
    end = duration_s

    def server(done):
        with workers.request() as req:
            yield req
            yield env.timeout(draw_latency())
            failed = r_svc.random() < ERROR_RATE
        if not done.triggered:
            done.succeed(failed)

    def attempt(deadline):
        """One call: True ok, else an exception instance (like SimService.call).

        Like labkit's Retry, the attempt also races the rest of the total budget
        (max_total_s), so both models pay for one total-time timer per attempt."""
        stats["attempts"] += 1
        if len(workers.queue) >= QUEUE and workers.count >= WORKERS:
            return ServiceError.from_status(503)
        done = env.event()
        env.process(server(done))
        timeout = env.timeout(TIMEOUT_S)
        total = env.timeout(max(0.0, deadline - env.now))
        yield done | timeout | total
        if done.triggered:
            return ServiceError.from_status(500) if done.value else True
        stats["timeouts"] += 1
        done.succeed(None)  # the caller has gone; the server's reply is dropped
        return ServiceError.from_status(504)

    def client():
        stats["requests"] += 1
        start = env.now
        deadline = start + MAX_TOTAL_S
        n, prev = 0, None
        while True:
            n += 1
            try:
                ticket = breaker.acquire(env.now)
            except BreakerOpen:
                return  # not retryable: give up
            outcome = yield env.process(attempt(deadline))
            if outcome is True:
                breaker.record_success(ticket, env.now)
                stats["ok"] += 1
                return
            breaker.record_failure(ticket, env.now)
            if n >= ATTEMPTS:
                return
            wait = BACKOFF.delay(n, r_retry, prev)
            prev = wait
            if env.now + wait >= deadline:
                return
            yield env.timeout(wait)

    def arrivals():
        while True:
            gap = r_arr.expovariate(RATE)
            if env.now + gap >= end:
                return
            yield env.timeout(gap)
            env.process(client())

    env.process(arrivals())
    env.run()
    stats["rejected_by_breaker"] = breaker.calls_rejected
    return stats


def timed(fn, duration_s, repeat):
    """Best wall time and best CPU time of `repeat` runs (CPU time is steadier on a busy host)."""
    wall = cpu = float("inf")
    out = None
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(duration_s)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def mm1_figure(customers: int, rho: float = 0.8, seed: int = SEED) -> None:
    """M/M/1 at `rho`: measured mean response against S/(1 - rho), with the batch-means CI."""
    need = formulas.mm1_customers_needed(rho, rel_half_width=0.03)
    iid = formulas.iid_customers_needed(rel_half_width=0.03)
    t0, c0 = time.perf_counter(), time.process_time()
    r = queueing.simulate("M/M/1", utilisation=rho, customers=customers, seed=seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = r.service_mean_s
    print(f"M/M/1 at rho = {rho}: theory {r.formula_mean_s / s:.3f} S mean, "
          f"{r.formula_p99_s / s:.2f} S p99; customers for +/-3 % at 95 %: {need:,} "
          f"(independent samples would need {iid:,})")
    print(f"  simulated {r.customers:,} customers (+{r.warmup_customers:,} warm-up) in "
          f"{wall:.1f} s wall ({cpu:.1f} s CPU): mean {r.mean_s / s:.3f} S +/- {r.mean_half_width_s / s:.3f} "
          f"(95 % CI, {r.batches} batch means; +/-{r.mean_half_width_s / r.mean_s:.1%}), "
          f"error {r.rel_error:+.2%}, within +/-3 %: {abs(r.rel_error) <= 0.03}, "
          f"theory inside the CI: {r.mean_within_ci}")
    print(f"  p99 {r.p99_s / s:.2f} S +/- {r.p99_half_width_s / s:.2f} (theory "
          f"{r.formula_p99_s / s:.2f}); waited {r.waited_share:.4f} +/- "
          f"{r.waited_half_width:.4f} (theory {r.formula_waited_share:.4f})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 virtual seconds instead of 100")
    ap.add_argument("--repeat", type=int, default=3, help="runs per engine; the best is kept")
    ap.add_argument("--mm1-customers", type=int, default=None,
                    help="customers for the M/M/1 figure (default 1,000,000; --quick 200,000)")
    args = ap.parse_args(argv)
    duration = 10.0 if args.quick else 100.0
    print(f"workload: Poisson {RATE:.0f}/s for {duration:.0f} s virtual, lognormal p50 10 ms / "
          f"p99 60 ms, {ERROR_RATE:.0%} errors, {TIMEOUT_S * 1000:.0f} ms timeout, "
          f"{ATTEMPTS} attempts full jitter, breaker; best of {args.repeat}")
    w_lab, c_lab, s_lab = timed(run_labkit, duration, args.repeat)
    w_spy, c_spy, s_spy = timed(run_simpy, duration, args.repeat)
    n_lab, n_spy = s_lab["requests"], s_spy["requests"]
    print(f"labkit.sim : {n_lab / w_lab:10,.0f} requests per wall s ({w_lab:.2f} s), "
          f"{n_lab / c_lab:10,.0f} per CPU s ({c_lab:.2f} s)")
    print(f"SimPy      : {n_spy / w_spy:10,.0f} requests per wall s ({w_spy:.2f} s), "
          f"{n_spy / c_spy:10,.0f} per CPU s ({c_spy:.2f} s)")
    print(f"ratio labkit/SimPy: {(n_lab / w_lab) / (n_spy / w_spy):.2f} (wall), "
          f"{(n_lab / c_lab) / (n_spy / c_spy):.2f} (CPU)")
    print(f"outcomes labkit: {s_lab}")
    print(f"outcomes SimPy : {s_spy}")
    print(f"same outcomes in both models: {s_lab == s_spy}")
    mm1_figure(args.mm1_customers or (200_000 if args.quick else 1_000_000))


if __name__ == "__main__":
    main()
