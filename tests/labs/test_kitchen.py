"""The live kitchen (labkit/labs/kitchen.py), chapter 02: knobs act live, crashes redeliver,
idempotence removes duplicates, re-opened consumers lose nothing, a restart drops only
non-persistent messages, and stop ends every task. Real time, short runs; counts, not timings."""
import asyncio

import pytest

from labkit import messaging
from labkit.labs.kitchen import Kitchen
from async_tools import other_tasks, until
from messaging.conftest import URL, backend  # noqa: F401 - the embedded/RabbitMQ fixture


def _left():
    """Tasks still alive besides this test's (the `run` fixture's wait_for wraps it)."""
    return {t for t in other_tasks() if t.get_coro().__qualname__ != "wait_for"}


async def _embedded(**kw):
    broker = messaging.Broker()
    conn = await messaging.connect(broker=broker)
    kw.setdefault("seed", 7)
    return await Kitchen.start(conn, **kw), conn


def test_crashes_redeliver_and_idempotence_removes_the_duplicates(run):
    async def main():
        out = {}
        for idem in (False, True):
            k, conn = await _embedded(rate_per_s=100, processing_ms=10, idempotent=idem)
            k.set(crash_rate=0.3)
            assert k.faults.crash_rate == 0.3                   # the knob reached the broker
            await asyncio.sleep(0.8)
            assert await k.drain(timeout_s=10)
            out[idem] = k.verdict(), k.stats()
            await k.stop()
            await conn.close()
        return out

    out = run(main())
    for idem, (verdict, stats) in out.items():
        assert verdict["ok"] and verdict["lost"] == 0, verdict["verdict"]
        assert verdict["redelivered"] > 0 and stats["redelivered"] == verdict["redelivered"]
        assert verdict["published"] == stats["published"] > 20
    assert out[False][0]["duplicates"] > 0 and out[False][1]["duplicates"] > 0
    assert out[True][0]["duplicates"] == 0 == out[True][1]["duplicates"]
    assert not out[False][0]["dead_lettered"] or "delivery_limit" in out[False][0]["dead_lettered"]


def test_consumers_3_to_1_to_3_loses_nothing(run):
    async def main():
        k, conn = await _embedded(rate_per_s=100, processing_ms=30, prefetch=5)
        await until(lambda: k.stats()["consumers"] == 3, 5)
        await asyncio.sleep(0.3)
        k.set(consumers=1)
        await until(lambda: k.stats()["consumers"] == 1, 5)
        one = k.stats()["consumers"], k.broker.queue_info(k.queue_name)["consumers"]
        stayed = k._slots[0].channel
        await asyncio.sleep(0.3)
        k.set(consumers=3)
        await until(lambda: k.stats()["consumers"] == 3, 5)
        assert k._slots[0].channel is stayed      # new cooks join; the first one keeps cooking
        await asyncio.sleep(0.3)
        drained = await k.drain(timeout_s=10)
        result = k.verdict()
        await k.stop()
        await conn.close()
        return one, drained, result, k.reopens

    one, drained, result, reopens = run(main())
    assert one == (1, 1) and drained and reopens == 0
    assert result["ok"] and result["lost"] == 0 and result["published"] > 50
    assert result["acked"] + sum(result["dead_lettered"].values()) >= result["published"]
    assert result["redelivered"] > 0          # in-flight orders came back, counted


def test_restart_drops_non_persistent_and_keeps_persistent(run):
    async def main():
        k, conn = await _embedded(rate_per_s=200, consumers=0)
        await until(lambda: k.stats()["ready"] >= 20, 5)
        ch = await conn.channel()
        for i in range(5):
            await ch.default_exchange.publish(messaging.Message(b"x", message_id=f"np-{i}"),
                                              routing_key=k.queue_name)
        before = k.broker.queue_info(k.queue_name)["ready"]
        k.restart_broker()
        after = k.broker.queue_info(k.queue_name)["ready"]
        restarts = k.faults.restarts
        k.set(consumers=3)
        assert await k.drain(timeout_s=10)
        result = k.verdict()
        dropped = sorted(e.message_id for e in k.journal.events if e.kind == "dropped")
        await k.stop()
        return before, after, restarts, result, dropped

    before, after, restarts, result, dropped = run(main())
    assert restarts == 1 and after == before - 5 >= 20
    assert dropped == [f"np-{i}" for i in range(5)]            # only the non-persistent ones
    assert result["dropped"] == {"restart": 5}
    assert result["ok"] and result["lost"] == 0 and result["published"] >= 20   # orders kept


