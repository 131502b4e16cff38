"""Queueing lab (chapter 06): the virtual-time simulator reproduces M/M/1, M/M/c and M/D/1
within intervals that are honest (batch means) and narrow enough to catch a wrong model, and
Little's law holds on a real labkit service."""
import math

import pytest
from matplotlib.figure import Figure

import labkit
from labkit.labs import queueing as q
from labkit.sim import formulas


def _within(run):
    return abs(run.mean_s - run.formula_mean_s) <= run.mean_half_width_s


@pytest.mark.parametrize("model", q.MODELS)
def test_each_model_matches_its_formula_at_half_load(model):
    # rho = 0.5, 60,000 customers: the 99.9 % interval is about +/-5 % of the mean, so a wrong
    # formula (M/D/1 is 25 % below M/M/1 here, M/M/4 60 % below) could not pass.
    r = q.simulate(model, utilisation=0.5, customers=60_000, confidence=0.999, seed=3)
    assert _within(r), r.summary()
    assert r.mean_half_width_s < 0.06 * r.formula_mean_s, r.summary()
    # The share who found every worker busy is Erlang C (rho itself for one worker).
    assert abs(r.waited_share - r.formula_waited_share) <= r.waited_half_width, r.summary()
    assert r.waited_half_width < 0.03


def test_mm1_at_0_8_mean_and_p99():
    r = q.simulate("M/M/1", utilisation=0.8, customers=100_000, confidence=0.999, seed=5)
    assert r.formula_mean_s == pytest.approx(5 * r.service_mean_s)
    assert r.formula_p99_s == pytest.approx(math.log(100) * 5 * r.service_mean_s)
    assert _within(r), r.summary()
    assert abs(r.p99_s - r.formula_p99_s) <= r.p99_half_width_s, r.summary()
    assert r.mean_half_width_s < 0.20 * r.formula_mean_s     # expected ~12 %
    # Batch means against the naive interval: response times of M/M/1 are exponential (sd =
    # mean), so i.i.d. samples would give 3.29 sd/sqrt(n); queued customers are correlated
    # and the honest interval is about sqrt(90) ~ 9.5 times wider at rho = 0.8.
    naive = 3.29 * r.mean_s / math.sqrt(r.customers)
    assert r.mean_half_width_s > 5 * naive, (r.mean_half_width_s, naive)


def test_interval_width_follows_the_planning_formula():
    # mm1_customers_needed plans n for +/-15 % at 95 %; the measured interval should come out
    # about that wide (well inside a factor of two: the batch-means estimate itself varies).
    n = formulas.mm1_customers_needed(0.7, rel_half_width=0.15)
    r = q.simulate("M/M/1", utilisation=0.7, customers=n, seed=11)
    assert 0.07 < r.mean_half_width_s / r.formula_mean_s < 0.25, (n, r.summary())


def test_md1_and_mmc_run_with_the_right_distribution():
    # Same utilisation 0.8: M/D/1 waits half of M/M/1 (3 S), M/M/4 barely waits (1.75 S).
    d = q.simulate("M/D/1", utilisation=0.8, customers=40_000, seed=2)
    c = q.simulate("M/M/c", utilisation=0.8, workers=4, customers=40_000, seed=2)
    assert d.formula_mean_s == pytest.approx(3 * d.service_mean_s)
    assert d.formula_p99_s is None and c.formula_p99_s is None
    assert abs(d.mean_s / d.service_mean_s - 3.0) < 0.3
    assert abs(c.mean_s / c.service_mean_s - 1.746) < 0.15
    assert c.workers == 4 and d.workers == 1


def test_same_seed_same_numbers():
    a = q.simulate("M/M/1", utilisation=0.6, customers=2000, batches=10, seed=9)
    b = q.simulate("M/M/1", utilisation=0.6, customers=2000, batches=10, seed=9)
    assert a == b
    assert a != q.simulate("M/M/1", utilisation=0.6, customers=2000, batches=10, seed=10)


