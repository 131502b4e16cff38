"""The embedded broker alone: virtual time, bounds, validation, faults (no RabbitMQ needed)."""
import asyncio
import time

import pytest

from labkit import messaging, sim
from labkit.messaging import (Broker, BrokerFaults, ChannelClosed, ConsumerCrashed,
                              DeliveryChecker, Message, MessageProcessed, NotFound,
                              PreconditionFailed, ResourceLocked)
from labkit.messaging.journal import MAX_LISTENERS, Journal


async def _setup(prefetch=10, **queue_kw):
    conn = await messaging.connect()
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=prefetch)
    q = await ch.declare_queue("work", **queue_kw)
    return conn, ch, q


def test_a_hundred_thousand_messages_run_in_virtual_time_and_are_all_accounted_for():
    n = 100_000

    async def main():
        conn, ch, q = await _setup(prefetch=50)
        checker = DeliveryChecker()
        conn.journal.subscribe(checker.observe)
        done = asyncio.Event()
        acked = 0

        async def handle(message):
            nonlocal acked
            await asyncio.sleep(0.001)              # 1 ms of (virtual) work
            await message.ack()
            acked += 1
            if acked == n:
                done.set()
        await q.consume(handle)
        for i in range(n):
            await ch.default_exchange.publish(Message(b"x", message_id=str(i)), "work")
        await asyncio.wait_for(done.wait(), 3600)
        await conn.close()
        return checker.result(), asyncio.get_running_loop().time()

    started = time.perf_counter()
    result, virtual_s = sim.run(main)
    assert result["ok"] and (result["confirmed"], result["acked"]) == (n, n)
    assert virtual_s == pytest.approx(n / 50 * 0.001)   # 50 in flight, 1 ms each
    assert time.perf_counter() - started < 180           # seconds, even on a busy machine


def test_ttl_expires_at_the_exact_virtual_instant_and_requeue_keeps_the_original_expiry():
    async def main():
        conn = await messaging.connect()
        ch = await conn.channel()
        dlx = await ch.declare_exchange("dlx", "fanout")
        dlq = await ch.declare_queue("dlq")
        await dlq.bind(dlx)
        q = await ch.declare_queue("work", arguments={"x-message-ttl": 60_000,
                                                      "x-dead-letter-exchange": "dlx"})
        await ch.default_exchange.publish(Message(b"a", message_id="a"), "work")
        await asyncio.sleep(40)
        m = await q.get()
        await asyncio.sleep(10)
        await m.nack(requeue=True)            # back at t=50: still expires at t=60
        await asyncio.sleep(30)
        dead = [e for e in conn.journal.events if e.kind == "dead_lettered"]
        await conn.close()
        return dead
    dead = sim.run(main)
    assert [(e.t, e.message_id, e.reason) for e in dead] == [(60.0, "a", "expired")]


def test_bad_arguments_name_the_argument_and_the_value():
    async def main():
        conn, ch, q = await _setup()
        errors = []
        for call in (lambda: ch.set_qos(prefetch_count=-1),
                     lambda: ch.default_exchange.publish(Message(b""), "work", timeout_s=0),
                     lambda: q.get(no_ack="yes")):
            with pytest.raises(ValueError) as err:
                await call()
            errors.append(str(err.value))
        for args in ({"x-message-ttl": -1}, {"x-max-length": 2.5}, {"x-queue-type": "stream"},
                     {"x-overflow": "reject-publish"}):
            ch2 = await conn.channel()
            with pytest.raises(PreconditionFailed) as err:
                await ch2.declare_queue("other", arguments=args)
            errors.append(str(err.value))
            assert ch2.is_closed
        ch3 = await conn.channel()
        with pytest.raises(PreconditionFailed, match="quorum queue must be durable"):
            await ch3.declare_queue("q2", arguments={"x-queue-type": "quorum"})
        await conn.close()
        return errors
    errors = asyncio.run(main())
    assert "prefetch_count" in errors[0] and "-1" in errors[0]
    assert "timeout_s" in errors[1] and "no_ack" in errors[2]
    assert "x-message-ttl" in errors[3] and "x-max-length" in errors[4]
    assert "stream" in errors[5] and "x-overflow" in errors[6]
    with pytest.raises(ValueError, match="body must be bytes"):
        Message(123)