def test_cut_off_and_stop_end_every_task_and_listener(run):
    async def main():
        k, conn = await _embedded(rate_per_s=100, processing_ms=20)
        await until(lambda: k.stats()["consumers"] == 3, 5)
        listeners = len(k.journal._listeners)
        k.cut_off(1)
        cut = k.stats()["consumers"]
        await until(lambda: k.stats()["consumers"] == 3, 5)      # it reconnects
        await asyncio.sleep(0.2)
        await k.stop()
        await k.stop()                                           # idempotent
        left = _left()
        return listeners, cut, len(k.journal._listeners), k.broker.faults, left, k.running

    listeners, cut, after, faults, left, running = run(main())
    assert listeners == 1 and cut == 2 and after == 0 and faults is None
    assert left == set() and not running


def test_rerun_on_the_same_queue_stops_the_old_kitchen(run):
    async def main():
        broker = messaging.Broker()
        conn = await messaging.connect(broker=broker)
        first = await Kitchen.start(conn, rate_per_s=50)
        second = await Kitchen.start(conn, rate_per_s=50)
        state = first.running, second.running
        await second.stop()
        return state, _left()

    state, left = run(main())
    assert state == (False, True) and left == set()


def test_set_and_reset_and_listeners(run):
    async def main():
        k, conn = await _embedded(rate_per_s=10)
        seen = []
        k.on_change(seen.append)
        assert k.set(rate_per_s=40.0, prefetch=10) == {"rate_per_s": 40.0}   # only changes
        k.set(processing_ms=5, crash_rate=0.1, publish_latency_ms=30, processing_dist="long_tail")
        mid = dict(k.faults.summary(), processing_ms=k.knobs["processing_ms"],
                   dist=k.knobs["processing_dist"])
        k.reset()
        knobs, latency = dict(k.knobs), k.faults.publish_latency_ms
        await k.stop()
        return seen, mid, knobs, latency

    seen, mid, knobs, latency = run(main())
    assert seen[0] == {"rate_per_s": 40.0} and seen[-1]["rate_per_s"] == 10.0
    assert mid["processing_ms"] == 5 and mid["crash_rate"] == 0.1
    assert mid["publish_latency_ms"] == 30 and mid["dist"] == "long_tail"
    assert knobs == {"rate_per_s": 10.0, "consumers": 3, "prefetch": 10, "processing_ms": 50.0,
                     "crash_rate": 0.0, "idempotent": False, "processing_dist": "fixed",
                     "publish_latency_ms": 0.0}
    assert latency == 0.0                                   # reset reached the broker too


@pytest.mark.parametrize("change, message", [
    ({"consumers": -1}, r"consumers must be a whole number \(int\) in 0..20"),
    ({"prefetch": 2.0}, "prefetch must be a whole number"),
    ({"crash_rate": 1.5}, r"crash_rate must be a finite number in \[0, 1\]"),
    ({"idempotent": 1}, "idempotent must be True or False"),
    ({"processing_dist": "gamma"}, r"processing_dist must be one of \['fixed', 'exponential'"),
    ({"publish_latency_ms": 1500}, r"publish_latency_ms must be a finite number in \[0, 1000\]"),
    ({"spice": 3}, "spice is not a kitchen knob"),
])
def test_bad_knobs_name_the_argument(run, change, message):
    async def main():
        k, conn = await _embedded(rate_per_s=5)
        try:
            with pytest.raises(ValueError, match=message):
                k.set(**change)
            if "spice" not in change:
                with pytest.raises(ValueError, match=message):
                    await Kitchen.start(conn, queue="other", **change)
            with pytest.raises(ValueError, match=r"i must be the number of a connected"):
                k.cut_off(9)
            with pytest.raises(RuntimeError, match="drain"):
                k.verdict()
        finally:
            await k.stop()
        return _left()

    assert run(main()) == set()


