"""Consumers done right (chapter 02): ack after the work, bounded redelivery into the dead-letter
queue, idempotence by message id, replay. Broker tests run on the embedded broker and RabbitMQ."""
import asyncio

import pytest

from labkit import sim
from labkit.messaging import (NotFound, Broker, BrokerFaults, ChannelClosed, ConsumerCrashed,
                              DeliveryChecker, Message, connect)
from labkit.messaging.consumers import SeenStore, ack_after, idempotent, replay


# ---- SeenStore --------------------------------------------------------------------------
def test_seen_store_is_bounded_and_evicts_the_oldest():
    s = SeenStore(max_ids=3)
    for mid in ("a", "b", "c"):
        s.add(mid)
    s.add("a")                              # refreshed: "b" is now the oldest
    s.add("d")
    assert len(s) == 3 and s.evictions == 1
    assert "b" not in s and all(m in s for m in ("a", "c", "d"))
    for i in range(100):
        s.add(f"x{i}")
    assert len(s) == 3 and s.evictions == 101


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "10"])
def test_seen_store_refuses_a_bad_size(bad):
    with pytest.raises(ValueError, match="max_ids"):
        SeenStore(bad)


def test_seen_store_refuses_a_missing_id():
    with pytest.raises(ValueError, match="message_id"):
        SeenStore().add(None)


# ---- the handler's decisions, on a recording fake message --------------------------------
class Fake:
    def __init__(self, mid="m1", redelivered=False, headers=None, log=None, fail_on=None):
        self.message_id, self.redelivered = mid, redelivered
        self.headers = headers or {}
        self.queue = "q"
        self.log = log if log is not None else []
        self.fail_on = fail_on

    async def _do(self, what):
        if self.fail_on == what:
            raise self.fail_on_error
        self.log.append(what)

    async def ack(self):
        await self._do("ack")

    async def nack(self, requeue=True):
        await self._do(f"nack requeue={requeue}")

    async def reject(self, requeue=False):
        await self._do(f"reject requeue={requeue}")


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_ack_comes_after_the_work_and_sync_work_is_allowed():
    log = []
    handler = ack_after(lambda m: log.append("work"))
    _run(handler(Fake(log=log)))
    assert log == ["work", "ack"] and handler.acked == 1


def test_failed_async_work_is_not_acked():
    log = []

    async def work(m):
        log.append("work")
        raise RuntimeError("kitchen on fire")
    handler = ack_after(work, retries=1)
    _run(handler(Fake(log=log)))
    assert log == ["work", "nack requeue=True"] and handler.acked == 0
    assert "kitchen on fire" in handler.errors[0]


@pytest.mark.parametrize("retries, redelivered, headers, expect", [
    (1, False, {}, "nack requeue=True"),              # first delivery: one more try
    (1, True, {}, "reject requeue=False"),            # redelivered: at least the 2nd
    (0, False, {}, "reject requeue=False"),           # no retries at all
    (2, True, {"x-delivery-count": 1}, "nack requeue=True"),    # quorum: 2nd delivery
    (2, True, {"x-delivery-count": 2}, "reject requeue=False"),  # quorum: 3rd delivery
    (5, False, {"x-delivery-count": 5}, "reject requeue=False"),  # the count wins over the flag
])
def test_bounded_redelivery_decision(retries, redelivered, headers, expect):
    log = []

    def work(m):
        raise ValueError("poison")
    _run(ack_after(work, retries=retries)(Fake(redelivered=redelivered, headers=headers,
                                                log=log)))
    assert log == [expect]


def test_classic_queue_retries_are_counted_per_message_id():
    log = []

    def work(m):
        raise ValueError("poison")
    handler = ack_after(work, retries=3)

    async def deliveries():
        await handler(Fake("p", redelivered=False, log=log))
        for _ in range(3):
            await handler(Fake("p", redelivered=True, log=log))
    _run(deliveries())
    assert log == ["nack requeue=True"] * 3 + ["reject requeue=False"]
    assert (handler.requeued, handler.dead_lettered, handler.failures) == (3, 1, 4)


