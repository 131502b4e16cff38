"""The client API (`labkit.messaging.api`) on a real RabbitMQ, through aio-pika (chapter 02).

The same names and outcomes as the embedded backend: errors are mapped to labkit's
(`PreconditionFailed`, `NotFound`, `ResourceLocked`, `ChannelClosed`, `BrokerUnavailable`),
`publish` waits for the publisher confirm and returns False when the broker returns the
message as unroutable (`mandatory`). Learners who know aio-pika recognise every call.

A real broker does not tell the client what it did, so this backend records the events the
client sees into its journal: published, confirmed, returned, delivered (redelivered flag),
acked, nacked, rejected, and dead_lettered, inferred from the newest `x-death` entry of a
message delivered from a dead-letter queue (so dead letters count only once consumed; a
bounded memory of the last 100 000 keeps each counted once). Broker-side drops (maxlen
without a dead-letter exchange, unroutable without mandatory) are invisible here: the
checker counts them as lost, which is what they are.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
from collections import OrderedDict

import aio_pika
import aiormq.exceptions as amqp_errors
from aio_pika.exceptions import MessageProcessError

from labkit._core import validate
from labkit.messaging.api import (BrokerUnavailable, ChannelClosed, IncomingMessage, Message,
                                  NotFound, PreconditionFailed, ResourceLocked, AMQPError)
from labkit.messaging.journal import Journal

__all__ = ["connect", "Connection"]

_SEEN_DEATHS = 100_000


@contextlib.contextmanager
def _mapped():
    """aio-pika/aiormq errors as labkit's (same classes on both backends)."""
    try:
        yield
    except amqp_errors.ChannelPreconditionFailed as e:
        raise PreconditionFailed(str(e)) from e
    except amqp_errors.ChannelNotFoundEntity as e:
        raise NotFound(str(e)) from e
    except amqp_errors.ChannelLockedResource as e:
        raise ResourceLocked(str(e)) from e
    except (amqp_errors.ChannelClosed, amqp_errors.ChannelInvalidStateError) as e:
        raise ChannelClosed(f"the channel is closed ({e}); open a new one") from e
    except amqp_errors.DeliveryError as e:
        raise AMQPError(f"the broker refused the message (publisher confirm nack): {e}") from e


async def connect(url: str, *, journal: Journal | None = None, timeout_s: float = 5.0):
    """Connect to RabbitMQ at `url`; `BrokerUnavailable` in one sentence if none answers."""
    timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
    shown = re.sub(r"//[^@/]*@", "//", url)     # never print the password
    try:
        conn = await asyncio.wait_for(aio_pika.connect(url, timeout=timeout_s), timeout_s)
    except (OSError, asyncio.TimeoutError, amqp_errors.AMQPError) as e:
        raise BrokerUnavailable(
            f"No RabbitMQ answered at {shown} ({type(e).__name__}); start one, or use the "
            f"embedded broker: labkit.messaging.connect()") from None
    return Connection(conn, journal if journal is not None else Journal())


class Connection:
    backend = "rabbitmq"

    def __init__(self, conn, journal: Journal):
        self._conn, self.journal = conn, journal
        self._deaths: OrderedDict = OrderedDict()

    @property
    def is_closed(self) -> bool:
        return self._conn.is_closed

    async def channel(self, publisher_confirms: bool = True) -> "Channel":
        validate.boolean("publisher_confirms", publisher_confirms)
        with _mapped():
            return Channel(self, await self._conn.channel(publisher_confirms=True))

    async def close(self, timeout_s: float = 5.0) -> None:
        timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
        if not self._conn.is_closed:
            await asyncio.wait_for(self._conn.close(), timeout_s)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def _saw_death(self, message) -> None:
        deaths = (message.headers or {}).get("x-death") or []
        if not deaths:
            return
        d = deaths[0]
        key = (message.message_id, d.get("queue"), d.get("reason"), d.get("count"))
        if key in self._deaths:
            return
        self._deaths[key] = True
        if len(self._deaths) > _SEEN_DEATHS:
            self._deaths.popitem(last=False)
        self.journal.record("dead_lettered", message.message_id, str(d.get("queue")),
                            str(d.get("reason")))


class Channel:
    def __init__(self, connection: Connection, channel):
        self.connection, self._ch = connection, channel
        self.default_exchange = Exchange(self, channel.default_exchange)

    @property
    def is_closed(self) -> bool:
        return self._ch.is_closed

    async def set_qos(self, prefetch_count: int = 0) -> None:
        with _mapped():
            await self._ch.set_qos(
                prefetch_count=validate.integer("prefetch_count", prefetch_count, 0, 65535))

    async def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                               auto_delete: bool = False) -> "Exchange":
        with _mapped():
            return Exchange(self, await self._ch.declare_exchange(
                name, type, durable=validate.boolean("durable", durable),
                auto_delete=validate.boolean("auto_delete", auto_delete)))

    async def declare_queue(self, name: str = "", *, durable: bool = False,
                            exclusive: bool = False, auto_delete: bool = False,
                            arguments: dict | None = None) -> "Queue":
        with _mapped():
            return Queue(self, await self._ch.declare_queue(
                name, durable=validate.boolean("durable", durable),
                exclusive=validate.boolean("exclusive", exclusive),
                auto_delete=validate.boolean("auto_delete", auto_delete), arguments=arguments))

    async def get_queue(self, name: str) -> "Queue":
        """The existing queue `name` (a passive declare: NotFound if there is none)."""
        with _mapped():
            return Queue(self, await self._ch.get_queue(name, ensure=True))

    async def get_exchange(self, name: str) -> "Exchange":
        """The existing exchange `name` (a passive declare: NotFound if there is none)."""
        with _mapped():
            return Exchange(self, await self._ch.get_exchange(name, ensure=True))

    async def queue_delete(self, name: str) -> int:
        with _mapped():
            ok = await self._ch.queue_delete(name)
        return getattr(ok, "message_count", 0) or 0

    async def exchange_delete(self, name: str) -> None:
        with _mapped():
            await self._ch.exchange_delete(name)

    async def close(self) -> None:
        if not self._ch.is_closed:
            await self._ch.close()