def test_errors_not_found_resource_locked_and_settling_twice():
    async def main():
        conn, ch, q = await _setup()
        with pytest.raises(NotFound):
            await q.bind("no-such-exchange")
        for name in ("", "amq.topic"):
            with pytest.raises(PreconditionFailed, match="cannot be deleted"):
                await (await conn.channel()).exchange_delete(name)
        assert "" in conn.broker.exchanges
        other = await messaging.connect(broker=conn.broker)
        mine = await (await other.channel()).declare_queue("mine", exclusive=True)
        with pytest.raises(ResourceLocked):
            await (await conn.channel()).declare_queue(mine.name, exclusive=True)
        ch = await conn.channel()
        await ch.default_exchange.publish(Message(b"a", message_id="a"), "work")
        m = await (await ch.get_queue("work")).get()
        await m.ack()
        with pytest.raises(MessageProcessed):
            await m.nack()
        await other.close()
        await conn.close()
        with pytest.raises(ChannelClosed):
            await ch.declare_queue("work")
    asyncio.run(main())


def test_journal_is_bounded_and_listeners_unsubscribe():
    journal = Journal(max_events=10)
    seen = []
    stop = journal.subscribe(seen.append)
    for i in range(100):
        journal.record("published", str(i))
    assert len(journal.events) == 10 and journal.counts["published"] == 100 and len(seen) == 100
    stop()
    journal.record("published", "x")
    assert len(seen) == 100
    stops = [journal.subscribe(lambda e: None) for _ in range(MAX_LISTENERS)]
    with pytest.raises(ValueError, match="at most"):
        journal.subscribe(print)
    for s in stops:
        s()

    def broken(event):
        raise RuntimeError("chart bug")
    journal.subscribe(broken)
    journal.record("acked", "y")                  # the broken listener is removed, not fatal
    journal.record("acked", "z")
    assert len(journal.listener_errors) == 1 and not journal._listeners


def test_a_failing_handler_leaves_its_message_unacked_and_close_ends_handlers():
    async def main():
        conn, ch, q = await _setup(prefetch=1)
        started = []

        async def bad(message):
            raise KeyError("oops")
        await q.consume(bad)
        await ch.default_exchange.publish(Message(b"a", message_id="a"), "work")
        await asyncio.sleep(0.01)
        info = conn.broker.queue_info("work")
        errors = list(conn.broker.handler_errors)
        ch2 = await conn.channel()
        q2 = await ch2.declare_queue("slow")

        async def forever(message):
            started.append(message)
            await asyncio.sleep(3600)
        await q2.consume(forever)
        await ch2.default_exchange.publish(Message(b"b", message_id="b"), "slow")
        await asyncio.sleep(0.01)
        await conn.close()
        return info, errors, started, conn.broker._tasks
    info, errors, started, tasks = asyncio.run(main())
    assert info == {"ready": 0, "unacked": 1, "consumers": 1}
    assert "KeyError" in errors[0]
    assert len(started) == 1 and not tasks          # the hour-long handler was ended


def _crash_experiment(seed, crash_rate=0.3, n=200):
    async def main():
        broker = Broker()
        faults = BrokerFaults(broker, crash_rate=crash_rate, seed=seed,
                              processing_s=sim.Exponential(0.01))
        conn = await messaging.connect(broker=broker)
        checker = DeliveryChecker()
        conn.journal.subscribe(checker.observe)
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=5)
        q = await ch.declare_queue("work")
        acked = set()

        async def handle(message):
            conn.journal.handled(message)          # the work is done ...
            await message.ack()                    # ... and the ack may "crash"
            acked.add(message.message_id)
        await q.consume(handle)
        for i in range(n):
            await ch.default_exchange.publish(Message(b"x", message_id=f"m{i}"), "work")
        while len(acked) < n:
            await asyncio.sleep(0.1)
        await conn.close()
        return checker.result(), faults.crashes, broker.handler_errors
    return sim.run(main, until_s=3600)


def test_consumer_crashes_cause_redeliveries_and_duplicates_but_no_loss_and_repeat_by_seed():
    result, crashes, errors = _crash_experiment(seed=7)
    assert result["ok"] and result["lost"] == 0 and crashes > 20
    assert result["duplicates"] == crashes == result["redelivered"]
    assert ConsumerCrashed.__name__ in errors[-1]
    assert _crash_experiment(seed=7)[0] == result
    assert _crash_experiment(seed=8)[0]["duplicate_ids"] != result["duplicate_ids"]
    no_crash, _, _ = _crash_experiment(seed=7, crash_rate=0.0)
    assert (no_crash["duplicates"], no_crash["redelivered"]) == (0, 0)


