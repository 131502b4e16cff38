"""The same scenarios on the embedded broker and on RabbitMQ must observe the same outcomes.

Every test runs twice (backend = embedded, rabbitmq); see conftest.py for the skip/fail rule.
"""
import asyncio

import pytest

from labkit.messaging import (ChannelClosed, DeliveryChecker, Message, NotFound,
                              PreconditionFailed, ResourceLocked)


async def _publish(ch, queue, ids, **kw):
    for mid in ids:
        assert await ch.default_exchange.publish(Message(mid.encode(), message_id=mid, **kw),
                                                 routing_key=queue.name)


def _death(m):
    d = m.headers["x-death"][0]
    return {"reason": d["reason"], "queue": d["queue"], "count": d["count"],
            "exchange": d["exchange"], "routing-keys": list(d["routing-keys"]),
            "first": m.headers["x-first-death-reason"]}


def test_prefetch_window_limits_unacked_deliveries(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        await ch.set_qos(prefetch_count=3)
        q = await lab.queue(ch, "work")
        await _publish(ch, q, [f"m{i}" for i in range(10)])
        got = []

        async def hold(message):
            got.append(message)            # no ack: the window fills up
        await q.consume(hold)
        await lab.until(lambda: len(got) == 3, what="3 deliveries")
        await asyncio.sleep(0.3)
        assert len(got) == 3               # the window is full: nothing more comes
        await got[0].ack()
        await lab.until(lambda: len(got) == 4, what="the 4th delivery after one ack")
        await asyncio.sleep(0.3)
        assert [m.message_id for m in got] == ["m0", "m1", "m2", "m3"]
    lab_run(body)


def test_requeued_messages_return_to_their_position_marked_redelivered(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "work")
        await _publish(ch, q, ["m0", "m1", "m2"])
        a, b = await q.get(), await q.get()
        assert (a.message_id, a.redelivered, b.message_id) == ("m0", False, "m1")
        await b.nack(requeue=True)
        await a.reject(requeue=True)
        assert await lab.get_all(q) == [("m0", True), ("m1", True), ("m2", False)]
    lab_run(body)


def test_closing_a_channel_returns_its_unacked_messages_in_place(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "work")
        await _publish(ch, q, ["m0", "m1", "m2", "m3"])
        other = await lab.conn.channel()
        await other.set_qos(prefetch_count=2)
        got = []

        async def hold(message):
            got.append(message.message_id)
        await (await other.get_queue(q.name)).consume(hold)
        await lab.until(lambda: len(got) == 2, what="2 deliveries")
        assert await q.status() == {"ready": 2, "consumers": 1}
        await other.close()

        async def all_back():
            return (await q.status())["ready"] == 4
        await lab.until_async(all_back, what="the 2 unacked messages back in the queue")
        assert await lab.get_all(q) == [("m0", True), ("m1", True), ("m2", False), ("m3", False)]
    lab_run(body)


def test_cancel_keeps_unacked_messages_which_can_still_be_acked(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "work")
        await _publish(ch, q, ["m0", "m1"])
        got = []

        async def hold(message):
            got.append(message)
        tag = await q.consume(hold)
        await lab.until(lambda: len(got) == 2, what="2 deliveries")
        await q.cancel(tag)
        for m in got:
            await m.ack()
        await ch.close()
        ch2 = await lab.conn.channel()
        assert await lab.get_all(await ch2.get_queue(q.name)) == []
        with pytest.raises(NotFound):
            await ch2.get_queue(lab.name("missing"))
    lab_run(body)


def test_reject_without_requeue_dead_letters_with_x_death(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        dlx, dlq = await lab.dead_letter_pair(ch)
        q = await lab.queue(ch, "work", arguments={"x-dead-letter-exchange": dlx.name})
        await _publish(ch, q, ["m0"])
        m = await q.get()
        await m.reject(requeue=False)
        dead = await lab.wait_get(dlq)
        assert (dead.message_id, dead.redelivered) == ("m0", False)
        assert _death(dead) == {"reason": "rejected", "queue": q.name, "count": 1, "exchange": "",
                                "routing-keys": [q.name], "first": "rejected"}
        await dead.ack()
    lab_run(body)


def test_message_ttl_expires_into_the_dead_letter_queue(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        dlx, dlq = await lab.dead_letter_pair(ch)
        q = await lab.queue(ch, "work", arguments={"x-dead-letter-exchange": dlx.name,
                                                   "x-message-ttl": 50})
        await _publish(ch, q, ["m0", "m1"])
        first, second = await lab.wait_get(dlq), await lab.wait_get(dlq)
        assert [first.message_id, second.message_id] == ["m0", "m1"]
        assert _death(first)["reason"] == "expired" and _death(first)["queue"] == q.name
        await first.ack()
        await second.ack()
        assert await lab.get_all(q) == []
    lab_run(body)


def test_max_length_drops_the_head_into_the_dead_letter_queue(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        dlx, dlq = await lab.dead_letter_pair(ch)
        q = await lab.queue(ch, "work", arguments={"x-dead-letter-exchange": dlx.name,
                                                   "x-max-length": 2})
        await _publish(ch, q, ["m0", "m1", "m2", "m3"])
        dead = [await lab.wait_get(dlq), await lab.wait_get(dlq)]
        assert [m.message_id for m in dead] == ["m0", "m1"]
        assert {_death(m)["reason"] for m in dead} == {"maxlen"}
        for m in dead:
            await m.ack()
        assert await lab.get_all(q) == [("m2", False), ("m3", False)]
    lab_run(body)


def test_quorum_delivery_limit_dead_letters_after_limit_plus_one_deliveries(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        dlx, dlq = await lab.dead_letter_pair(ch)
        q = await lab.queue(ch, "work", durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 2, "x-dead-letter-exchange": dlx.name})
        await _publish(ch, q, ["m0"], persistent=True)
        seen = []
        for _ in range(3):
            m = await lab.wait_get(q)
            seen.append((m.message_id, m.redelivered, m.headers.get("x-delivery-count")))
            await m.nack(requeue=True)
        assert seen == [("m0", False, 0), ("m0", True, 1), ("m0", True, 2)]
        dead = await lab.wait_get(dlq)           # the 3rd nack went past the limit
        assert _death(dead)["reason"] == "delivery_limit"
        await dead.ack()
        assert await q.get() is None
    lab_run(body)


def test_quorum_returns_go_to_the_head_with_a_limit_and_to_the_back_without(lab_run):
    """RabbitMQ 3.10's quorum queues: a documented difference from classic queues."""
    async def body(lab):
        ch = await lab.conn.channel()
        orders = []
        for what, args in (("plain", {}), ("limited", {"x-delivery-limit": 5})):
            q = await lab.queue(ch, what, durable=True, arguments={"x-queue-type": "quorum",
                                                                    **args})
            await _publish(ch, q, ["m0", "m1", "m2"])
            a, b = await q.get(), await q.get()
            await b.nack(requeue=True)
            await asyncio.sleep(0.05)
            await a.nack(requeue=True)

            async def all_back(q=q):
                return (await q.status())["ready"] == 3
            await lab.until_async(all_back, what="both nacked messages back")
            orders.append(await lab.get_all(q))
        assert orders == [[("m2", False), ("m1", True), ("m0", True)],
                          [("m1", True), ("m0", True), ("m2", False)]]
    lab_run(body)


def test_topic_direct_fanout_and_default_exchange_routing(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        topic = await lab.exchange(ch, "orders", "topic")
        patterns = {"star": "order.*", "hash": "order.#", "paid": "*.paid", "all": "#",
                    "mid": "order.*.eu"}
        queues = {}
        for what, pattern in patterns.items():
            queues[what] = await lab.queue(ch, what)
            await queues[what].bind(topic, routing_key=pattern)
        keys = ["order", "order.new", "order.new.eu", "invoice.paid", "order.paid"]
        for key in keys:
            await topic.publish(Message(key.encode(), message_id=key), routing_key=key,
                                mandatory=False)
        await asyncio.sleep(0.2)
        got = {what: [mid for mid, _ in await lab.get_all(q)] for what, q in queues.items()}
        assert got == {"star": ["order.new", "order.paid"],
                       "hash": ["order", "order.new", "order.new.eu", "order.paid"],
                       "paid": ["invoice.paid", "order.paid"], "all": keys,
                       "mid": ["order.new.eu"]}
        fan = await lab.exchange(ch, "fan", "fanout")
        direct = await lab.exchange(ch, "direct", "direct")
        await queues["star"].bind(fan)
        await queues["paid"].bind(direct, routing_key="x")
        assert await fan.publish(Message(b"f", message_id="f"), routing_key="anything")
        assert await direct.publish(Message(b"d", message_id="d"), routing_key="x")
        assert not await direct.publish(Message(b"n", message_id="n"), routing_key="y")
        await asyncio.sleep(0.2)
        assert [m for m, _ in await lab.get_all(queues["star"])] == ["f"]
        assert [m for m, _ in await lab.get_all(queues["paid"])] == ["d"]
    lab_run(body)


def test_publisher_confirms_returns_and_missing_exchange(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "work")
        assert await ch.default_exchange.publish(Message(b"a", message_id="a"), q.name) is True
        assert await ch.default_exchange.publish(Message(b"b"), lab.name("nobody")) is False
        assert await ch.default_exchange.publish(Message(b"c"), lab.name("nobody"),
                                                 mandatory=False) is True
        ghost = await lab.exchange(ch, "ghost", "fanout")
        await ch.exchange_delete(ghost.name)
        with pytest.raises(NotFound):
            await ghost.publish(Message(b"x"), routing_key="")
        assert ch.is_closed
        with pytest.raises(ChannelClosed):
            await ch.declare_queue(q.name)
    lab_run(body)


def test_redeclaring_a_queue_with_other_arguments_is_refused_and_closes_the_channel(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q = await lab.queue(ch, "work")
        await ch.declare_queue(q.name)        # the same declaration is fine
        with pytest.raises(PreconditionFailed) as err:
            await ch.declare_queue(q.name, arguments={"x-message-ttl": 5})
        assert isinstance(err.value, ValueError) and "x-message-ttl" in str(err.value)
        assert ch.is_closed
        ch2 = await lab.conn.channel()
        with pytest.raises(PreconditionFailed):
            await ch2.declare_queue(q.name, durable=True)
    lab_run(body)


def test_exclusive_queue_vanishes_with_its_connection_and_auto_delete_with_its_consumer(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        fan = await lab.exchange(ch, "news", "fanout")
        sub = await lab.connect()
        sub_ch = await sub.channel()
        mine = await sub_ch.declare_queue(lab.name("mine"), exclusive=True)
        await mine.bind(fan)
        other = await lab.conn.channel()
        with pytest.raises(ResourceLocked):
            await (await other.get_queue(mine.name)).consume(lambda message: None)
        assert other.is_closed
        assert await fan.publish(Message(b"1", message_id="1"), routing_key="")
        await sub.close()

        async def returned():
            return await fan.publish(Message(b"2", message_id="2"), routing_key="") is False
        await lab.until_async(returned, what="the exclusive queue to vanish")
        auto = await ch.declare_queue(lab.name("auto"), auto_delete=True)
        lab.queues.append(auto.name)
        await auto.bind(fan)

        async def ignore(message):
            await message.ack()
        tag = await auto.consume(ignore)
        assert await fan.publish(Message(b"3", message_id="3"), routing_key="")
        await auto.cancel(tag)
        await lab.until_async(returned, what="the auto-delete queue to vanish")
    lab_run(body)


def test_the_checker_gives_the_same_verdict_on_both_backends(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        await ch.set_qos(prefetch_count=5)
        dlx, dlq = await lab.dead_letter_pair(ch)
        q = await lab.queue(ch, "work", arguments={"x-dead-letter-exchange": dlx.name})
        await _publish(ch, q, [f"m{i}" for i in range(20)])
        done = []

        async def handle(message):
            lab.conn.journal.handled(message)
            if int(message.message_id[1:]) % 5 == 0:
                await message.reject(requeue=False)     # poison: to the dead-letter queue
            else:
                await message.ack()
            done.append(message.message_id)
        await q.consume(handle)
        await lab.until(lambda: len(done) == 20, what="20 handled")
        dead = [await lab.wait_get(dlq) for _ in range(4)]
        for m in dead:
            await m.ack()
        result = DeliveryChecker.of(lab.conn.journal.events).result()
        assert result["ok"], result["verdict"]
        assert (result["confirmed"], result["lost"], result["duplicates"]) == (20, 0, 0)
        assert result["dead_lettered"] == {"rejected": 4}
    lab_run(body)


def test_correlation_id_and_reply_to_travel_with_the_message_and_its_dead_letter(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        dlx = await lab.exchange(ch, "dlx", "fanout")
        dlq = await lab.queue(ch, "dead")
        await dlq.bind(dlx)
        q = await lab.queue(ch, "requests", arguments={"x-dead-letter-exchange": dlx.name})
        await _publish(ch, q, ["r1"], correlation_id="c-42", reply_to="replies-7")
        got = await q.get()
        assert (got.correlation_id, got.reply_to) == ("c-42", "replies-7")
        await got.reject(requeue=False)
        dead = None
        for _ in range(100):                   # RabbitMQ dead-letters asynchronously
            dead = await dlq.get(timeout_s=1)
            if dead is not None:
                break
            await asyncio.sleep(0.02)
        assert (dead.correlation_id, dead.reply_to) == ("c-42", "replies-7")
        await dead.ack()
        with pytest.raises(ValueError, match="correlation_id"):
            Message(b"x", correlation_id=42)
    lab_run(body)


def test_get_exchange_finds_an_existing_exchange_and_refuses_a_missing_one(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        ex = await lab.exchange(ch, "found", "fanout")
        q = await lab.queue(ch, "sink")
        await q.bind(ex)
        again = await ch.get_exchange(ex.name)
        assert again.name == ex.name
        assert await again.publish(Message(b"x", message_id="g1"), routing_key="")
        assert await lab.get_all(q) == [("g1", False)]
        with pytest.raises(NotFound):
            await ch.get_exchange(lab.name("missing"))
    lab_run(body)


def test_process_acks_on_success_and_rejects_on_error_as_aio_pika_does(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        dlx = await lab.exchange(ch, "dlx", "fanout")
        dlq = await lab.queue(ch, "dead")
        await dlq.bind(dlx)
        q = await lab.queue(ch, "work", arguments={"x-dead-letter-exchange": dlx.name})
        await _publish(ch, q, ["ok", "boom", "again"])
        m = await q.get()
        async with m.process():
            pass                                            # no error: acked
        m = await q.get()
        with pytest.raises(RuntimeError):
            async with m.process(requeue=True):
                raise RuntimeError("cook failed")           # requeued, the error goes on
        m = await q.get()
        assert (m.message_id, m.redelivered) == ("boom", True)     # back in its place
        with pytest.raises(ValueError):
            async with m.process(requeue=True, reject_on_redelivered=True):
                raise ValueError("poison")                  # redelivered: dead-lettered
        m = await q.get()
        assert (m.message_id, m.redelivered) == ("again", False)
        async with m.process(ignore_processed=True):
            await m.nack(requeue=False)                     # settled inside: left alone
        dead = []
        for _ in range(100):                                # RabbitMQ dead-letters async
            got = await dlq.get(timeout_s=1)
            if got is not None:
                dead.append(got.message_id)
                await got.ack()
            if len(dead) == 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(dead) == ["again", "boom"] and await q.get() is None
    lab_run(body)
