"""An in-process asyncio message broker with RabbitMQ's AMQP 0-9-1 semantics (chapter 02).

Why labkit has its own broker instead of using a library: the chapter is about the mechanism
(who holds a message, when it comes back, where it goes when it dies), so the mechanism must
be readable here in a few hundred lines; and it must run inside `labkit.sim`'s virtual time, so
a 10^5-message experiment takes seconds and is reproducible. It reads time only from the
running loop and does no I/O. The same learner code runs on a real RabbitMQ through
`labkit.messaging.amqp`, and tests/messaging checks both observe the same outcomes.

What it follows (RabbitMQ 3.10 as measured by the conformance suite): exchanges direct,
fanout, topic (`*`, `#`) and the default exchange; bindings; publisher confirms; `mandatory`
returns; per-consumer prefetch windows with round-robin dispatch; ack, nack/reject with or
without requeue; `redelivered` on requeued messages and on the unacked messages of a closed
channel, which go back to their original position (classic queues); dead-lettering with
`x-death` (count, reason, queue, exchange, routing-keys) and `x-first-death-*` for the reasons
rejected, expired (`x-message-ttl`, expiry at the head of the queue, the original expiry
kept on requeue), maxlen (`x-max-length`, drop-head, ready messages only) and delivery_limit
(`x-queue-type: quorum` with `x-delivery-limit`; `x-delivery-count` on every delivery, 0 the
first time). Quorum queues as RabbitMQ 3.10 does them: returned messages (channel closed,
or nack/reject requeue when a delivery limit is set) go to the head in the order returned;
nack/reject requeue without a delivery limit goes to the back. A re-declare with other
flags or arguments raises PreconditionFailed; errors close the channel they happened on.
Exclusive queues vanish when their connection closes, auto-delete queues when their last
consumer goes (cancel or channel close). `basic.cancel` keeps the consumer's unacked
messages on the channel (they can still be acked); closing the channel returns them.

Where it knowingly differs: one vhost, no users or permissions; no persistence and no
clustering (durable/persistent only matter to the fault model's restart); confirms come at
once (RabbitMQ confirms persistent messages after an fsync); `x-death` `time` is loop time
in seconds, not a timestamp; no per-message `expiration`, `x-max-length-bytes`, `x-overflow`
other than drop-head, `x-expires`, priorities, streams, headers exchanges, exchange-to-exchange
bindings, alternate exchanges, transactions or `basic.recover`; arguments are compared whole
on re-declare (RabbitMQ compares a fixed list); `x-max-length` is not re-applied after a
requeue; `amq.*` names are not reserved for new exchanges and queues; an unknown exchange
type or deleting a built-in exchange raises PreconditionFailed (RabbitMQ: a connection error
or ACCESS_REFUSED); message TTL 0 is kept for a consumer with room at
publish time, else expires at once. Delivery is immediate: `publish` returns after the
consumer's handler task was created (RabbitMQ pushes it over the network later), so timings
and interleavings differ, never outcomes. Quorum behaviour is RabbitMQ 3.10's (4.x returns
messages to the back and sets a default delivery limit of 20). Bounded: the journal keeps the
last `max_events` events; handler errors the last 20 (`log_handler_errors=True`, as
`labkit.broker()` sets it, also logs the first LOGGED_ERRORS of them as warnings).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque

from labkit.messaging import routing, tracing
from labkit.messaging.api import ChannelClosed, IncomingMessage, Message, PreconditionFailed
from labkit.messaging.journal import Journal
from labkit.messaging.topology import Topology
from labkit.messaging.model import (HEAD, ChannelState, ConsumerState, ExchangeState, QueueState,
                                    StoredMessage, dead_letter_headers)

__all__ = ["Broker", "ChannelState", "LOGGED_ERRORS"]

LOGGED_ERRORS = 5        # handler errors a broker with log_handler_errors writes to the log
_log = logging.getLogger("labkit.messaging")


class _Delivery(IncomingMessage):
    def __init__(self, broker, channel, **kw):
        super().__init__(**kw)
        self._broker, self._channel = broker, channel

    crashed = False     # set by the fault model: the handler "dies" when it tries to settle

    async def _send(self, how, requeue):
        if self.crashed:
            self._broker.crash(self._channel, self.delivery_tag)
            from labkit.messaging.faults import ConsumerCrashed
            raise ConsumerCrashed(f"fault model: the consumer died before it could {how} "
                                  f"{self.message_id!r}; the broker will redeliver it")
        self._broker.settle(self._channel, self.delivery_tag, how, requeue)


class Broker(Topology):
    """The embedded broker. Use it through `labkit.messaging.connect(broker=...)`.

    `journal` holds its event records (the last `max_events`, plus counters).
    `queue_info(name)` gives ready/unacked/consumer counts for live views.
    """

    def __init__(self, *, max_events: int = 10_000, log_handler_errors: bool = False):
        self.journal = Journal(max_events)
        self.log_handler_errors, self._logged = log_handler_errors, 0   # labkit.broker(): True
        self.exchanges: dict[str, ExchangeState] = {
            "": ExchangeState("", "direct", True, False),
            "amq.direct": ExchangeState("amq.direct", "direct", True, False),
            "amq.fanout": ExchangeState("amq.fanout", "fanout", True, False),
            "amq.topic": ExchangeState("amq.topic", "topic", True, False)}
        self.queues: dict[str, QueueState] = {}
        self.handler_errors: deque[str] = deque(maxlen=20)
        self.faults = None                 # a labkit.messaging.faults.BrokerFaults, when set
        self._connections: dict = {}       # owner id -> embedded Connection
        self._pos = itertools.count(1)
        self._ids = itertools.count(1)
        self._tasks: dict[asyncio.Task, int] = {}          # running handler -> connection

    # ---- publishing ---------------------------------------------------------------------
    def publish(self, ch: ChannelState, exchange: str, routing_key: str, message: Message,
                mandatory: bool) -> bool:
        """Route and enqueue; True if at least one queue took it (recorded as confirmed)."""
        self._open(ch)
        ex = self._exchange(ch, exchange)
        self.journal.record("published", message.message_id, exchange)
        routed = tracing.publish(self._route, ex, routing_key, message, exchange)   # ch. 07
        self.journal.record("confirmed", message.message_id, exchange)
        if not routed:
            self.journal.record("returned" if mandatory else "unroutable", message.message_id,
                                exchange)
        return routed

    def _route(self, ex, routing_key, message, exchange_name, headers) -> bool:
        if ex.name == "":
            names = [routing_key] if routing_key in self.queues else []
        else:
            names = list(dict.fromkeys(qn for qn, key in ex.bindings
                                       if routing.matches(ex.type, key, routing_key)))
        for qn in names:
            self._enqueue(self.queues[qn], StoredMessage(message, exchange_name, routing_key,
                                                dict(headers)))
        return bool(names)

    def _enqueue(self, q: QueueState, m: StoredMessage) -> None:
        now = asyncio.get_running_loop().time()
        m.pos = next(self._pos)
        if q.ttl_s is not None:
            m.expires_at = now + q.ttl_s
        heapq.heappush(q.ready, (m.pos, m))
        self._dispatch(q)
        if q.max_length is not None:
            while len(q.ready) > q.max_length:
                self._dead_letter(q, heapq.heappop(q.ready)[1], "maxlen")
        if q.ttl_s == 0:
            self._expire(q)
        self._arm_timer(q)

    # ---- delivery -----------------------------------------------------------------------
    def consume(self, ch: ChannelState, queue: str, callback, no_ack: bool) -> str:
        q = self._queue(ch, queue)
        self._check_owner(ch, q)
        tag = f"ctag-{next(self._ids)}"
        c = ConsumerState(tag, q, ch, callback, no_ack, ch.prefetch)
        ch.consumers[tag] = c
        q.consumers.append(c)
        q.had_consumer = True
        self._dispatch(q)
        return tag

    def cancel(self, ch: ChannelState, tag: str) -> None:
        """Stop a consumer; its unacked messages stay on the channel (as in RabbitMQ)."""
        c = ch.consumers.pop(tag, None)
        if c is None:
            return
        q = c.queue
        if c in q.consumers:
            q.consumers.remove(c)
        if q.auto_delete and not q.consumers and self.queues.get(q.name) is q:
            self._drop_queue(q)

    def get(self, ch: ChannelState, queue: str, no_ack: bool) -> IncomingMessage | None:
        q = self._queue(ch, queue)
        self._check_owner(ch, q)
        self._expire(q)
        if not q.ready:
            return None
        return self._deliver(q, heapq.heappop(q.ready)[1], ch, None, no_ack)

    def _dispatch(self, q: QueueState) -> None:
        consumers = q.consumers
        while q.ready and consumers:
            for _ in range(len(consumers)):
                if consumers[0].has_room():
                    break
                consumers.rotate(-1)
            else:
                return
            self._expire(q, inclusive=False)
            if not q.ready:
                return
            c = consumers[0]
            consumers.rotate(-1)
            delivery = self._deliver(q, heapq.heappop(q.ready)[1], c.channel, c, c.no_ack)
            task = asyncio.get_running_loop().create_task(self._call(c, delivery))
            self._tasks[task] = c.channel.owner
            task.add_done_callback(self._forget)

    async def _call(self, c: ConsumerState, delivery: IncomingMessage) -> None:
        try:
            if self.faults is not None:
                await self.faults.before_handler(delivery)
            await tracing.consume(c.callback, delivery)     # chapter 07: a consumer span
        except asyncio.CancelledError:
            raise
        except Exception as e:  # as aio-pika: the error is logged, the message stays unacked
            self.handler_errors.append(f"{c.tag} {delivery.message_id!r}: {e!r}")
            if self.log_handler_errors and self._logged < LOGGED_ERRORS:
                self._logged += 1        # the rest only in handler_errors: bounded noise
                _log.warning("the handler of %s raised %r on message %r; it stays unacked "
                             "until its channel closes", c.tag, e, delivery.message_id)

    def _deliver(self, q, m: StoredMessage, ch: ChannelState, c: ConsumerState | None,
                 no_ack: bool):
        ch.next_tag += 1
        tag = ch.next_tag
        headers = dict(m.headers)
        if q.type == "quorum":
            headers["x-delivery-count"] = m.delivery_count
        self.journal.record("delivered", m.message_id, q.name, redelivered=m.redelivered)
        if no_ack:
            self.journal.record("acked", m.message_id, q.name, "auto")
        else:
            ch.unacked[tag] = (m, q.name, c)
            q.unacked += 1
            if c is not None:
                c.unacked += 1
        d = _Delivery(self, ch, body=m.body, message_id=m.message_id, headers=headers,
                      redelivered=m.redelivered, exchange=m.exchange, routing_key=m.routing_key,
                      delivery_tag=tag, queue=q.name, persistent=m.persistent,
                      correlation_id=m.correlation_id, reply_to=m.reply_to)
        d.processed = no_ack      # an auto-acked delivery cannot be settled again
        return d

    def settle(self, ch: ChannelState, tag: int, how: str, requeue: bool) -> None:
        """ack / nack / reject one delivery (an unknown tag closes the channel, as in AMQP)."""
        self._open(ch)
        entry = ch.unacked.pop(tag, None)
        if entry is None:
            self._fail(ch, PreconditionFailed(f"PRECONDITION_FAILED - unknown delivery tag {tag}"))
        m, qname, c = entry
        kind = {"ack": "acked", "nack": "nacked", "reject": "rejected"}[how]
        self.journal.record(kind, m.message_id, qname, requeue=requeue and how != "ack")
        q = self._release(qname, c)
        if how != "ack":
            if q is None:
                self.journal.record("dropped", m.message_id, qname, "deleted")
            elif requeue:
                self._return(q, m, "nack" if q.delivery_limit is None else "return")
            else:
                self._dead_letter(q, m, "rejected")
        if q is not None:
            self._dispatch(q)
            self._arm_timer(q)

    def crash(self, ch: ChannelState, tag: int) -> None:
        """The consumer died holding this delivery: it goes back as on a closed channel."""
        entry = ch.unacked.pop(tag, None)
        if entry is None:
            return
        m, qname, c = entry
        q = self._release(qname, c)
        if q is None:
            self.journal.record("dropped", m.message_id, qname, "deleted")
            return
        self._return(q, m, "return")
        self._dispatch(q)
        self._arm_timer(q)

    def _release(self, qname, c):
        if c is not None:
            c.unacked -= 1
        q = self.queues.get(qname)
        if q is not None:
            q.unacked -= 1
        return q

    def _return(self, q: QueueState, m: StoredMessage, how: str) -> None:
        """Put a message back: classic at its old position; quorum as RabbitMQ 3.10 does."""
        m.redelivered = True
        if q.type == "quorum":
            m.delivery_count += 1
            if q.delivery_limit is not None and m.delivery_count > q.delivery_limit:
                self._dead_letter(q, m, "delivery_limit")
                return
            m.pos = next(self._pos) + (HEAD if how == "return" else 0)
        self.journal.record("requeued", m.message_id, q.name, how)
        heapq.heappush(q.ready, (m.pos, m))

    def close_channel(self, ch: ChannelState, reason: str = "closed") -> None:
        """Cancel its consumers and return its unacked messages (redelivered, in place)."""
        self.close_channels([ch], reason)

    def close_channels(self, channels, reason: str) -> None:
        """Close several at once (a connection): no consumer of one gets another's returns."""
        channels = [ch for ch in channels if not ch.closed]
        for ch in channels:
            ch.closed, ch.close_reason = True, reason
            for tag in list(ch.consumers):
                self.cancel(ch, tag)
        touched = {}
        entries = [e for ch in channels for e in ch.unacked.values()]
        for m, qname, c in sorted(entries, key=lambda e: e[0].pos):
            q = self._release(qname, c)
            if q is None:
                self.journal.record("dropped", m.message_id, qname, "deleted")
            else:
                self._return(q, m, "return")
                touched[q.name] = q
        for ch in channels:
            ch.unacked.clear()
        for q in touched.values():
            self._dispatch(q)
            self._arm_timer(q)

    def close_connection(self, owner: int) -> None:
        """Exclusive queues of the connection vanish with it."""
        for q in [q for q in self.queues.values() if q.exclusive and q.owner == owner]:
            self._drop_queue(q)

    # ---- dead letters and expiry ---------------------------------------------------------
    def _dead_letter(self, q: QueueState, m: StoredMessage, reason: str) -> None:
        ex = self.exchanges.get(q.dlx) if q.dlx is not None else None
        if ex is None:
            self.journal.record("dropped", m.message_id, q.name, reason)
            return
        headers = dead_letter_headers(m.headers, q.name, reason, m.exchange, m.routing_key,
                                      asyncio.get_running_loop().time())
        key = q.dlrk if q.dlrk is not None else m.routing_key
        out = Message(m.body, message_id=m.message_id, headers={}, persistent=m.persistent,
                      correlation_id=m.correlation_id, reply_to=m.reply_to)
        if self._route(ex, key, out, ex.name, headers):
            self.journal.record("dead_lettered", m.message_id, q.name, reason)
        else:
            self.journal.record("dropped", m.message_id, q.name,
                                f"{reason}, dead letter unroutable")

    def _expire(self, q: QueueState, inclusive: bool = True) -> None:
        if q.ttl_s is None:
            return
        now = asyncio.get_running_loop().time()
        while q.ready:
            m = q.ready[0][1]
            if m.expires_at < now or (m.expires_at == now and (inclusive or q.ttl_s > 0)):
                heapq.heappop(q.ready)
                self._dead_letter(q, m, "expired")
            else:
                break

    def _arm_timer(self, q: QueueState) -> None:
        """One timer per queue, at the expiry of the message at its head."""
        if q.ttl_s is None or not q.ready or self.queues.get(q.name) is not q:
            return
        when = q.ready[0][1].expires_at
        if q.timer is not None:
            if q.timer.when() <= when and not q.timer.cancelled():
                return
            q.timer.cancel()
        q.timer = asyncio.get_running_loop().call_at(when, self._on_timer, q)

    def _on_timer(self, q: QueueState) -> None:
        q.timer = None
        self._expire(q)
        self._dispatch(q)
        self._arm_timer(q)

    # ---- helpers ------------------------------------------------------------------------
    def _drop_queue(self, q: QueueState) -> int:
        n = len(q.ready)
        self.queues.pop(q.name, None)
        for ex in self.exchanges.values():
            ex.bindings = [b for b in ex.bindings if b[0] != q.name]
        for _, m in q.ready:
            self.journal.record("dropped", m.message_id, q.name, "deleted")
        q.ready.clear()
        if q.timer is not None:
            q.timer.cancel()
        for c in list(q.consumers):
            c.channel.consumers.pop(c.tag, None)
        q.consumers.clear()
        return n

    def _open(self, ch: ChannelState) -> None:
        if ch.closed:
            raise ChannelClosed(f"the channel is closed ({ch.close_reason}); open a new one "
                                "with `await connection.channel()`")

    def _fail(self, ch: ChannelState, error: Exception):
        """Raise a channel error and close the channel, as an AMQP broker does."""
        self.close_channel(ch, f"{type(error).__name__}: {error}")
        raise error

    def queue_info(self, name: str) -> dict:
        """Ready and unacked message counts and consumers of a queue (KeyError if none)."""
        q = self.queues[name]
        return {"ready": len(q.ready), "unacked": q.unacked, "consumers": len(q.consumers)}

    def _forget(self, task) -> None:
        self._tasks.pop(task, None)

    def cancel_handlers(self, owner: int | None = None) -> list[asyncio.Task]:
        """Cancel running handler tasks (all, or those of one connection); returns them."""
        tasks = [t for t, o in self._tasks.items() if owner is None or o == owner]
        for task in tasks:
            task.cancel()
        return tasks