class Exchange:
    def __init__(self, channel: Channel, exchange):
        self.channel, self._ex, self.name = channel, exchange, exchange.name

    def __repr__(self):
        return f"<Exchange {self.name!r} (rabbitmq)>"

    async def publish(self, message: Message, routing_key: str, *, mandatory: bool = True,
                      timeout_s: float = 5.0) -> bool:
        """Publish and wait for the confirm; False if the broker returned it, else True."""
        if not isinstance(message, Message):
            raise ValueError(f"message must be a labkit.messaging.Message, got {message!r}")
        timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
        journal = self.channel.connection.journal
        mode = aio_pika.DeliveryMode.PERSISTENT if message.persistent else \
            aio_pika.DeliveryMode.NOT_PERSISTENT
        out = aio_pika.Message(bytes(message.body), message_id=message.message_id,
                               headers=dict(message.headers), delivery_mode=mode,
                               correlation_id=message.correlation_id, reply_to=message.reply_to)
        journal.record("published", message.message_id, self.name)
        with _mapped():
            result = await self._ex.publish(out, routing_key,
                                            mandatory=validate.boolean("mandatory", mandatory),
                                            timeout=timeout_s)
        journal.record("confirmed", message.message_id, self.name)
        returned = type(getattr(result, "delivery", None)).__name__ == "Return"
        if returned:
            journal.record("returned", message.message_id, self.name)
        return not returned

    async def delete(self) -> None:
        await self.channel.exchange_delete(self.name)


class _Delivery(IncomingMessage):
    def __init__(self, raw, connection: Connection, queue: str):
        super().__init__(body=raw.body, message_id=raw.message_id, headers=dict(raw.headers or {}),
                         redelivered=bool(raw.redelivered), exchange=raw.exchange or "",
                         routing_key=raw.routing_key or "", delivery_tag=raw.delivery_tag,
                         queue=queue,
                         persistent=raw.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
                         correlation_id=raw.correlation_id, reply_to=raw.reply_to)
        self._raw, self._connection = raw, connection

    async def _send(self, how, requeue):
        journal = self._connection.journal
        with _mapped():
            try:
                if how == "ack":
                    await self._raw.ack()
                elif how == "nack":
                    await self._raw.nack(requeue=requeue)
                else:
                    await self._raw.reject(requeue=requeue)
            except MessageProcessError as e:
                raise ChannelClosed(f"cannot {how}: {e}") from e
        kind = {"ack": "acked", "nack": "nacked", "reject": "rejected"}[how]
        journal.record(kind, self.message_id, self.queue, requeue=requeue and how != "ack")


class Queue:
    def __init__(self, channel: Channel, queue):
        self.channel, self._q, self.name = channel, queue, queue.name

    def __repr__(self):
        return f"<Queue {self.name!r} (rabbitmq)>"

    def _wrap(self, raw, no_ack: bool) -> _Delivery:
        conn = self.channel.connection
        d = _Delivery(raw, conn, self.name)
        conn.journal.record("delivered", d.message_id, self.name, redelivered=d.redelivered)
        conn._saw_death(d)
        if no_ack:
            d.processed = True
            conn.journal.record("acked", d.message_id, self.name, "auto")
        return d

    async def bind(self, exchange, routing_key: str = "") -> None:
        with _mapped():
            await self._q.bind(getattr(exchange, "name", exchange), routing_key)

    async def unbind(self, exchange, routing_key: str = "") -> None:
        with _mapped():
            await self._q.unbind(getattr(exchange, "name", exchange), routing_key)

    async def consume(self, callback, *, no_ack: bool = False) -> str:
        if not callable(callback):
            raise ValueError(f"callback must be an async function, got {callback!r}")
        no_ack = validate.boolean("no_ack", no_ack)

        async def on_message(raw):
            await callback(self._wrap(raw, no_ack))
        with _mapped():
            return await self._q.consume(on_message, no_ack=no_ack)

    async def cancel(self, consumer_tag: str) -> None:
        with _mapped():
            await self._q.cancel(consumer_tag)

    async def get(self, *, no_ack: bool = False, timeout_s: float = 5.0):
        timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
        no_ack = validate.boolean("no_ack", no_ack)
        with _mapped():
            raw = await self._q.get(no_ack=no_ack, fail=False, timeout=timeout_s)
        return None if raw is None else self._wrap(raw, no_ack)

    async def status(self) -> dict:
        """{"ready": messages waiting, "consumers": count}, from a passive declare."""
        with _mapped():
            q = await self.channel._ch.declare_queue(self.name, passive=True)
        result = q.declaration_result
        return {"ready": result.message_count, "consumers": result.consumer_count}

    async def purge(self) -> int:
        with _mapped():
            ok = await self._q.purge()
        return getattr(ok, "message_count", 0) or 0

    async def delete(self) -> int:
        return await self.channel.queue_delete(self.name)
