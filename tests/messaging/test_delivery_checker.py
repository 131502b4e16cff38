"""The delivery checker finds lost and duplicated messages (and stays quiet when none are)."""
import asyncio

import pytest

from labkit import messaging, sim
from labkit.messaging import DeliveryChecker, Message
from labkit.messaging.journal import Event, Journal


def _history(*steps):
    return [Event(float(i), kind, mid, "q", reason) for i, (kind, mid, reason) in
            enumerate((s + ("",))[:3] for s in steps)]


def test_a_clean_history_is_ok():
    events = _history(("published", "a"), ("confirmed", "a"), ("delivered", "a"),
                      ("handled", "a"), ("acked", "a"))
    result = DeliveryChecker.of(events).result()
    assert result["ok"] and result["verdict"].startswith("OK")
    assert (result["published"], result["acked"], result["lost"], result["duplicates"]) == \
        (1, 1, 0, 0)


def test_a_confirmed_message_never_acked_is_lost():
    events = _history(("published", "a"), ("confirmed", "a"), ("published", "b"),
                      ("confirmed", "b"), ("delivered", "b"), ("acked", "b"),
                      ("published", "c"))          # c was never confirmed: not a loss
    result = DeliveryChecker.of(events).result()
    assert not result["ok"] and result["lost"] == 1 and result["lost_ids"] == ["a"]
    assert result["verdict"].startswith("NOT SETTLED 1 of 2")   # a queue may still hold it
    assert result["unsettled_ids"] == ["a"]


def test_dead_lettered_is_not_lost_and_is_counted_by_reason():
    events = _history(("published", "a"), ("confirmed", "a"), ("delivered", "a"),
                      ("rejected", "a"), ("dead_lettered", "a", "rejected"),
                      ("published", "b"), ("confirmed", "b"), ("dead_lettered", "b", "expired"),
                      ("published", "c"), ("confirmed", "c"), ("dropped", "c", "maxlen"))
    result = DeliveryChecker.of(events).result()
    assert result["dead_lettered"] == {"rejected": 1, "expired": 1}
    assert result["dropped"] == {"maxlen": 1} and result["lost_ids"] == ["c"]
    assert result["verdict"].startswith("LOST 1 of 3 confirmed messages (dropped by the broker)")
    assert result["unsettled"] == 0


def test_duplicates_are_handlings_beyond_the_first():
    events = _history(("published", "a"), ("confirmed", "a"), ("delivered", "a"),
                      ("handled", "a"), ("delivered", "a"), ("handled", "a"), ("acked", "a"),
                      ("delivered", "a"), ("handled", "a"))
    events[4] = events[4]._replace(redelivered=True)
    checker = DeliveryChecker.of(events)
    result = checker.result()
    assert result["ok"] and result["duplicates"] == 2 and result["redelivered"] == 1
    strict = checker.result(allow_duplicates=False)
    assert not strict["ok"] and strict["verdict"].startswith("DUPLICATES: 2")


def test_tracking_is_bounded_and_says_so():
    events = _history(*[("published", f"m{i}") for i in range(5)], ("published", None))
    result = DeliveryChecker.of(events, max_messages=3).result()
    assert result["untracked"] == 3 and not result["ok"]
    assert result["verdict"].startswith("INCOMPLETE")
    with pytest.raises(ValueError, match="max_messages"):
        DeliveryChecker(max_messages=0)


def test_real_losses_on_the_embedded_broker_are_found():
    """max-length without a dead-letter exchange, and an unroutable publish, lose messages."""
    async def main():
        conn = await messaging.connect()
        ch = await conn.channel()
        q = await ch.declare_queue("work", arguments={"x-max-length": 3})
        for i in range(5):
            await ch.default_exchange.publish(Message(b"x", message_id=f"m{i}"), "work")
        await ch.default_exchange.publish(Message(b"x", message_id="nowhere"), "typo",
                                          mandatory=False)
        while (m := await q.get()) is not None:
            await m.ack()
        await conn.close()
        return DeliveryChecker.of(conn.journal.events).result()
    result = sim.run(main)
    assert sorted(result["lost_ids"]) == ["m0", "m1", "nowhere"]
    assert result["dropped"] == {"maxlen": 2} and result["unroutable"] == 1


def test_ack_before_work_with_a_crash_loses_the_work_but_the_broker_thinks_it_is_done():
    """The tutorial's bug seen through the checker: acked, yet the handler never finished."""
    async def main():
        conn = await messaging.connect()
        journal: Journal = conn.journal
        ch = await conn.channel()
        q = await ch.declare_queue("work")

        async def ack_first(message):
            await message.ack()
            if message.message_id == "m1":
                raise RuntimeError("crashed after the ack")
            journal.handled(message)
        await q.consume(ack_first)
        for i in range(3):
            await ch.default_exchange.publish(Message(b"x", message_id=f"m{i}"), "work")
        await asyncio.sleep(0.1)
        await conn.close()
        checker = DeliveryChecker.of(journal.events)
        return checker.result(), checker._ids
    result, ids = sim.run(main)
    assert result["ok"] and result["acked"] == 3 and result["handled"] == 2
    assert ids["m1"][3] == 0      # acked but never handled: invisible to "lost"
