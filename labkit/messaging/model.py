"""The broker's state, as plain data: messages, exchanges, queues, consumers, channels.

Pure (no I/O, no clock): `labkit.messaging.broker` moves messages between these. Also the
pure rules that need no broker: queue-argument checks and the `x-death` header update.
Chapter 02.
"""
from __future__ import annotations

from collections import deque

from labkit._core import validate
from labkit.messaging.api import Message

__all__ = ["QUEUE_ARGUMENTS", "HEAD", "StoredMessage", "ExchangeState", "QueueState",
           "ConsumerState", "ChannelState", "check_arguments", "dead_letter_headers"]

QUEUE_ARGUMENTS = ("x-message-ttl", "x-max-length", "x-delivery-limit", "x-queue-type",
                   "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-overflow")
HEAD = -(10 ** 15)   # positions of quorum "returns": before every ordinary message


class StoredMessage:
    __slots__ = ("body", "message_id", "headers", "persistent", "exchange", "routing_key", "pos",
                 "expires_at", "delivery_count", "redelivered", "correlation_id", "reply_to")

    def __init__(self, m: Message, exchange: str, routing_key: str, headers: dict):
        self.body, self.message_id, self.persistent = m.body, m.message_id, m.persistent
        self.correlation_id, self.reply_to = m.correlation_id, m.reply_to
        self.headers, self.exchange, self.routing_key = headers, exchange, routing_key
        self.pos = 0
        self.expires_at = None
        self.delivery_count = 0
        self.redelivered = False

    def __lt__(self, other):   # only reached on equal positions, which never happen
        return id(self) < id(other)


class ExchangeState:
    def __init__(self, name, type_, durable, auto_delete):
        self.name, self.type, self.durable, self.auto_delete = name, type_, durable, auto_delete
        self.bindings: list[tuple[str, str]] = []      # (queue name, binding key)


class QueueState:
    def __init__(self, name, durable, exclusive, auto_delete, arguments, owner):
        self.name, self.durable, self.auto_delete = name, durable, auto_delete
        self.exclusive, self.owner, self.arguments = exclusive, owner, arguments
        self.type = arguments.get("x-queue-type", "classic")
        ttl = arguments.get("x-message-ttl")
        self.ttl_s = None if ttl is None else ttl / 1000.0
        self.max_length = arguments.get("x-max-length")
        self.delivery_limit = arguments.get("x-delivery-limit") if self.type == "quorum" else None
        self.dlx = arguments.get("x-dead-letter-exchange")
        self.dlrk = arguments.get("x-dead-letter-routing-key")
        self.ready: list[tuple[int, StoredMessage]] = []            # heap by position
        self.unacked = 0
        self.consumers: deque = deque()
        self.had_consumer = False
        self.timer = None

    def flags(self):
        return {"durable": self.durable, "exclusive": self.exclusive,
                "auto_delete": self.auto_delete, "arguments": self.arguments}


class ConsumerState:
    __slots__ = ("tag", "queue", "channel", "callback", "no_ack", "prefetch", "unacked")

    def __init__(self, tag, queue, channel, callback, no_ack, prefetch):
        self.tag, self.queue, self.channel, self.callback = tag, queue, channel, callback
        self.no_ack, self.prefetch, self.unacked = no_ack, prefetch, 0

    def has_room(self):
        return self.no_ack or self.prefetch == 0 or self.unacked < self.prefetch


class ChannelState:
    """A channel as the broker sees it: its unacked deliveries, consumers and prefetch."""

    def __init__(self, owner: int):
        self.owner = owner
        self.prefetch = 0
        self.next_tag = 0
        self.unacked: dict[int, tuple[StoredMessage, str, ConsumerState | None]] = {}
        self.consumers: dict[str, ConsumerState] = {}
        self.closed = False
        self.close_reason = ""




def check_arguments(args: dict, durable: bool, exclusive: bool, auto_delete: bool) -> dict:
    """The queue arguments, checked (ValueError naming the argument), ints as ints."""
    for key in ("x-message-ttl", "x-max-length", "x-delivery-limit"):
        if key in args:
            args[key] = validate.integer(f"queue argument {key}", args[key], 0)
    validate.choice("queue argument x-queue-type", args.get("x-queue-type", "classic"),
                    ("classic", "quorum"))
    validate.choice("queue argument x-overflow", args.get("x-overflow", "drop-head"),
                    ("drop-head",))
    for key in ("x-dead-letter-exchange", "x-dead-letter-routing-key"):
        if key in args and not isinstance(args[key], str):
            raise ValueError(f"queue argument {key} must be a str, got {args[key]!r}")
    if args.get("x-queue-type") == "quorum" and (not durable or exclusive or auto_delete):
        raise ValueError("a quorum queue must be durable=True, exclusive=False, "
                         "auto_delete=False")
    return args


def dead_letter_headers(headers: dict, queue: str, reason: str, exchange: str,
                        routing_key: str, now: float) -> dict:
    """Headers of a message dead-lettered from `queue`, as RabbitMQ 3.10 writes them.

    `x-death` is newest first; an entry for the same queue and reason is counted up and moved
    to the front; `x-first-death-*` are set once.
    """
    headers = dict(headers)
    deaths = [dict(d) for d in headers.get("x-death", [])]
    for i, d in enumerate(deaths):
        if d.get("queue") == queue and d.get("reason") == reason:
            death = deaths.pop(i)
            death["count"] = death.get("count", 0) + 1
            death["time"] = now
            break
    else:
        death = {"count": 1, "reason": reason, "queue": queue, "time": now,
                 "exchange": exchange, "routing-keys": [routing_key]}
    headers["x-death"] = [death] + deaths
    headers.setdefault("x-first-death-exchange", exchange)
    headers.setdefault("x-first-death-queue", queue)
    headers.setdefault("x-first-death-reason", reason)
    return headers
