"""PubSub with bounded subscriber queues (chapter 02): each overflow policy keeps exactly what
it promises, a slow subscriber holds the publisher at most block_timeout_s (virtual time) and
never delays the others, unsubscribe and bounds work, bad arguments are refused."""
import asyncio

import pytest

from labkit import sim
from labkit.patterns.pubsub import PubSub, PublishReport, SubscriptionClosed


def _drain(sub):
    out = []
    while sub.qsize():
        out.append(sub.get_nowait())
    return out


def test_drop_oldest_keeps_the_newest_n():
    ps = PubSub(maxsize=3, overflow="drop-oldest")
    sub = ps.subscribe("t")

    async def main():
        return [await ps.publish("t", i) for i in range(10)]
    reports = sim.run(main)
    assert _drain(sub) == [7, 8, 9]
    assert (sub.delivered, sub.dropped) == (10, 7)
    assert [r.outcomes[0][1] for r in reports] == ["delivered"] * 3 + ["dropped-oldest"] * 7
    assert all(r.delivered == 1 for r in reports)


def test_drop_newest_keeps_the_oldest_n():
    ps = PubSub(maxsize=3, overflow="drop-newest")
    sub = ps.subscribe("t")

    async def main():
        return [await ps.publish("t", i) for i in range(10)]
    reports = sim.run(main)
    assert _drain(sub) == [0, 1, 2]
    assert (sub.delivered, sub.dropped) == (3, 7)
    assert [r.outcomes[0][1] for r in reports] == ["delivered"] * 3 + ["dropped-newest"] * 7
    assert ps.counts["dropped-newest"] == 7 and ps.counts["published"] == 10


@pytest.mark.parametrize("taken_by", ["get", "get_nowait"])
def test_block_waits_for_room_then_delivers(taken_by):
    ps = PubSub(maxsize=1, overflow="block", block_timeout_s=0.5)
    sub = ps.subscribe("t")

    async def reader():
        await asyncio.sleep(0.2)
        return await sub.get(timeout_s=1) if taken_by == "get" else sub.get_nowait()

    async def main():
        await ps.publish("t", "a")
        task = asyncio.create_task(reader())
        report = await ps.publish("t", "b")       # full: waits until the reader takes "a"
        return report, await task
    report, first = sim.run(main)
    assert first == "a" and report.outcomes[0][1] == "delivered"
    assert report.waited_s == pytest.approx(0.2)
    assert _drain(sub) == ["b"] and sub.dropped == 0


def test_block_gives_up_after_block_timeout_and_counts_it_dropped():
    ps = PubSub(maxsize=2, overflow="block", block_timeout_s=0.1)
    sub = ps.subscribe("t")

    async def main():
        loop = asyncio.get_running_loop()
        reports = [await ps.publish("t", i) for i in range(5)]
        return reports, loop.time()
    reports, t = sim.run(main, until_s=60)
    assert [r.outcomes[0][1] for r in reports] == ["delivered"] * 2 + ["timed-out"] * 3
    assert [r.waited_s for r in reports] == pytest.approx([0.0, 0.0, 0.1, 0.1, 0.1])
    assert t == pytest.approx(0.3)
    assert _drain(sub) == [0, 1] and (sub.delivered, sub.dropped) == (2, 3)


def test_full_block_subscribers_are_waited_for_concurrently_not_one_after_another():
    ps = PubSub(maxsize=1, overflow="block", block_timeout_s=0.1)
    subs = [ps.subscribe("t") for _ in range(5)]

    async def main():
        await ps.publish("t", 0)
        return await ps.publish("t", 1)
    report = sim.run(main, until_s=60)
    assert report.waited_s == pytest.approx(0.1)          # not 5 x 0.1
    assert report.counts == {"timed-out": 5}
    assert all(s.dropped == 1 for s in subs)


def test_a_slow_subscriber_never_delays_the_publisher_beyond_block_timeout_nor_the_others():
    """The lesson of the tutorial's PubSubManager, fixed: the fast subscribers get every event
    as it is published, and each publish waits at most block_timeout_s for the slow one."""
    ps = PubSub(maxsize=5, overflow="block", block_timeout_s=0.02)
    fast = [ps.subscribe("orders") for _ in range(3)]
    slow = ps.subscribe("orders")
    lags = {i: [] for i in range(3)}

    async def fast_reader(i, sub):
        async for sent_at in sub:
            lags[i].append(asyncio.get_running_loop().time() - sent_at)

    async def slow_reader():
        async for _ in slow:
            await asyncio.sleep(1.0)

    async def main():
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(fast_reader(i, s)) for i, s in enumerate(fast)]
        tasks.append(asyncio.create_task(slow_reader()))
        waits = []
        for _ in range(100):
            report = await ps.publish("orders", loop.time())
            waits.append(report.waited_s)
            await asyncio.sleep(0.01)
        ps.close()
        await asyncio.wait(tasks[:3], timeout=1)
        tasks[3].cancel()
        return waits
    waits = sim.run(main, until_s=600)
    assert max(waits) == pytest.approx(0.02)
    assert all(len(lags[i]) == 100 and max(lags[i]) == 0.0 for i in range(3))
    assert all(s.dropped == 0 for s in fast)
    assert slow.dropped > 80 and slow.delivered + slow.dropped == 100


