"""The kitchen's cooks: the consumer side of `labkit.labs.kitchen.Kitchen` (chapter 02).

Kept apart from the producer and the knobs so each file stays short. `Cooks` is a mixin of
`Kitchen`: it keeps the consumers (`_Slot`s) matching the knobs (more cooks join, fewer
leave, a new prefetch re-opens them all, a cut-off or restarted one reconnects after
RECONNECT_S), runs each delivery through the handler one dish at a time per cook, draws
each dish's cooking time from the kitchen's seeded rng (`processing_dist`: "fixed",
"exponential" or "long_tail", mean `processing_ms`, with `labkit.sim.queueing`'s samplers),
declares the queue with its dead-letter exchange and queue, on RabbitMQ watches the
dead-letter queue and simulates crashes (`_crash_on_settle`), and at stop ends the handlers.
"""
from __future__ import annotations

import asyncio
import math
from collections import deque

from labkit import messaging
from labkit.messaging.api import AMQPError, ChannelClosed
from labkit.messaging.faults import ConsumerCrashed
from labkit.sim.queueing import Exponential, Fixed, LogNormal

__all__ = ["Cooks", "PROCESSING_DISTS", "LONG_TAIL_SIGMA", "RECONNECT_S", "MAX_CONSUMERS"]

PROCESSING_DISTS = ("fixed", "exponential", "long_tail")
LONG_TAIL_SIGMA = 1.0       # long_tail: lognormal, p99 about 10x the median, same mean
MAX_COOK_S = 60.0           # one dish never takes longer than this (a long tail, bounded)
COOK_TIMES_KEPT = 1000      # the last dishes' cooking times (ms), for charts and tests
RECONNECT_S = 0.5           # a consumer cut off (or a restarted broker) comes back after this
MAX_CONSUMERS = 20


def processing(dist: str, mean_ms: float):
    """The `labkit.sim.queueing` distribution for a processing time of mean `mean_ms`."""
    mean_s = mean_ms / 1000.0
    if mean_s <= 0 or dist == "fixed":
        return Fixed(mean_s)
    if dist == "exponential":
        return Exponential(mean_s)
    return LogNormal(math.log(mean_s) - LONG_TAIL_SIGMA ** 2 / 2, LONG_TAIL_SIGMA)


class _Slot:
    """One consumer: its number (1..), connection (embedded) and channel."""

    def __init__(self, number, conn, channel):
        self.number, self.conn, self.channel = number, conn, channel
        self.lost_at = None            # loop time it was found closed (cut off, restart)

    @property
    def closed(self) -> bool:
        return self.channel.is_closed or (self.conn is not None and self.conn.is_closed)


