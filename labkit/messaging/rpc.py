"""Request/reply over a queue: correlation id, reply queue, timeout (chapter 02).

    tag = await rpc.serve(channel, "prices", handler)          # handler(bytes) -> bytes
    client = await rpc.RpcClient.create(channel, "prices", timeout_s=2.0)
    reply = await client.call(b"sku-42")                        # RpcTimeout if no reply
    await client.close()

The client publishes the request to `queue_name` through the default exchange with AMQP's
`reply_to` (its own exclusive, server-named reply queue) and a fresh `correlation_id`; the
server calls the handler, publishes the reply to `reply_to` with the same correlation id, and
only then acks the request (so a server that dies mid-request leaves it to be redelivered).
A reply whose call already timed out, or whose correlation id the client never issued, is
counted in `late_replies` and dropped: it must never answer a *different* call.

Why it is still a synchronous call: the caller waits for the reply, so the server's slowness,
its absence and its failures reach the caller as a timeout, exactly as over HTTP; the queue
only adds buffering (a request can wait for a server that is down) and a hop. Uses only the
labkit.messaging API, so it runs on the embedded broker (and in labkit.sim's virtual time)
and on RabbitMQ. A handler that raises is answered with the header `x-rpc-error` and the
caller gets `RpcRemoteError`.
"""
from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from typing import Callable

from labkit._core import seeding, validate
from labkit.messaging.api import Message

__all__ = ["serve", "RpcClient", "RpcTimeout", "RpcRemoteError", "RpcUnroutable", "RpcBusy",
           "RpcClosed", "ERROR_HEADER"]

ERROR_HEADER = "x-rpc-error"
_EXPIRED_KEPT = 10_000     # correlation ids of timed-out calls remembered (to tell late replies)


class RpcTimeout(TimeoutError):
    """No reply within the timeout. An *indefinite* failure: the server may still do the work
    (and its late reply will be counted and dropped)."""

    def __init__(self, queue: str, correlation_id: str, timeout_s: float):
        super().__init__(f"no reply from queue {queue!r} for correlation id {correlation_id!r} "
                         f"within {timeout_s} s (the server may be down, slow, or still working "
                         "on it)")
        self.queue, self.correlation_id, self.timeout_s = queue, correlation_id, timeout_s


class RpcRemoteError(RuntimeError):
    """The server's handler raised; the message carries its repr."""


class RpcUnroutable(LookupError):
    """The broker returned the request: no queue named `queue_name` exists (definite: not sent)."""


class RpcBusy(RuntimeError):
    """`max_pending` calls are already waiting for replies (definite: not sent)."""


class RpcClosed(RuntimeError):
    """The client was closed (before or while the call waited)."""


async def serve(channel, queue_name: str, handler: Callable, *, handler_timeout_s: float = 30.0,
                durable: bool = False) -> str:
    """Answer requests on `queue_name` (declared if missing) with `handler(body) -> bytes`
    (sync or async); returns the consumer tag (`queue.cancel(tag)` stops serving).

    Each reply goes to the request's `reply_to` with its `correlation_id`; the request is
    acked after the reply is published. A request without `reply_to` is acked and ignored.
    A handler that raises, returns non-bytes or runs past `handler_timeout_s` is answered
    with the `x-rpc-error` header.
    """
    queue_name = _queue_name(queue_name)
    if not callable(handler):
        raise ValueError(f"handler must be a function taking bytes and returning bytes, "
                         f"got {handler!r}")
    handler_timeout_s = validate.number("handler_timeout_s", handler_timeout_s, 0, lo_open=True,
                                        unit=" s")
    queue = await channel.declare_queue(queue_name, durable=validate.boolean("durable", durable))

    async def on_request(message) -> None:
        if not message.reply_to:
            await message.ack()
            return
        headers, body = {}, b""
        try:
            result = handler(bytes(message.body))
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, handler_timeout_s)
            if not isinstance(result, (bytes, bytearray)):
                raise TypeError(f"the handler must return bytes, got {type(result).__name__}")
            body = bytes(result)
        except Exception as e:   # noqa: BLE001 - answered, so the caller learns at once
            headers = {ERROR_HEADER: repr(e)[:500]}
        reply = Message(body, message_id=f"{message.correlation_id}:reply", headers=headers,
                        correlation_id=message.correlation_id)
        await channel.default_exchange.publish(reply, routing_key=message.reply_to,
                                               mandatory=False)
        await message.ack()

    return await queue.consume(on_request)


