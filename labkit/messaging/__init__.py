"""Asynchronous messaging (chapter 02): an embedded broker with RabbitMQ's semantics, the same
client API on a real RabbitMQ, a fault model and a delivery checker.

    from labkit import messaging
    conn = await messaging.connect()                 # embedded (runs in labkit.sim too)
    conn = await messaging.connect("amqp://guest:guest@127.0.0.1:5672/")   # RabbitMQ
    ... see labkit.messaging.api for the calls ...
    checker = messaging.DeliveryChecker.of(conn.journal.events)   # or subscribe it live
    checker.result()["verdict"]

Modules: `api` (the client interface, errors, Message), `broker` (the embedded broker and
where it differs from RabbitMQ), `topology` (its declarations), `model` (its state),
`routing` (exchange rules), `embedded`
and `amqp` (the two backends; aio-pika is imported only by `amqp`), `journal` (event records),
`checker`, `faults`, `session` (`labkit.broker()`: the loop's embedded broker, or RabbitMQ
with names namespaced per run; not re-exported here as `broker`, the submodule's name). Like
`labkit.sim`, nothing but `amqp` does I/O; none imports aiohttp or the UI.
"""
from labkit.messaging.api import (AMQPError, BrokerUnavailable, ChannelClosed, ChannelError,
                                  IncomingMessage, Message, MessageProcessed, NotFound,
                                  PreconditionFailed, ResourceLocked, connect)
from labkit.messaging.broker import Broker
from labkit.messaging.checker import DeliveryChecker
from labkit.messaging.faults import BrokerFaults, ConsumerCrashed
from labkit.messaging.journal import Event, Journal
from labkit.messaging.session import embedded_broker, run_id

__all__ = ["AMQPError", "BrokerUnavailable", "ChannelClosed", "ChannelError", "IncomingMessage",
           "Message", "MessageProcessed", "NotFound", "PreconditionFailed", "ResourceLocked",
           "connect", "Broker", "DeliveryChecker", "BrokerFaults", "ConsumerCrashed", "Event",
           "Journal", "embedded_broker", "run_id"]