def test_a_redelivered_message_without_id_cannot_loop():
    log = []
    handler = ack_after(lambda m: 1 / 0, retries=5)
    _run(handler(Fake(mid=None, redelivered=True, log=log)))
    assert log == ["reject requeue=False"]


@pytest.mark.parametrize("error", [ConsumerCrashed("died"), ChannelClosed("gone")])
def test_a_dead_consumer_is_never_settled_and_its_error_propagates(error):
    log = []

    def work(m):
        raise error
    with pytest.raises(type(error)):
        _run(ack_after(work)(Fake(log=log)))
    assert log == []
    m = Fake(log=log, fail_on="ack")          # the ack itself finds the consumer dead
    m.fail_on_error = error
    journal = _Journal()
    with pytest.raises(type(error)):
        _run(ack_after(lambda m: None, journal=journal)(m))
    assert journal.handled_ids == ["m1"]      # the work was done (and recorded) before


class _Journal:
    def __init__(self):
        self.handled_ids = []

    def handled(self, m):
        self.handled_ids.append(m.message_id)


def test_idempotent_skips_a_seen_id_and_records_the_id_before_the_ack():
    log, effects, store = [], [], SeenStore(10)
    handler = idempotent(lambda m: effects.append(m.message_id), store=store)
    m = Fake("o-1", log=log, fail_on="ack")
    m.fail_on_error = ConsumerCrashed("died before the ack")
    with pytest.raises(ConsumerCrashed):
        _run(handler(m))
    assert "o-1" in store                     # remembered although the ack never happened
    _run(handler(Fake("o-1", redelivered=True, log=log)))
    assert effects == ["o-1"] and log == ["ack"] and handler.skipped == 1


def test_idempotent_does_not_remember_failed_work_and_rejects_messages_without_id():
    store = SeenStore(10)
    log = []
    handler = idempotent(lambda m: 1 / 0, store=store, retries=1)
    _run(handler(Fake("o-2", log=log)))
    assert "o-2" not in store and log == ["nack requeue=True"]
    _run(handler(Fake(None, log=log)))
    assert log[-1] == "reject requeue=False"


@pytest.mark.parametrize("call, match", [
    (lambda: ack_after("not a function"), "work"),
    (lambda: ack_after(print, retries=-1), "retries"),
    (lambda: ack_after(print, retries=1.0), "retries"),
    (lambda: ack_after(print, journal=object()), "journal"),
    (lambda: idempotent(print, store=set()), "store"),
])
def test_bad_arguments_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- on a broker (embedded and RabbitMQ) ---------------------------------------------------
async def _orders(lab, ch, n, **queue_kw):
    dlx, dlq = await lab.dead_letter_pair(ch)
    args = {"x-dead-letter-exchange": dlx.name, **queue_kw.pop("arguments", {})}
    q = await lab.queue(ch, "orders", arguments=args, **queue_kw)
    for i in range(n):
        await ch.default_exchange.publish(Message(b"order", message_id=f"o{i}"),
                                          routing_key=q.name)
    return q, dlq


@pytest.mark.parametrize("quorum", [False, True])
def test_poison_message_ends_in_the_dead_letter_queue_after_bounded_deliveries(lab_run, quorum):
    async def body(lab):
        ch = await lab.conn.channel()
        kw = {"durable": True, "arguments": {"x-queue-type": "quorum"}} if quorum else {}
        q, dlq = await _orders(lab, ch, 5, **kw)
        seen = []

        def work(m):
            seen.append(m.message_id)
            if m.message_id == "o2":
                raise ValueError("poison")
        handler = ack_after(work, retries=2, journal=lab.conn.journal)
        await q.consume(handler)
        dead = await lab.wait_get(dlq)
        await dead.ack()
        await lab.until(lambda: handler.acked == 4, what="4 good orders acked")
        assert dead.message_id == "o2"
        assert dead.headers["x-death"][0]["reason"] == "rejected"
        assert seen.count("o2") == 3             # 1 delivery + 2 retries, then dead-lettered
        assert sorted(set(seen)) == [f"o{i}" for i in range(5)]
        assert (handler.requeued, handler.dead_lettered) == (2, 1)
    lab_run(body)


