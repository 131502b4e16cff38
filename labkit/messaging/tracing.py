"""Traces across the broker: a producer span on publish, a consumer span on delivery (ch. 07).

A message is a parcel handed to the post office: the sender's span writes its `traceparent`
into the message headers (as AMQP headers carry it through RabbitMQ), and the consumer's span
reads it back, so the trace goes on past the queue, even though the reply is not waited for.

Only publishes made inside a span are traced: chapter 02's plain publishes keep exactly the
headers they had. A delivery without a valid `traceparent` runs its handler with no current
span (the broker's dispatch task copies whichever context triggered it, often another
consumer's: without this reset, one trace would leak into an unrelated message).
The embedded broker calls these two hooks (labkit/messaging/broker.py); RabbitMQ deliveries
through labkit.messaging.amqp are not traced yet.
"""
from __future__ import annotations

import contextlib

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

from labkit.obs import tracing

__all__ = ["consume", "consuming", "name_consumer", "publish"]


def publish(route, ex, routing_key: str, message, exchange: str) -> bool:
    """The broker's routing step, `route(ex, routing_key, message, exchange, headers)`, with
    the headers to store: the message's own, plus `traceparent` from a producer span named
    "publish <exchange, or the routing key on the default exchange>" when a span is current
    (else unchanged)."""
    headers = dict(message.headers)
    tracer = tracing.default()
    if not tracer.enabled or not otel_trace.get_current_span().get_span_context().is_valid:
        return route(ex, routing_key, message, exchange, headers)
    where = exchange or routing_key
    attrs = {"messaging.system": "labkit", "messaging.destination.name": where,
             "messaging.rabbitmq.destination.routing_key": routing_key}
    if message.message_id is not None:
        attrs["messaging.message.id"] = message.message_id
    with tracing.outgoing(f"publish {where}", headers, kind="producer", attributes=attrs) as s:
        routed = route(ex, routing_key, message, exchange, headers)
        s.set_attribute("messaging.routed", routed)
        return routed


@contextlib.contextmanager
def consuming(queue: str, delivery):
    """Run a consumer callback inside a consumer span "consume <queue>", child of the
    publisher's span; with no (or an invalid) `traceparent`, inside an empty context."""
    tracer = tracing.default()
    parent = tracing.extract(delivery.headers or {}) if tracer.enabled else None
    if parent is None:
        token = otel_context.attach(tracing.ROOT)
        try:
            yield None
        finally:
            otel_context.detach(token)
        return
    attrs = {"messaging.system": "labkit", "messaging.destination.name": queue,
             "messaging.message.redelivered": bool(delivery.redelivered)}
    if delivery.message_id is not None:
        attrs["messaging.message.id"] = delivery.message_id
    with tracer.span(f"consume {queue}", service=_consumer_service(queue), kind="consumer",
                     parent=parent, attributes=attrs) as span:
        yield span


async def consume(callback, delivery) -> None:
    """`await callback(delivery)` inside `consuming(delivery.queue, delivery)`."""
    with consuming(delivery.queue, delivery):
        await callback(delivery)


_consumers: dict[str, str] = {}


def _consumer_service(queue: str) -> str:
    return _consumers.get(queue, queue)


def name_consumer(queue: str, service: str) -> None:
    """Name the service that consumes `queue` (its spans say so); default: the queue's name."""
    if len(_consumers) >= 10_000:
        _consumers.clear()                       # bounded: names are a convenience
    _consumers[queue] = service