class Cooks:
    """The consumer half of a Kitchen (a mixin: it uses the kitchen's knobs, rng, journal)."""

    def _init_cooks(self) -> None:
        """Called by Kitchen.__init__ once knobs, rng and journal are set."""
        self._slots: list[_Slot] = []
        self._handlers = set()
        self.cook_times_ms: deque = deque(maxlen=COOK_TIMES_KEPT)   # drawn times, newest last
        self._new_sampler()

    def _new_sampler(self) -> None:
        """Rebuild the draw after processing_ms or processing_dist changed."""
        dist = processing(self.knobs["processing_dist"], self.knobs["processing_ms"])
        self._cook_time_s = dist.sampler(self._rng)

    # ---- queues -------------------------------------------------------------------------
    async def _connection(self):
        return await messaging.connect(broker=self.broker) if self.embedded else self.conn

    async def _declare(self, delivery_limit: int) -> None:
        """The durable queue (quorum, with `delivery_limit` and a dead-letter exchange + queue
        when dead_letter), its orders exchange and binding."""
        conn = await self._connection()
        ch = await conn.channel()
        args = None
        if self.dead_letter:
            dlx = await ch.declare_exchange(f"{self.queue}.dlx", "fanout", durable=True)
            dlq = await ch.declare_queue(f"{self.queue}.dlq", durable=True)
            await dlq.bind(dlx)
            self.dlq_name = dlq.name
            args = {"x-queue-type": "quorum", "x-delivery-limit": delivery_limit,
                    "x-dead-letter-exchange": dlx.name}
        q = await ch.declare_queue(self.queue, durable=True, arguments=args)
        ex = await ch.declare_exchange(f"{self.queue}.orders", "direct", durable=True)
        await q.bind(ex, routing_key="order")
        self.queue_name, self.exchange_name = q.name, ex.name
        self._args = args
        await (conn.close() if self.embedded else ch.close())

    async def _stop_cooks(self) -> None:
        """Close the status and dead-letter channels and end the handlers still cooking."""
        me = asyncio.current_task()
        for name in ("_dlq_channel", "_status_channel"):
            ch = self.__dict__.get(name)
            if ch is not None and not ch.is_closed:
                await asyncio.wait_for(ch.close(), 2.0)
        handlers = [t for t in self._handlers if t is not me]
        for t in handlers:
            t.cancel()
        if handlers:
            await asyncio.wait(handlers, timeout=5)

    # ---- the work -----------------------------------------------------------------------
    async def _work(self, message) -> None:
        seconds = min(self._cook_time_s(), MAX_COOK_S)
        self.cook_times_ms.append(seconds * 1000.0)
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def _handle(self, message, stove: asyncio.Lock) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        self._in_flight += 1
        try:
            if not self.embedded and self._rng.random() < self.knobs["crash_rate"]:
                _crash_on_settle(message)
            handler = self._idem if self.knobs["idempotent"] else self._plain
            async with stove:                  # one dish at a time per cook
                await handler(message)
        except ConsumerCrashed:
            self.crashes += 1
        except (ChannelClosed, AMQPError, ConnectionError):
            self.settle_failures += 1          # cut off or restarted: the broker redelivers
        finally:
            self._in_flight -= 1
            self._handlers.discard(task)

    # ---- consumers ----------------------------------------------------------------------
    async def _supervise(self) -> None:
        dlq = None
        try:
            while self.running:          # (3.11's wait_for can swallow a cancel: not used here)
                await self._reconcile()
                if not self.embedded:
                    dlq = dlq or await self._watch_dead_letters()
                    q = await self._status_channel.get_queue(self.queue_name)
                    self._ready = (await q.status())["ready"]
                for _ in range(10):          # up to 0.1 s, or until a knob change wakes us
                    if self._wake.is_set():
                        break
                    await asyncio.sleep(0.01)
                self._wake.clear()
        finally:
            await self._close_slots(list(self._slots))

    async def _watch_dead_letters(self):
        self._status_channel = await self.conn.channel()
        if not self.dead_letter:
            return True
        ch = await self.conn.channel()
        q = await ch.get_queue(self.dlq_name)

        async def seen(message):                   # the amqp backend records the x-death
            await message.ack()
        await q.consume(seen)
        self._dlq_channel = ch
        return ch

    async def _reconcile(self) -> None:
        now = self.loop.time()
        if self._reopen:
            self._reopen = False
            self.reopens += 1
            await self._close_slots(list(self._slots))
        for slot in [s for s in self._slots if s.closed]:
            slot.lost_at = slot.lost_at if slot.lost_at is not None else now
            if now - slot.lost_at >= RECONNECT_S:
                await self._close_slots([slot])
        want = self.knobs["consumers"]
        while len(self._slots) > want:
            await self._close_slots([max(self._slots, key=lambda s: s.number)])
        while len(self._slots) < want:
            used = {s.number for s in self._slots}
            number = next(n for n in range(1, MAX_CONSUMERS + 2) if n not in used)
            try:
                conn = await self._connection()
                ch = await conn.channel()
                await ch.set_qos(prefetch_count=self.knobs["prefetch"])
                q = await ch.declare_queue(self.queue_name, durable=True, arguments=self._args)
                stove = asyncio.Lock()
                await q.consume(lambda message, stove=stove: self._handle(message, stove))
            except (AMQPError, ConnectionError) as e:
                self.last_error = f"consumer {number}: {type(e).__name__}: {e}"[:200]
                return                              # tried again at the next round
            self._slots.append(_Slot(number, conn if self.embedded else None, ch))
            self._slots.sort(key=lambda s: s.number)

    async def _close_slots(self, slots) -> None:
        for slot in slots:
            if slot in self._slots:
                self._slots.remove(slot)
            try:
                if slot.conn is not None:
                    await slot.conn.close(timeout_s=2.0)   # also ends its handler tasks
                else:
                    await asyncio.wait_for(slot.channel.close(), 2.0)
            except Exception as e:  # noqa: BLE001 - a broken channel is closed anyway
                self.last_error = f"closing consumer {slot.number}: {e!r}"[:200]


def _crash_on_settle(message) -> None:
    """RabbitMQ: make this delivery's ack a nack with requeue, then raise ConsumerCrashed
    (after the work), so the message comes back redelivered as after a real crash."""
    send = message._send

    async def crashed(how, requeue):
        await send("nack", True)
        raise ConsumerCrashed(f"simulated crash before settling {message.message_id!r}")
    message._send = crashed
