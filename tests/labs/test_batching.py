"""The batching lab (labkit/labs/batching.py): in virtual time, batching cuts backend calls and
lifts throughput past an unbatched backend's capacity, at a latency cost set by max_wait;
runs repeat exactly; the real batch-get run reads every record with far fewer requests; the
tutorial's batcher never sends a partial batch on its own."""
import pytest
from matplotlib.figure import Figure

import labkit
from labkit.labs import batching
from labkit.ui.perf_charts import batching_chart, pooling_chart


def test_no_batching_is_one_call_per_item():
    r = batching.simulate_batching(max_batch=1, max_wait_s=0.01, items=200, rate_per_s=100.0)
    assert r["calls"] == 200 and r["mean_batch"] == 1.0 and r["served"] == 200


def test_batches_respect_max_batch_and_cut_calls():
    r = batching.simulate_batching(max_batch=8, max_wait_s=0.005, items=400, rate_per_s=2000.0)
    assert r["served"] == 400 and r["calls"] < 400 / 3
    assert 3 < r["mean_batch"] <= 8


def test_batching_lifts_throughput_past_the_unbatched_capacity():
    # 4 calls at a time of ~5 ms each: about 790 items/s without batching, 2000/s offered
    alone = batching.simulate_batching(max_batch=1, max_wait_s=0.0, items=600)
    batched = batching.simulate_batching(max_batch=16, max_wait_s=0.005, items=600)
    assert alone["throughput_per_s"] < 0.5 * batched["throughput_per_s"]
    assert alone["mean_ms"] > 10 * batched["mean_ms"]          # the queue grows without it


def test_at_low_load_max_wait_is_added_latency():
    rows = batching.batching_sweep(batch_sizes=(64,), max_waits_s=(0.0, 0.005, 0.010),
                                   rate_per_s=200.0, items=300)
    means = [r["mean_ms"] for r in rows]
    assert means[0] < means[1] < means[2]
    assert means[2] <= rows[0]["unbatched_ms"] + 10.0 + 1e-6     # never more than max_wait extra


def test_runs_are_repeatable_and_seeded():
    a = batching.simulate_batching(max_batch=4, max_wait_s=0.002, items=200, seed=3)
    assert a == batching.simulate_batching(max_batch=4, max_wait_s=0.002, items=200, seed=3)
    assert a != batching.simulate_batching(max_batch=4, max_wait_s=0.002, items=200, seed=4)


def test_a_full_backend_queue_refuses_items():
    r = batching.simulate_batching(max_batch=1, max_wait_s=0.0, items=600, max_queue=50)
    assert r["refused"] > 0 and r["served"] + r["refused"] == 600


def test_tutorial_batcher_never_sends_a_partial_batch_by_itself():
    out = batching.tutorial_partial_batch_lesson(requests=3, batch_size=5, timeout_s=2.0)
    without, with_loop, fixed = out.values()
    assert without.startswith("TimeoutError") and "3 requests never sent" in without
    assert with_loop.startswith("answered at 55 ms, 55 ms after")
    assert fixed.startswith("answered at 55 ms, 55 ms after")


@pytest.mark.parametrize("first_at_s, tutorial_wait_ms", [(0.030, 25), (0.049, 6), (0.060, 45)])
def test_the_tutorials_loop_sends_on_its_own_cycle_the_batcher_from_the_first_item(
        first_at_s, tutorial_wait_ms):
    # loop cycle 50 ms (+ 5 ms lookup inside it), lookup 5 ms; labkit's Batcher: 50 + 5 ms
    out = batching.tutorial_partial_batch_lesson(first_at_s=first_at_s, timeout_s=2.0)
    without, with_loop, fixed = out.values()
    assert without.startswith("TimeoutError")
    assert f", {tutorial_wait_ms} ms after the requests arrived" in with_loop
    assert ", 55 ms after the requests arrived" in fixed and "['user 0', 'user 1', 'user 2']" in fixed


def test_the_lesson_checks_its_arguments():
    with pytest.raises(ValueError, match="first_at_s"):
        batching.tutorial_partial_batch_lesson(first_at_s=-0.01)


def test_real_batch_get_reads_everything_with_few_requests(run):
    async def main():
        users = await labkit.start_service("users")
        try:
            users.faults.set(jitter_ms=0.0)
            return await batching.batch_get_run(users, lookups=120, concurrency=12,
                                                max_batch=30, latency_ms=2.0)
        finally:
            await labkit.shutdown()
    single, batched = run(main())
    assert single["found"] == batched["found"] == 120
    assert single["server_requests"] == 120
    assert batched["server_requests"] == batched["batches"] <= 120 / 4


def test_charts_are_figures_drawn_from_the_rows():
    rows = batching.batching_sweep(batch_sizes=(1, 8), max_waits_s=(0.0, 0.005), items=100)
    fig = batching_chart(rows)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 3                     # two max_waits + the offered load
    prow = {"mode": "pool of 3", "requests_per_s": 10.0, "connections": 3,
            "queue_wait_mean_ms": 1.5}
    assert len(pooling_chart([prow, dict(prow, mode="shared session")]).axes) == 3


@pytest.mark.parametrize("kwargs, needle", [({"max_batch": 0}, "max_batch"),
                                            ({"max_wait_s": -1.0}, "max_wait_s"),
                                            ({"rate_per_s": 0.0}, "rate_per_s"),
                                            ({"items": 0}, "items")])
def test_bad_arguments(kwargs, needle):
    args = {"max_batch": 4, "max_wait_s": 0.01, **kwargs}
    with pytest.raises(ValueError, match=needle):
        batching.simulate_batching(**args)
