"""The client API (`labkit.messaging.api`) on the embedded broker (`labkit.messaging.broker`).

Thin objects named as in aio-pika (Connection, Channel, Exchange, Queue) that call the broker;
the broker holds all state and writes the event records. Chapter 02.
"""
from __future__ import annotations

import asyncio
import itertools

from labkit._core import validate
from labkit.messaging.api import Message
from labkit.messaging.broker import Broker, ChannelState

__all__ = ["connect", "Connection", "Channel", "Exchange", "Queue"]

_owners = itertools.count(1)


async def connect(*, broker: Broker | None = None) -> "Connection":
    """A connection to `broker` (default: a new embedded Broker)."""
    if broker is not None and not isinstance(broker, Broker):
        raise ValueError(f"broker must be a labkit.messaging.Broker, got {broker!r}")
    return Connection(broker if broker is not None else Broker())


class Connection:
    """One client connection; `close()` closes its channels and its exclusive queues."""

    backend = "embedded"

    def __init__(self, broker: Broker):
        self.broker = broker
        self.journal = broker.journal
        self.owner = next(_owners)
        self.channels: list[Channel] = []
        self.is_closed = False
        broker._connections[self.owner] = self

    async def channel(self, publisher_confirms: bool = True) -> "Channel":
        validate.boolean("publisher_confirms", publisher_confirms)
        if self.is_closed:
            raise ConnectionError("the connection is closed; connect again")
        self.channels = [c for c in self.channels if not c.is_closed]
        ch = Channel(self)
        self.channels.append(ch)
        return ch

    async def close(self, timeout_s: float = 5.0) -> None:
        """Close channels (unacked messages go back), drop exclusive queues, end handlers."""
        timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
        if not self.is_closed:        # (a restart or a cut-off closed it already, not its tasks)
            self.is_closed = True
            self.broker.close_channels([ch._state for ch in self.channels], "connection closed")
            self.broker.close_connection(self.owner)
            self.broker._connections.pop(self.owner, None)
        me = asyncio.current_task()
        tasks = [t for t in self.broker.cancel_handlers(self.owner) if t is not me]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class Channel:
    """A channel: declarations, publishing and consuming; its consumers share `prefetch`."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self._broker = connection.broker
        self._state = ChannelState(connection.owner)
        self.default_exchange = Exchange(self, "")

    @property
    def is_closed(self) -> bool:
        return self._state.closed

    async def set_qos(self, prefetch_count: int = 0) -> None:
        """Prefetch window for consumers started after this call (0: unlimited)."""
        self._broker._open(self._state)
        self._state.prefetch = validate.integer("prefetch_count", prefetch_count, 0, 65535)

    async def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                               auto_delete: bool = False) -> "Exchange":
        self._broker.declare_exchange(self._state, _name("name", name), type,
                                      validate.boolean("durable", durable),
                                      validate.boolean("auto_delete", auto_delete))
        return Exchange(self, name)

    async def declare_queue(self, name: str = "", *, durable: bool = False,
                            exclusive: bool = False, auto_delete: bool = False,
                            arguments: dict | None = None) -> "Queue":
        name, _, _ = self._broker.declare_queue(
            self._state, _name("name", name), validate.boolean("durable", durable),
            validate.boolean("exclusive", exclusive), validate.boolean("auto_delete", auto_delete),
            arguments)
        return Queue(self, name)

    async def get_queue(self, name: str) -> "Queue":
        """The existing queue `name` (a passive declare: NotFound if there is none)."""
        self._broker._queue(self._state, _name("name", name))
        return Queue(self, name)

    async def get_exchange(self, name: str) -> "Exchange":
        """The existing exchange `name` (a passive declare: NotFound if there is none)."""
        self._broker._exchange(self._state, _name("name", name))
        return Exchange(self, name)

    async def queue_delete(self, name: str) -> int:
        return self._broker.delete_queue(self._state, name)

    async def exchange_delete(self, name: str) -> None:
        self._broker.delete_exchange(self._state, name)

    async def close(self) -> None:
        """Close the channel: its consumers stop, its unacked messages are requeued."""
        self._broker.close_channel(self._state)


class Exchange:
    def __init__(self, channel: Channel, name: str):
        self.channel, self.name = channel, name

    def __repr__(self):
        return f"<Exchange {self.name!r} (embedded)>"

    async def publish(self, message: Message, routing_key: str, *, mandatory: bool = True,
                      timeout_s: float = 5.0) -> bool:
        """Publish and wait for the confirm; False if the broker returned it (`mandatory` and
        no queue bound for it), else True. Unroutable and not mandatory: silently dropped."""
        if not isinstance(message, Message):
            raise ValueError(f"message must be a labkit.messaging.Message, got {message!r}")
        validate.boolean("mandatory", mandatory)
        timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
        broker = self.channel._broker
        if broker.faults is not None:
            await asyncio.wait_for(broker.faults.publish_delay(), timeout_s)
        routed = broker.publish(self.channel._state, self.name,
                                _name("routing_key", routing_key), message, mandatory)
        return routed or not mandatory

    async def delete(self) -> None:
        await self.channel.exchange_delete(self.name)


class Queue:
    def __init__(self, channel: Channel, name: str):
        self.channel, self.name = channel, name

    def __repr__(self):
        return f"<Queue {self.name!r} (embedded)>"

    async def bind(self, exchange, routing_key: str = "") -> None:
        self.channel._broker.bind(self.channel._state, self.name, _exchange_name(exchange),
                                  _name("routing_key", routing_key))

    async def unbind(self, exchange, routing_key: str = "") -> None:
        self.channel._broker.bind(self.channel._state, self.name, _exchange_name(exchange),
                                  _name("routing_key", routing_key), unbind=True)

    async def consume(self, callback, *, no_ack: bool = False) -> str:
        """Call `await callback(message)` for each delivery (a task each); returns the tag."""
        if not callable(callback):
            raise ValueError(f"callback must be an async function, got {callback!r}")
        return self.channel._broker.consume(self.channel._state, self.name, callback,
                                            validate.boolean("no_ack", no_ack))

    async def cancel(self, consumer_tag: str) -> None:
        """Stop the consumer; its unacked messages stay unacked until acked or channel close."""
        self.channel._broker.cancel(self.channel._state, consumer_tag)

    async def get(self, *, no_ack: bool = False, timeout_s: float = 5.0):
        """basic.get: the message at the head, or None if the queue is empty."""
        validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
        return self.channel._broker.get(self.channel._state, self.name,
                                        validate.boolean("no_ack", no_ack))

    async def status(self) -> dict:
        """{"ready": messages waiting, "consumers": count}, as a passive declare reports."""
        self.channel._broker._queue(self.channel._state, self.name)
        info = self.channel._broker.queue_info(self.name)
        return {"ready": info["ready"], "consumers": info["consumers"]}

    async def purge(self) -> int:
        return self.channel._broker.purge_queue(self.channel._state, self.name)

    async def delete(self) -> int:
        return await self.channel.queue_delete(self.name)


def _name(arg: str, value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{arg} must be a str, got {value!r}")
    return value


def _exchange_name(exchange) -> str:
    if isinstance(exchange, str):
        return exchange
    return _name("exchange", getattr(exchange, "name", None))
