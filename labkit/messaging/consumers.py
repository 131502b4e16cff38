"""Consumers done right (chapter 02): ack after the work, bounded redelivery, idempotence.

The tutorial's consumer acks before it works (a crash loses the order) or answers every failure
with `nack(requeue=True)` (a poison message loops forever and starves the queue). Here:

    handler = ack_after(work, retries=1, journal=conn.journal)      # at-least-once, bounded
    handler = idempotent(work, store=SeenStore(10_000), journal=conn.journal)  # effectively once
    await queue.consume(handler)
    moved = await replay(channel, "orders.dlq")    # the fixed messages go back, ids kept

`work(message)` may be sync or async; its exception means "failed": the message is requeued
while it has been delivered at most `retries` times, then rejected without requeue so the
queue's dead-letter exchange takes it (a queue without one drops it: declare one).
Pure: no I/O of its own, no clock; runs on the embedded broker, in labkit.sim and on RabbitMQ.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict, deque

from labkit._core import validate
from labkit.messaging.api import ChannelClosed, Message
from labkit.messaging.faults import ConsumerCrashed

__all__ = ["SeenStore", "ack_after", "idempotent", "replay"]

_FATAL = (ConsumerCrashed, ChannelClosed)   # the consumer died: never settle, let it propagate
_MAX_ATTEMPTS_TRACKED = 10_000              # per handler, for retries > 1 on classic queues


class SeenStore:
    """A bounded set of message ids already handled (oldest evicted first; `evictions` counts).

    Why bounded: a consumer runs for months; an unbounded set is a slow memory leak. An id
    evicted before its last redelivery could be handled twice, so size it to cover the
    redelivery window. In production the store and the effect must commit together (one DB
    transaction: "insert id; apply charge"), or a crash between them double-applies (id lost)
    or skips (effect lost). Chapter 02.
    """

    def __init__(self, max_ids: int = 10_000):
        self.max_ids = validate.integer("max_ids", max_ids, 1, 100_000_000)
        self._ids: OrderedDict = OrderedDict()
        self.evictions = 0

    def add(self, message_id) -> None:
        """Remember `message_id` (a str); refreshes its place if already there (LRU)."""
        if message_id is None:
            raise ValueError("message_id must be a str to deduplicate on, got None "
                             "(publish with Message(..., message_id=...))")
        if message_id in self._ids:
            self._ids.move_to_end(message_id)
            return
        self._ids[message_id] = None
        while len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)
            self.evictions += 1

    def __contains__(self, message_id) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def summary(self) -> dict:
        return {"ids": len(self._ids), "max_ids": self.max_ids, "evictions": self.evictions}


def _check(work, retries, journal):
    if not callable(work):
        raise ValueError(f"work must be a function taking the message, got {work!r}")
    retries = validate.integer("retries", retries, 0, 1000)
    if journal is not None and not callable(getattr(journal, "handled", None)):
        raise ValueError(f"journal must be a labkit.messaging.Journal or None, got {journal!r}")
    return retries


def _delivery_number(message, attempts: OrderedDict) -> int:
    """Which delivery of this message this is (1 = first).

    `x-delivery-count` (quorum queues) is exact. Else the handler counts deliveries per id
    (bounded), and the `redelivered` flag says "at least the 2nd" for an id it has not seen
    (another consumer, or this one before a restart, got it first). A message without an id
    that is redelivered counts as exhausted, so it can never loop.
    """
    count = message.headers.get("x-delivery-count") if message.headers else None
    if isinstance(count, int) and not isinstance(count, bool):
        return count + 1
    mid = message.message_id
    if mid is None:
        return 10 ** 9 if message.redelivered else 1
    n = attempts.get(mid, 0) + 1
    if message.redelivered:
        n = max(n, 2)
    attempts[mid] = n
    attempts.move_to_end(mid)
    while len(attempts) > _MAX_ATTEMPTS_TRACKED:
        attempts.popitem(last=False)
    return n


def _make_handler(work, retries, journal, store):
    attempts: OrderedDict = OrderedDict()

    async def handler(message) -> None:
        if store is not None and message.message_id is None:
            handler.dead_lettered += 1     # cannot deduplicate: never risk a double effect
            handler.errors.append("a message without message_id: rejected, not worked on")
            await message.reject(requeue=False)
            return
        if store is not None and message.message_id in store:
            handler.skipped += 1           # done before: ack the duplicate, skip the work
            await message.ack()
            handler.acked += 1
            return
        try:
            result = work(message)
            if inspect.isawaitable(result):
                await result
        except _FATAL:
            raise
        except Exception as e:
            handler.failures += 1
            handler.errors.append(f"{message.message_id!r}: {e!r}")
            if _delivery_number(message, attempts) <= retries:
                handler.requeued += 1
                await message.nack(requeue=True)
            else:
                attempts.pop(message.message_id, None)
                handler.dead_lettered += 1
                await message.reject(requeue=False)
            return
        if journal is not None:
            journal.handled(message)
        if store is not None:
            store.add(message.message_id)   # after the work, before the ack
        attempts.pop(message.message_id, None)
        await message.ack()
        handler.acked += 1

    handler.acked = handler.requeued = handler.dead_lettered = handler.failures = 0
    handler.skipped = 0
    handler.errors = deque(maxlen=20)       # the last 20 failures, for the notebook
    handler.retries = retries
    return handler


def ack_after(work, *, retries: int = 1, journal=None):
    """A consumer callback that acks only after `work(message)` succeeded (chapter 02).

    On an exception from `work`: `nack(requeue=True)` while the message has been delivered at
    most `retries` times (retries=1: the first delivery is retried, the redelivery is not),
    then `reject(requeue=False)`, so it goes to the dead-letter exchange instead of looping.
    `journal.handled(message)` is recorded after the work (the checker counts duplicates).
    ConsumerCrashed and ChannelClosed propagate unsettled: the consumer died, the broker
    redelivers. Counters on the handler: acked, requeued, dead_lettered, failures, errors.
    """
    return _make_handler(work, _check(work, retries, journal), journal, None)


def idempotent(work, *, store: SeenStore, retries: int = 1, journal=None):
    """As `ack_after`, but each message id is worked on once (chapter 02).

    A delivery whose id is already in `store` is acked without doing the work (counted in
    `handler.skipped`); the id is added after the work succeeded and before the ack, so a crash
    before the ack leads to a redelivery that is skipped, not a second charge. Messages must
    carry a `message_id`: one without is rejected (dead-lettered) unworked.
    """
    if not isinstance(store, SeenStore):
        raise ValueError(f"store must be a SeenStore, got {store!r}")
    return _make_handler(work, _check(work, retries, journal), journal, store)


def _origin(message):
    deaths = message.headers.get("x-death") if message.headers else None
    return deaths[0] if deaths else None


async def replay(channel, dead_letter_queue: str, *, to_exchange="", routing_key=None,
                 limit: int = 1000) -> int:
    """Move up to `limit` messages from a dead-letter queue back to work; returns how many.

    Each is published (same body, message id, headers, persistence; the broker's
    `x-delivery-count` removed) and only then its dead copy acked, so a crash in between
    duplicates rather than loses. `routing_key=None`: to the default exchange, the queue it
    died in (from `x-death`); to a named exchange, its original routing key. An unroutable
    message is put back in the dead-letter queue and ValueError is raised. `to_exchange`: ""
    (the default exchange), or the Exchange object `declare_exchange` returned. Chapter 02.
    """
    validate.text("dead_letter_queue", dead_letter_queue)
    validate.text("routing_key", routing_key, optional=True)
    limit = validate.integer("limit", limit, 0, 1_000_000)
    exchange = await _exchange(channel, to_exchange)
    to_exchange = exchange.name
    dlq = await channel.get_queue(dead_letter_queue)
    moved = 0
    while moved < limit:
        dead = await dlq.get(timeout_s=5.0)
        if dead is None:
            break
        key = routing_key
        if key is None:
            death = _origin(dead)
            if to_exchange == "":
                key = death.get("queue") if death else None
            else:
                keys = death.get("routing-keys") if death else None
                key = keys[0] if keys else dead.routing_key
            if not isinstance(key, str):
                await dead.nack(requeue=True)
                raise ValueError(f"routing_key: message {dead.message_id!r} has no x-death "
                                 "header to say where it came from; give routing_key=")
        headers = {k: v for k, v in (dead.headers or {}).items() if k != "x-delivery-count"}
        out = Message(dead.body, message_id=dead.message_id, headers=headers,
                      persistent=dead.persistent, correlation_id=dead.correlation_id,
                      reply_to=dead.reply_to)
        if not await exchange.publish(out, routing_key=key):
            await dead.nack(requeue=True)
            raise ValueError(f"routing_key {key!r} on exchange {to_exchange!r} routes to no "
                             f"queue; message {dead.message_id!r} stays in {dead_letter_queue!r}")
        await dead.ack()
        moved += 1
    return moved


async def _exchange(channel, to_exchange):
    """The exchange to publish to: "" (default), an Exchange object, or a name."""
    if hasattr(to_exchange, "publish") and isinstance(getattr(to_exchange, "name", None), str):
        return to_exchange
    validate.text("to_exchange", to_exchange)
    if to_exchange == "":
        return channel.default_exchange
    if hasattr(channel, "get_exchange"):
        return await channel.get_exchange(to_exchange)
    raise ValueError(f"to_exchange: this channel cannot look up exchange {to_exchange!r} by "
                     "name; pass the Exchange object that declare_exchange returned")