class RpcClient:
    """Calls over `queue_name`; make one with `await RpcClient.create(...)`.

    `timeout_s` is the default per-call timeout; at most `max_pending` calls wait at once
    (`RpcBusy` beyond). Counters: `calls`, `replies`, `timeouts`, `late_replies` (late or
    unknown correlation ids, dropped; `unknown_replies` is the unknown part).
    """

    def __init__(self, channel, queue_name: str, reply_queue, timeout_s: float, max_pending: int):
        self.channel, self.queue_name, self._reply_queue = channel, queue_name, reply_queue
        self.reply_to = reply_queue.name
        self.timeout_s, self.max_pending = timeout_s, max_pending
        self._pending: dict[str, asyncio.Future] = {}
        self._expired: OrderedDict[str, None] = OrderedDict()
        self._prefix = f"{seeding.stream('rpc').getrandbits(40):010x}"
        self._n = 0
        self._tag = None
        self.closed = False
        self.calls = self.replies = self.timeouts = 0
        self.late_replies = self.unknown_replies = 0

    @classmethod
    async def create(cls, channel, queue_name: str, *, timeout_s: float = 2.0,
                     max_pending: int = 1000) -> "RpcClient":
        """Declare an exclusive reply queue (the broker names it) and start listening."""
        queue_name = _queue_name(queue_name)
        timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
        max_pending = validate.integer("max_pending", max_pending, 1)
        reply_queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        client = cls(channel, queue_name, reply_queue, timeout_s, max_pending)
        client._tag = await reply_queue.consume(client._on_reply, no_ack=True)
        return client

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def call(self, body: bytes, *, timeout_s: float | None = None) -> bytes:
        """Send `body`, wait for its reply (at most `timeout_s`, default the client's)."""
        if isinstance(body, str):
            raise ValueError("body must be bytes (encode the str first, e.g. text.encode())")
        if not isinstance(body, (bytes, bytearray)):
            raise ValueError(f"body must be bytes, got {type(body).__name__}")
        timeout_s = self.timeout_s if timeout_s is None else validate.number(
            "timeout_s", timeout_s, 0, lo_open=True, unit=" s")
        if self.closed:
            raise RpcClosed("this RpcClient is closed; create a new one")
        if len(self._pending) >= self.max_pending:
            raise RpcBusy(f"{len(self._pending)} calls already wait for replies from "
                          f"{self.queue_name!r} (max_pending={self.max_pending})")
        self._n += 1
        cid = f"{self._prefix}-{self._n}"
        fut = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        self.calls += 1
        request = Message(bytes(body), message_id=cid, correlation_id=cid, reply_to=self.reply_to)
        try:
            async with asyncio.timeout(timeout_s):
                routed = await self.channel.default_exchange.publish(
                    request, routing_key=self.queue_name, mandatory=True, timeout_s=timeout_s)
                if not routed:
                    raise RpcUnroutable(f"no queue named {self.queue_name!r}: the broker returned "
                                        f"request {cid!r} (is the server running?)")
                return await fut
        except TimeoutError:
            self.timeouts += 1
            self._expire(cid)
            raise RpcTimeout(self.queue_name, cid, timeout_s) from None
        finally:
            self._pending.pop(cid, None)

    def _expire(self, cid: str) -> None:
        self._expired[cid] = None
        while len(self._expired) > _EXPIRED_KEPT:
            self._expired.popitem(last=False)

    async def _on_reply(self, message) -> None:
        cid = message.correlation_id
        fut = self._pending.get(cid) if cid is not None else None
        if fut is None or fut.done():
            self.late_replies += 1
            if cid not in self._expired:
                self.unknown_replies += 1
            return
        self.replies += 1
        error = (message.headers or {}).get(ERROR_HEADER)
        if error is not None:
            fut.set_exception(RpcRemoteError(f"the server on {self.queue_name!r} failed on "
                                             f"request {cid!r}: {error}"))
        else:
            fut.set_result(bytes(message.body))

    async def close(self) -> None:
        """Stop listening (the auto-delete reply queue goes), fail waiting calls with RpcClosed."""
        if self.closed:
            return
        self.closed = True
        for cid, fut in list(self._pending.items()):
            if not fut.done():
                fut.set_exception(RpcClosed(f"the client closed while {cid!r} waited"))
        if not self.channel.is_closed and self._tag is not None:
            await self._reply_queue.cancel(self._tag)    # auto-delete: the queue goes with it

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def summary(self) -> dict:
        return {"queue": self.queue_name, "calls": self.calls, "replies": self.replies,
                "timeouts": self.timeouts, "late_replies": self.late_replies,
                "unknown_replies": self.unknown_replies, "pending": self.pending}


def _queue_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"queue_name must be a non-empty str, got {name!r}")
    return name
