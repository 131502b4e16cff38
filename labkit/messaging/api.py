"""The client API learner code uses, the same on the embedded broker and on RabbitMQ.

Modelled on aio-pika's names, kept to what chapter 02 needs::

    conn = await messaging.connect()                     # embedded broker (virtual-time safe)
    conn = await messaging.connect("amqp://guest:guest@127.0.0.1:5672/")   # real RabbitMQ
    ch = await conn.channel()                            # publisher confirms always on
    await ch.set_qos(prefetch_count=10)                  # window for consumers made after
    ex = await ch.declare_exchange("orders", "topic")    # direct, fanout or topic
    q = await ch.declare_queue("kitchen", durable=True, arguments={"x-message-ttl": 60_000})
    await q.bind(ex, routing_key="order.*")              # ch.get_queue(name): an existing one
    await q.status()                                     # {"ready": 3, "consumers": 1}
    await ex.publish(Message(b"..", message_id="o-1", persistent=True), routing_key="order.new")
    tag = await q.consume(handler)                       # async def handler(message): ...
    await message.ack() / message.nack(requeue=False) / message.reject(requeue=False)
    await q.cancel(tag); await ch.close(); await conn.close()

Publisher confirms are always on (`channel(publisher_confirms=...)` is accepted for aio-pika's
sake). `publish` returns False when the broker hands an unroutable `mandatory` message back.
Errors follow AMQP's: a refused operation raises a `ChannelError` subclass and closes its
channel, as RabbitMQ does. Times are seconds (`timeout_s`); `x-message-ttl` is ms, as in AMQP.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from labkit._core import validate

__all__ = ["AMQPError", "ChannelError", "PreconditionFailed", "NotFound", "ResourceLocked",
           "ChannelClosed", "BrokerUnavailable", "MessageProcessed", "Message",
           "IncomingMessage", "connect", "DEFAULT_URL_ENV"]

DEFAULT_URL_ENV = "LABKIT_AMQP_URL"


class AMQPError(Exception):
    """A broker refused an operation (`code` is the AMQP reply code)."""
    code = 0


class ChannelError(AMQPError):
    """An error that closes the channel it happened on (AMQP channel exception)."""


class PreconditionFailed(ChannelError, ValueError):
    """406: e.g. re-declaring a queue with different arguments, or acking twice on the wire."""
    code = 406


class NotFound(ChannelError, LookupError):
    """404: no such exchange or queue."""
    code = 404


class ResourceLocked(ChannelError):
    """405: the queue is exclusive to another connection."""
    code = 405


class ChannelClosed(AMQPError, RuntimeError):
    """The channel (or its connection) is closed: open a new one."""


class BrokerUnavailable(AMQPError, ConnectionError):
    """No broker answered at the URL."""


class MessageProcessed(RuntimeError):
    """The message was already acked, nacked or rejected (settle each delivery once)."""


@dataclass
class Message:
    """A message to publish: body bytes, optional id and headers, persistent or not.
    `correlation_id` and `reply_to` are AMQP's properties for request/reply (chapter 02)."""
    body: bytes
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    persistent: bool = False
    correlation_id: str | None = None
    reply_to: str | None = None

    def __post_init__(self):
        if isinstance(self.body, str):
            self.body = self.body.encode()
        if not isinstance(self.body, (bytes, bytearray)):
            raise ValueError(f"body must be bytes (or str), got {type(self.body).__name__}")
        if self.message_id is not None and not isinstance(self.message_id, str):
            raise ValueError(f"message_id must be a str or None, got {self.message_id!r}")
        for name in ("correlation_id", "reply_to"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a str or None, got {value!r}")
        if not isinstance(self.headers, dict):
            raise ValueError(f"headers must be a dict, got {self.headers!r}")
        validate.boolean("persistent", self.persistent)


class IncomingMessage:
    """A delivered message. Settle it once: `ack()`, `nack(requeue=True)`, `reject(requeue=False)`
    (aio-pika's defaults). `redelivered` is True if the broker gave it out before."""

    def __init__(self, *, body: bytes, message_id: str | None, headers: dict, redelivered: bool,
                 exchange: str, routing_key: str, delivery_tag: int, queue: str,
                 persistent: bool = False, correlation_id: str | None = None,
                 reply_to: str | None = None):
        self.body = body
        self.message_id = message_id
        self.headers = headers
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key
        self.delivery_tag = delivery_tag
        self.queue = queue
        self.persistent = persistent
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.processed = False

    def __repr__(self):
        return (f"<IncomingMessage {self.message_id!r} from {self.queue!r} tag={self.delivery_tag}"
                f"{' redelivered' if self.redelivered else ''}>")

    async def ack(self) -> None:
        await self._settle("ack", False)

    async def nack(self, requeue: bool = True) -> None:
        await self._settle("nack", validate.boolean("requeue", requeue))

    async def reject(self, requeue: bool = False) -> None:
        await self._settle("reject", validate.boolean("requeue", requeue))

    def process(self, requeue: bool = False, reject_on_redelivered: bool = False,
                ignore_processed: bool = False) -> "_Process":
        """aio-pika's context manager: ack when the block ends normally; when it raises,
        reject (with `requeue`; without, if `reject_on_redelivered` and this is a
        redelivery) and let the exception go on. `ignore_processed`: settle only if the
        block did not settle the message itself."""
        return _Process(self, validate.boolean("requeue", requeue),
                        validate.boolean("reject_on_redelivered", reject_on_redelivered),
                        validate.boolean("ignore_processed", ignore_processed))

    async def _settle(self, how: str, requeue: bool) -> None:
        if self.processed:
            raise MessageProcessed(f"message {self.message_id!r} was already settled; ack, nack "
                                   "or reject each delivery exactly once")
        self.processed = True
        await self._send(how, requeue)

    async def _send(self, how: str, requeue: bool) -> None:  # pragma: no cover - backends
        raise NotImplementedError


class _Process:
    """`async with message.process(...)`: see `IncomingMessage.process` (as aio-pika's)."""

    def __init__(self, message: IncomingMessage, requeue: bool, reject_on_redelivered: bool,
                 ignore_processed: bool):
        self.message, self.requeue = message, requeue
        self.reject_on_redelivered, self.ignore_processed = reject_on_redelivered, ignore_processed

    async def __aenter__(self) -> IncomingMessage:
        return self.message

    async def __aexit__(self, exc_type, exc, tb) -> None:
        m = self.message
        if self.ignore_processed and m.processed:
            return
        if exc_type is None:
            await m.ack()
        elif self.reject_on_redelivered and m.redelivered:
            await m.reject(requeue=False)
        else:
            await m.reject(requeue=self.requeue)


async def connect(url: str | None = None, *, broker=None, journal=None, timeout_s: float = 5.0):
    """Connect to the embedded broker (no `url`) or to RabbitMQ (`url`, or $LABKIT_AMQP_URL).

    `broker`: the embedded `Broker` to use (default: a new one). `journal`: where a RabbitMQ
    connection records what the client sees (default: a new `Journal`; the embedded broker
    records into `broker.journal`). An unreachable URL raises `BrokerUnavailable`.
    """
    timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
    url = url if url is not None else (os.environ.get(DEFAULT_URL_ENV) if broker is None else None)
    if url:
        if broker is not None:
            raise ValueError("give either url (RabbitMQ) or broker (embedded), not both")
        from labkit.messaging import amqp   # imports aio-pika only when asked for
        return await amqp.connect(url, journal=journal, timeout_s=timeout_s)
    from labkit.messaging import embedded
    return await embedded.connect(broker=broker)