def test_sweep_sizes_runs_and_chart_draws():
    runs = q.sweep((0.3, 0.8), models=("M/M/1", "M/D/1"), min_customers=2000,
                   max_customers=5000, rel_half_width=0.2)
    assert [(r.model, r.utilisation) for r in runs] == [
        ("M/M/1", 0.3), ("M/D/1", 0.3), ("M/M/1", 0.8), ("M/D/1", 0.8)]
    # 0.3 needs fewer than the floor; 0.8 needs more than the cap (rounded down to batches).
    assert runs[0].customers == 2000 and runs[2].customers == 5000
    fig = q.latency_chart(runs)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) >= 3                           # two mean curves and the p99 curve
    assert len(ax.containers) == 3                      # error bars: two means and the p99
    assert "utilisation" in ax.get_xlabel()
    assert len(q.latency_chart(runs, p99_points=False).axes[0].containers) == 2
    with pytest.raises(ValueError, match="runs"):
        q.latency_chart([])


@pytest.mark.parametrize("kwargs,name", [
    ({"model": "M/M/2"}, "model"),
    ({"utilisation": 1.0}, "utilisation"),
    ({"utilisation": 0.0}, "utilisation"),
    ({"customers": 100}, "customers"),
    ({"batches": 3}, "batches"),
    ({"service_mean_s": 0}, "service_mean_s"),
    ({"model": "M/M/c", "workers": 0}, "workers"),
])
def test_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        q.simulate(**kwargs)


async def _little(**kwargs):
    svc = await labkit.start_service("users")
    svc.faults.set(latency_ms=40)
    try:
        return await q.littles_law(svc, **kwargs)
    finally:
        svc.faults.reset()
        await labkit.shutdown()


def test_littles_law_on_a_real_service(run):
    r = run(_little(rate_per_s=150, duration_s=1.0, seed=1), timeout_s=120)
    assert r["failed"] == 0 and r["skipped"] == 0 and r["requests"] > 50, r
    # Every request waited the injected 40 ms (W >= 40 ms), and about 150/s * 40 ms = 6 were
    # in flight. L comes from a sampled gauge, lambda from a count, W from stopwatches: three
    # different instruments, which agree within a generous 20 % on a busy machine.
    assert r["response_mean_s"] >= 0.040
    assert r["in_flight_mean"] > 2.0
    assert abs(r["gap"]) < 0.20, r
    assert r["lambda_times_w"] == pytest.approx(r["throughput_per_s"] * r["response_mean_s"])


def test_littles_law_bad_input(run):
    async def main():
        svc = await labkit.start_service("users")
        try:
            with pytest.raises(ValueError, match="rate_per_s"):
                await q.littles_law(svc, rate_per_s=0)
            with pytest.raises(ValueError, match="duration_s"):
                await q.littles_law(svc, duration_s=1000)
        finally:
            await labkit.shutdown()
    run(main())


def test_poisson_customers_counts_replies_and_failures():
    from labkit import sim
    from labkit.sim.queueing import poisson_customers

    async def main():
        # One worker, no queue, 10 % errors: a customer who finds the worker busy is rejected.
        svc = sim.SimService("tiny", workers=1, queue_limit=0, latency=sim.Exponential(1.0),
                             error_rate=0.1, record=False)
        seen = []
        failed = await poisson_customers(svc, 1.0, 2000, on_response=lambda r, w: seen.append(
            (r, w)))
        with pytest.raises(ValueError, match="customers"):
            await poisson_customers(svc, 1.0, 0, on_response=print)
        with pytest.raises(ValueError, match="on_response"):
            await poisson_customers(svc, 1.0, 5, on_response=None)
        return svc, seen, failed

    svc, seen, failed = sim.run(main, seed=4)
    assert len(seen) + failed == 2000 == svc.arrived
    assert failed == svc.rejected + (svc.completed - svc.delivered_ok)
    # Erlang's loss formula for one server: rejected share = rho / (1 + rho) = 1/2.
    assert abs(svc.rejected / 2000 - 0.5) < 4 * math.sqrt(0.25 / 2000)
    # Nobody queued (queue_limit=0): every answered customer started at once.
    assert not any(w for _, w in seen)