def test_fault_knobs_are_validated_and_publish_latency_takes_virtual_time():
    with pytest.raises(ValueError, match="crash_rate"):
        BrokerFaults(Broker(), crash_rate=1.5)
    with pytest.raises(ValueError, match="publish_latency_ms"):
        BrokerFaults(Broker(), publish_latency_ms=float("nan"))
    with pytest.raises(ValueError, match="broker"):
        BrokerFaults("rabbit")
    with pytest.raises(ValueError, match="processing_s must be a finite number >= 0"):
        BrokerFaults(Broker(), processing_s=-1)

    async def main():
        broker = Broker()
        BrokerFaults(broker, publish_latency_ms=250)
        conn = await messaging.connect(broker=broker)
        ch = await conn.channel()
        await ch.declare_queue("work")
        for _ in range(4):
            await ch.default_exchange.publish(Message(b"x"), "work")
        await conn.close()
        return asyncio.get_running_loop().time()
    assert sim.run(main) == pytest.approx(1.0)

    async def detached():
        broker = Broker()
        faults = BrokerFaults(broker, crash_rate=1.0)
        faults.detach()
        conn = await messaging.connect(broker=broker)
        ch = await conn.channel()
        q = await ch.declare_queue("work")
        acked = []

        async def handle(message):
            await message.ack()
            acked.append(message.message_id)
        await q.consume(handle)
        await ch.default_exchange.publish(Message(b"x", message_id="a"), "work")
        await asyncio.sleep(0.01)
        await conn.close()
        return acked, faults.crashes
    assert sim.run(detached) == (["a"], 0)


def test_restart_keeps_durable_queues_and_persistent_messages_only():
    async def main():
        broker = Broker()
        faults = BrokerFaults(broker)
        conn = await messaging.connect(broker=broker)
        ch = await conn.channel()
        await ch.declare_queue("durable", durable=True)
        await ch.declare_queue("transient")
        await ch.declare_exchange("fleeting", "fanout")
        for qn in ("durable", "transient"):
            for mid, persistent in (("p", True), ("t", False)):
                await ch.default_exchange.publish(
                    Message(b"x", message_id=f"{qn}-{mid}", persistent=persistent), qn)
        held = await (await ch.get_queue("durable")).get()      # unacked at the restart
        faults.restart()
        with pytest.raises(ChannelClosed, match="restarted"):
            await held.ack()
        conn2 = await messaging.connect(broker=broker)
        ch2 = await conn2.channel()
        left = []
        while (m := await (await ch2.get_queue("durable")).get()) is not None:
            left.append((m.message_id, m.redelivered))
            await m.ack()
        state = (sorted(broker.queues), "fleeting" in broker.exchanges, left)
        await conn2.close()
        return state, broker.journal.summary()
    (queues, fleeting, left), counts = sim.run(main)
    assert queues == ["durable"] and not fleeting
    assert left == [("durable-p", True)]
    assert counts["dropped:restart"] == 1 and counts["dropped:deleted"] == 2


def test_a_consumer_cut_off_loses_its_messages_to_the_others():
    async def main():
        broker = Broker()
        faults = BrokerFaults(broker)
        a, b = await messaging.connect(broker=broker), await messaging.connect(broker=broker)
        got = {"a": [], "b": []}
        for name, conn in (("a", a), ("b", b)):
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=2)
            q = await ch.declare_queue("work")

            async def hold(message, name=name):
                got[name].append(message)
            await q.consume(hold)
        ch = await a.channel()
        for i in range(4):
            await ch.default_exchange.publish(Message(b"x", message_id=f"m{i}"), "work")
        await asyncio.sleep(0.01)
        a_ids = [m.message_id for m in got["a"]]
        faults.cut_off(a)
        with pytest.raises(ChannelClosed, match="cut off"):
            await got["a"][0].ack()
        for m in got["b"][:2]:
            await m.ack()
        await asyncio.sleep(0.01)
        b_ids = [(m.message_id, m.redelivered) for m in got["b"]]

        async def slow(message):
            await asyncio.sleep(3600)
        ch = await b.channel()
        await (await ch.get_queue("work")).consume(slow)
        await ch.default_exchange.publish(Message(b"x", message_id="m4"), "work")
        await asyncio.sleep(0.01)
        faults.cut_off(b)                 # its slow handler keeps running ...
        assert len(broker._tasks) == 1
        await b.close()                   # ... until the connection is closed
        await a.close()
        return a_ids, b_ids, len(broker._tasks)
    a_ids, b_ids, tasks_left = sim.run(main)
    assert tasks_left == 0
    assert a_ids == ["m0", "m2"]
    assert b_ids == [("m1", False), ("m3", False), ("m0", True), ("m2", True)]