def test_replay_moves_dead_letters_back_with_their_ids(lab_run):
    async def body(lab):
        ch = await lab.conn.channel()
        q, dlq = await _orders(lab, ch, 4)
        broken = {"on": True}
        done = []

        def work(m):
            if broken["on"] and m.message_id in ("o1", "o3"):
                raise ValueError("bug in the handler")
            done.append(m.message_id)
        handler = ack_after(work, retries=0)
        await q.consume(handler)
        await lab.until(lambda: handler.dead_lettered == 2 and len(done) == 2,
                        what="2 dead letters")

        async def in_dlq():
            return (await dlq.status())["ready"] == 2
        await lab.until_async(in_dlq, what="2 messages in the DLQ")
        broken["on"] = False                      # the bug is fixed: replay
        assert await replay(ch, dlq.name) == 2
        await lab.until(lambda: len(done) == 4, what="the replayed orders handled")
        assert sorted(done) == ["o0", "o1", "o2", "o3"]
        assert (await dlq.status())["ready"] == 0
        assert await replay(ch, dlq.name) == 0
    lab_run(body)


def test_replay_refuses_bad_arguments(run):
    async def main():
        conn = await connect(broker=Broker())
        ch = await conn.channel()
        for kw, match in (({"limit": -1}, "limit"), ({"to_exchange": 5}, "to_exchange"),
                          ({"routing_key": 5}, "routing_key")):
            with pytest.raises(ValueError, match=match):
                await replay(ch, "dlq", **kw)
        with pytest.raises(NotFound):                       # a named exchange must exist
            await replay(ch, "dlq", to_exchange="missing")
        await conn.close()
    run(main())


# ---- under crashes, in virtual time (embedded) --------------------------------------------
def _crash_run(make_handler, seed=0, n=300):
    async def main():
        broker = Broker(max_events=100_000)
        BrokerFaults(broker, crash_rate=0.3, processing_s=0.001, seed=seed)
        conn = await connect(broker=broker)
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=10)
        q = await ch.declare_queue("payments")
        charges = {}

        def charge(m):
            charges[m.message_id] = charges.get(m.message_id, 0) + 1
        handler = make_handler(charge, broker.journal)
        await q.consume(handler)
        for i in range(n):
            await ch.default_exchange.publish(Message(b"1", message_id=f"p{i}"),
                                              routing_key=q.name)
        while broker.queue_info(q.name)["ready"] or broker.queue_info(q.name)["unacked"]:
            await asyncio.sleep(0.01)
        result = DeliveryChecker.of(broker.journal.events).result()
        await conn.close()
        return charges, handler, result
    return sim.run(main, seed=seed, until_s=600)


def test_at_least_once_duplicates_under_crashes_and_idempotence_removes_them():
    charges, plain, result = _crash_run(lambda work, j: ack_after(work, journal=j))
    assert len(charges) == 300 and result["lost"] == 0
    assert sum(charges.values()) - 300 == result["duplicates"] > 30   # ~0.3/0.7 x 300 = 128
    charges, handler, result = _crash_run(
        lambda work, j: idempotent(work, store=SeenStore(1000), journal=j))
    assert result["lost"] == 0 and result["ok"]
    assert set(charges.values()) == {1} and len(charges) == 300
    assert result["duplicates"] == 0 and handler.skipped > 30
    assert result["redelivered"] >= handler.skipped