def test_the_same_kitchen_on_both_backends(run, backend):  # noqa: F811
    async def main():
        import uuid
        conn = (await messaging.connect(URL) if backend == "rabbitmq"
                else await messaging.connect(broker=messaging.Broker()))
        queue = f"t-{uuid.uuid4().hex[:10]}-tickets"
        k = await Kitchen.start(conn, queue=queue, rate_per_s=60, processing_ms=10,
                                crash_rate=0.3, idempotent=True, seed=3)
        try:
            await asyncio.sleep(1.0)
            drained = await k.drain(timeout_s=15)
            result = k.verdict()
            if backend == "rabbitmq":
                with pytest.raises(ValueError, match="needs the embedded broker"):
                    k.restart_broker()
        finally:
            await k.stop()
            if backend == "rabbitmq":
                ch = await conn.channel()
                for name in (queue, f"{queue}.dlq"):
                    await ch.queue_delete(name)
                for name in (f"{queue}.orders", f"{queue}.dlx"):
                    await ch.exchange_delete(name)
            await conn.close()
        return drained, result

    drained, result = run(main())
    assert drained and result["ok"], result["verdict"]
    assert result["redelivered"] > 0 and result["duplicates"] == 0 and result["lost"] == 0


def test_a_cook_cooks_one_dish_at_a_time_whatever_its_prefetch(run):
    """Capacity is consumers / processing time: a prefetch of 10 is tickets in hand, not ten
    dishes on the stove (before the fix the handlers of one consumer ran concurrently)."""
    async def main():
        k, conn = await _embedded(rate_per_s=200, consumers=1, prefetch=10, processing_ms=100)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(0.6)
        acked, elapsed = k.journal.counts["acked"], loop.time() - t0
        unacked = k.stats()["unacked"]
        await k.stop()
        await conn.close()
        return acked, elapsed, unacked

    acked, elapsed, unacked = run(main())
    assert acked <= elapsed / 0.1 + 1          # one at a time: at most one dish per 100 ms
    assert unacked == 10                       # yet the window is full: ten tickets in hand


def test_publish_latency_caps_the_producers_rate(run, backend):  # noqa: F811
    """It publishes with confirms one at a time: with 100 ms per publish it cannot keep
    100 orders/s. Counts over a window (loop time), bounded above: load only lowers them."""
    async def main():
        import uuid
        conn = (await messaging.connect(URL) if backend == "rabbitmq"
                else await messaging.connect(broker=messaging.Broker()))
        queue = f"t-{uuid.uuid4().hex[:10]}-tickets"
        loop = asyncio.get_running_loop()
        k = await Kitchen.start(conn, queue=queue, rate_per_s=100, consumers=1, processing_ms=0,
                                seed=5)
        try:
            windows = []
            for latency_ms in (0, 100):
                k.set(publish_latency_ms=latency_ms)
                await asyncio.sleep(0.15)              # a publish in flight finishes
                n0, t0 = k.published, loop.time()
                await asyncio.sleep(0.8)
                windows.append((k.published - n0, loop.time() - t0))
        finally:
            await k.stop()
            if backend == "rabbitmq":
                ch = await conn.channel()
                for name in (queue, f"{queue}.dlq"):
                    await ch.queue_delete(name)
                for name in (f"{queue}.orders", f"{queue}.dlx"):
                    await ch.exchange_delete(name)
            await conn.close()
        return windows

    (fast, fast_s), (slow, slow_s) = run(main())
    assert fast >= 25, f"without latency only {fast} orders in {fast_s:.2f} s"
    assert slow <= slow_s / 0.1 + 1, f"{slow} orders in {slow_s:.2f} s at 100 ms per publish"
    assert slow < fast