def test_wildcard_subscriber_gets_every_topic():
    ps = PubSub(maxsize=10)
    everything = ps.subscribe("*")
    orders = ps.subscribe("orders")

    async def main():
        await ps.publish("orders", "o1")
        await ps.publish("users", "u1")
    sim.run(main)
    assert _drain(everything) == ["o1", "u1"] and _drain(orders) == ["o1"]


def test_close_unsubscribes_keeps_queued_events_and_ends_iteration():
    ps = PubSub(maxsize=10)
    sub = ps.subscribe("t")
    other = ps.subscribe("t")

    async def main():
        await ps.publish("t", 1)
        sub.close()
        report = await ps.publish("t", 2)
        got = [e async for e in sub]            # the queued event, then the end
        with pytest.raises(SubscriptionClosed):
            await sub.get(timeout_s=1)
        return report, got
    report, got = sim.run(main, until_s=60)
    assert got == [1]
    assert [name for name, _ in report.outcomes] == [other.name]
    assert ps.subscriber_count("t") == 1
    other.close()
    assert ps.subscriber_count() == 0 and ps.summary()["subscribers"] == {}


def test_close_wakes_a_waiting_reader_and_a_blocked_publisher():
    ps = PubSub(maxsize=1, overflow="block", block_timeout_s=10.0)
    sub = ps.subscribe("t")
    reader_sub = ps.subscribe("r")

    async def main():
        loop = asyncio.get_running_loop()
        await ps.publish("t", 0)
        publish = asyncio.create_task(ps.publish("t", 1))
        read = asyncio.create_task(reader_sub.get(timeout_s=None))
        await asyncio.sleep(1.0)
        sub.close()
        reader_sub.close()
        report = await publish
        with pytest.raises(SubscriptionClosed):
            await read
        return report, loop.time()
    report, t = sim.run(main, until_s=60)
    assert report.outcomes[0][1] == "closed" and t == 1.0


def test_get_times_out_with_the_subscription_named():
    ps = PubSub()
    sub = ps.subscribe("t")

    async def main():
        await sub.get(timeout_s=0.5)
    with pytest.raises(TimeoutError, match=r"no event on t#1 within timeout_s=0.5"):
        sim.run(main, until_s=60)


def test_subscriptions_are_bounded():
    ps = PubSub(max_subscribers=2)
    ps.subscribe("a")
    s = ps.subscribe("b")
    with pytest.raises(ValueError, match="already has 2 subscriptions"):
        ps.subscribe("c")
    s.close()
    ps.subscribe("c")


def test_per_subscription_policy_overrides_the_default():
    ps = PubSub(maxsize=2, overflow="drop-oldest")
    newest = ps.subscribe("t")
    oldest = ps.subscribe("t", maxsize=1, overflow="drop-newest")

    async def main():
        return [await ps.publish("t", i) for i in range(4)]
    reports = sim.run(main)
    assert _drain(newest) == [2, 3] and _drain(oldest) == [0]
    assert isinstance(reports[-1], PublishReport)
    assert reports[-1].counts == {"dropped-oldest": 1, "dropped-newest": 1}


@pytest.mark.parametrize("kwargs,match", [
    ({"maxsize": 0}, "maxsize must be a whole number"),
    ({"overflow": "drop"}, "overflow must be one of"),
    ({"block_timeout_s": -1}, "block_timeout_s must be a finite number >= 0"),
    ({"max_subscribers": True}, "max_subscribers must be a whole number"),
])
def test_bad_pubsub_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PubSub(**kwargs)


def test_bad_subscribe_publish_and_get_arguments():
    ps = PubSub()
    with pytest.raises(ValueError, match="topic must be a non-empty str"):
        ps.subscribe("")
    with pytest.raises(ValueError, match="maxsize must be a whole number"):
        ps.subscribe("t", maxsize=-1)
    with pytest.raises(ValueError, match="overflow must be one of"):
        ps.subscribe("t", overflow="oldest")
    sub = ps.subscribe("t")

    async def publish_all():
        await ps.publish("*", 1)
    with pytest.raises(ValueError, match=r"topic must be .*only to subscribe"):
        sim.run(publish_all)

    async def bad_get():
        await sub.get(timeout_s=-1)
    with pytest.raises(ValueError, match="timeout_s must be a finite number >= 0"):
        sim.run(bad_get)
