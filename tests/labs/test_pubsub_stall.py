"""The pub/sub stall lab (chapter 02): with the tutorial's manager the publisher moves at the
slow subscriber's pace and the fast ones wait for it, its QueueFull branch never runs; PubSub
keeps the publisher on time (drop-oldest) or bounded by block_timeout_s (block)."""
import asyncio

import pytest

from labkit import sim
from labkit.labs.pubsub_stall import TutorialPubSub, stall_chart, stall_lab


@pytest.fixture(scope="module")
def result():
    return asyncio.run(stall_lab())


def test_the_tutorial_publisher_moves_at_the_slow_subscribers_pace(result):
    p, r = result["params"], result["runs"]["tutorial"]
    assert r["publish_p50_ms"] == r["publish_max_ms"] == p["slow_every_s"] * 1000   # 50 ms
    # 200 events meant to take 2 s took about 200 x 50 ms
    assert r["intended_end_s"] == 2.0 and r["publisher_end_s"] > 4 * r["intended_end_s"]
    # every fast reader waits for the slow one: far from all events by the intended end
    assert max(r["fast_received_by_intended_end"]) < p["events"] / 3
    assert r["fast_received"] == [p["events"]] * (p["subscribers"] - p["slow"])
    assert r["fast_lag_max_ms"] > 1000
    assert r["slow_dropped"] == [0] and r["queue_full_branch_ran"] == 0


def test_drop_oldest_keeps_the_publisher_and_fast_readers_on_time(result):
    p, r = result["params"], result["runs"]["drop-oldest"]
    assert r["publish_max_ms"] == 0.0
    assert r["fast_received_by_intended_end"] == [p["events"]] * (p["subscribers"] - p["slow"])
    assert r["fast_lag_max_ms"] == 0.0
    # the slow reader pays: it got what it had time for, and missed the rest
    assert r["slow_dropped"][0] > p["events"] / 2
    assert r["slow_received"][0] + r["slow_dropped"][0] == p["events"]


def test_block_bounds_each_publish_by_block_timeout(result):
    p, r = result["params"], result["runs"]["block"]
    assert r["publish_max_ms"] == p["block_timeout_s"] * 1000 < p["slow_every_s"] * 1000
    assert r["slow_dropped"][0] > 0
    tutorial = result["runs"]["tutorial"]
    assert r["publisher_end_s"] < tutorial["publisher_end_s"]
    assert min(r["fast_received_by_intended_end"]) > max(
        tutorial["fast_received_by_intended_end"])


def test_same_seed_same_numbers():
    a = asyncio.run(stall_lab(events=40, seed=3))
    b = asyncio.run(stall_lab(events=40, seed=3))
    assert a == b


def test_with_no_slow_subscriber_the_tutorial_manager_does_not_stall():
    r = asyncio.run(stall_lab(slow=0, events=50))["runs"]["tutorial"]
    assert r["publish_max_ms"] == 0.0 and r["publisher_end_s"] <= r["intended_end_s"]


def test_a_subscriber_that_never_reads_stalls_the_tutorial_forever_and_queuefull_never_runs():
    manager = TutorialPubSub()

    async def main():
        await manager.subscribe_to_topic("orders", maxsize=3)     # nobody reads it
        other = await manager.subscribe_to_topic("orders", maxsize=100)
        for i in range(10):
            await manager.publish("orders", i)
        return other.qsize()
    with pytest.raises(sim.SimTimeout):
        sim.run(main, until_s=60)
    assert manager.queue_full_branch_ran == 0


def test_stall_chart_is_a_figure_with_both_panels(result):
    from matplotlib.figure import Figure
    fig = stall_chart(result)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    heights = [b.get_height() for b in fig.axes[0].patches]
    assert heights == [50.0, 0.0, 20.0, 50.0, 0.0, 20.0]      # p50 then max, per variant
    with pytest.raises(ValueError, match="what stall_lab"):
        stall_chart({"runs": {}})


@pytest.mark.parametrize("kwargs,match", [
    ({"subscribers": 0}, "subscribers must be a whole number"),
    ({"slow": 6}, "slow must be a whole number .* in 0..5"),
    ({"events": 0}, "events must be"),
    ({"maxsize": 0}, "maxsize must be"),
    ({"slow_every_s": -0.1}, "slow_every_s must be a finite number"),
    ({"block_timeout_s": float("nan")}, "block_timeout_s must be"),
    ({"seed": 1.5}, "seed must be a whole number"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        asyncio.run(stall_lab(**kwargs))