def test_publish_latency_reaches_the_embedded_fault_model(run):
    async def main():
        k, conn = await _embedded(rate_per_s=5, publish_latency_ms=40)
        first = k.faults.publish_latency_ms
        k.set(publish_latency_ms=250)
        second = k.faults.publish_latency_ms
        await k.stop()
        await conn.close()
        return first, second

    assert run(main()) == (40.0, 250.0)


def _cook(dist, seed):
    """Orders wait on the rail, then one cook with a prefetch of 10 takes them."""
    async def main():
        k, conn = await _embedded(rate_per_s=300, consumers=0, prefetch=10, processing_ms=10,
                                  processing_dist=dist, seed=seed)
        assert await until(lambda: k.stats()["ready"] >= 20, 10)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k.set(consumers=1)
        assert await until(lambda: len(k.cook_times_ms) >= 12, 10)
        times, elapsed_ms = list(k.cook_times_ms), (loop.time() - t0) * 1000
        await k.stop()
        await conn.close()
        return times, elapsed_ms
    return main()


def test_processing_time_distribution_is_seeded_and_one_dish_at_a_time(run):
    expo, expo_ms = run(_cook("exponential", 11))
    again, _ = run(_cook("exponential", 11))
    other, _ = run(_cook("exponential", 12))
    fixed, _ = run(_cook("fixed", 11))
    n = min(len(expo), len(again), 12)
    assert max(expo) - min(expo) > 0 and len(set(expo)) > 5          # a spread
    assert expo[:n] == again[:n] and expo[:n] != other[:n]          # same seed, same draws
    assert set(fixed) == {10.0}
    # one cook: every dish but the one on the stove is finished, one after another
    assert sum(expo) - max(expo) <= expo_ms + 5


def test_long_tail_keeps_the_mean_and_has_a_heavy_tail():
    import random
    import statistics
    from labkit.labs.kitchen_cooks import processing
    from labkit.sim.queueing import Exponential, Fixed, LogNormal
    assert processing("fixed", 50) == Fixed(0.05) and processing("exponential", 0) == Fixed(0.0)
    assert processing("exponential", 50) == Exponential(0.05)
    tail = processing("long_tail", 50)
    assert isinstance(tail, LogNormal) and abs(tail.mean_s - 0.05) < 1e-12
    draw = tail.sampler(random.Random(1))
    xs = sorted(draw() for _ in range(20_000))
    assert abs(statistics.fmean(xs) - 0.05) < 0.005
    assert xs[int(0.99 * len(xs))] > 4 * statistics.median(xs)   # p99 well above the median


def test_processing_knobs_change_the_draws_live(run):
    async def main():
        k, conn = await _embedded(rate_per_s=100, consumers=1, processing_ms=10)
        first = await until(lambda: 10.0 in k.cook_times_ms, 10)
        k.set(processing_ms=3)
        shorter = await until(lambda: k.cook_times_ms[-1] == 3.0, 10)
        k.set(processing_dist="exponential")
        spread = await until(lambda: k.cook_times_ms[-1] not in (3.0, 10.0), 10)
        await k.stop()
        await conn.close()
        return first, shorter, spread

    assert run(main()) == (True, True, True)


def test_a_shared_brokers_fault_knobs_come_back_at_stop(run):
    """On `labkit.broker()`'s broker the fault model is shared: a stopped kitchen must not
    leave later cells with its crash rate or publish latency."""
    async def main():
        broker = messaging.Broker()
        faults = messaging.BrokerFaults(broker, crash_rate=0.05, processing_s=0.01)
        conn = await messaging.connect(broker=broker)
        k = await Kitchen.start(conn, rate_per_s=5, crash_rate=0.5, publish_latency_ms=200,
                                seed=1)
        during = faults.crash_rate, faults.publish_latency_ms
        await k.stop()
        after = faults.crash_rate, faults.publish_latency_ms, faults.processing.mean_s
        await conn.close()
        return during, after, broker.faults is faults

    assert run(main()) == ((0.5, 200.0), (0.05, 0.0, 0.01), True)
