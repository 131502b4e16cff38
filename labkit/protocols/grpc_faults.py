"""The service fault model on gRPC: a server interceptor for unary and streaming handlers.

Chapter 03. The same `FaultModel` (and so the same `labkit.panel`) that breaks the HTTP
services breaks a gRPC server, decided the same way (labkit.services.http's fault layer):

- from the call's ``x-request-id`` metadata when it has one (`FaultModel.decide_keyed`, the
  same key scheme as the HTTP service of that name, so equal ids get equal faults on both
  protocols), in arrival order from the service's seeded stream otherwise (`decide`);
- outage -> UNAVAILABLE at once; the injected delay is "the time the work takes" and comes
  before the handler runs (before the first message of a stream); a delay longer than the
  call's deadline is cut short with DEADLINE_EXCEEDED, as the HTTP layer answers 504;
- an injected error status becomes the code a gRPC server sends for that failure
  (`labkit.patterns.errors.FAULT_STATUS_TO_GRPC`: 429 -> RESOURCE_EXHAUSTED, 500 -> INTERNAL,
  502/503 -> UNAVAILABLE, 504 -> DEADLINE_EXCEEDED); Retry-After for 429/503 is sent as the
  ``grpc-retry-pushback-ms`` trailer (gRPC's own retry pushback);
- a connection reset becomes UNAVAILABLE ("connection reset"), which is what a gRPC client
  sees when the TCP connection drops; `slow_body_ms` has no gRPC counterpart and is ignored.

Each call is logged (`log`, the last `log_size`) and counted by outcome and code.
"""
from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

import grpc
from grpc import aio

from labkit.patterns.errors import FAULT_STATUS_TO_GRPC

__all__ = ["FaultInterceptor", "GrpcServed", "REQUEST_ID_KEY", "PUSHBACK_KEY"]

REQUEST_ID_KEY = "x-request-id"
PUSHBACK_KEY = "grpc-retry-pushback-ms"


@dataclass(frozen=True)
class GrpcServed:
    """One call as the server saw it (server-side log)."""
    t: float              # loop time when it arrived, seconds
    method: str           # e.g. "/shop.Shop/GetUser"
    code: str             # the status code name it ended with ("OK", "UNAVAILABLE", ...)
    fault: str            # "pass", "error", "outage", "reset", "deadline", "cancelled"
    duration_s: float
    request_id: str | None = None
    delay_s: float = 0.0  # the latency the interceptor injected (ground truth)


class _Call:
    """What the interceptor knows about one call while it runs."""
    __slots__ = ("method", "start", "rid", "fault", "code", "delay_s")

    def __init__(self, method: str, start: float, rid: str | None):
        self.method, self.start, self.rid = method, start, rid
        self.fault, self.code, self.delay_s = "pass", "OK", 0.0


class FaultInterceptor(aio.ServerInterceptor):
    """Applies `owner.faults` to every call; see the module docstring.

    `owner` has `name`, `faults` (a FaultModel), `rng` (its seeded stream) and `key_prefix`
    (for keyed decisions): a `labkit.protocols.grpc_service.GrpcService`.
    """

    def __init__(self, owner, *, log_size: int = 10_000):
        self.owner = owner
        self.log: collections.deque[GrpcServed] = collections.deque(maxlen=log_size)
        self.counts: collections.Counter = collections.Counter()        # fault -> calls
        self.code_counts: collections.Counter = collections.Counter()   # code name -> calls

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None                                # unknown method: grpc answers UNIMPLEMENTED
        method = handler_call_details.method
        kw = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def single(request, context):
                call = await self._enter(context, method)
                try:
                    return await inner(request, context)
                except BaseException as exc:
                    self._failed(call, context, exc)
                    raise
                finally:
                    self._leave(call)
            make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                    else grpc.stream_unary_rpc_method_handler)
            return make(single, **kw)
        inner = handler.unary_stream or handler.stream_stream

        async def streaming(request, context):
            call = await self._enter(context, method)
            try:
                async for message in inner(request, context):
                    yield message
            except BaseException as exc:
                self._failed(call, context, exc)
                raise
            finally:
                self._leave(call)
        make = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler)
        return make(streaming, **kw)

    # ---- the fault, before the handler runs -------------------------------------------
    async def _enter(self, context, method: str) -> _Call:
        owner = self.owner
        owner.deadline_seen_s = context.time_remaining()       # on arrival, before any fault
        metadata = {k: v for k, v in (context.invocation_metadata() or ())}
        owner.metadata_seen = metadata
        rid = metadata.get(REQUEST_ID_KEY)
        call = _Call(method, asyncio.get_running_loop().time(), rid)
        fault = (owner.faults.decide(owner.rng) if rid is None
                 else owner.faults.decide_keyed(owner.key_prefix + rid))
        call.fault = fault.action
        if fault.action == "outage":
            await self._abort(call, context, "UNAVAILABLE", f"{owner.name} is down (outage)")
        if fault.delay_s:
            call.delay_s = fault.delay_s
            budget = context.time_remaining()
            if budget is not None and fault.delay_s > budget:
                await asyncio.sleep(max(0.0, budget))
                call.fault = "deadline"
                await self._abort(call, context, "DEADLINE_EXCEEDED",
                                  "deadline exceeded: work abandoned")
            await asyncio.sleep(fault.delay_s)
        if fault.action == "reset":
            await self._abort(call, context, "UNAVAILABLE", "connection reset (injected)")
        if fault.action == "error":
            if fault.retry_after_s is not None:
                context.set_trailing_metadata(
                    ((PUSHBACK_KEY, str(round(fault.retry_after_s * 1000))),))
            await self._abort(call, context, FAULT_STATUS_TO_GRPC[fault.status],
                              f"injected fault {fault.status}")
        return call

    async def _abort(self, call: _Call, context, code: str, details: str):
        call.code = code
        self._leave(call)                               # logged here: the handler never runs
        call.code = None                                # ... and not a second time
        await context.abort(getattr(grpc.StatusCode, code), details)

    # ---- bookkeeping -------------------------------------------------------------------
    def _failed(self, call: _Call, context, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            call.fault, call.code = "cancelled", "CANCELLED"
            return
        code = context.code() if hasattr(context, "code") else None
        call.code = getattr(code, "name", None) or "UNKNOWN"

    def _leave(self, call: _Call) -> None:
        if call.code is None:
            return
        self.counts[call.fault] += 1
        self.code_counts[call.code] += 1
        now = asyncio.get_running_loop().time()
        self.log.append(GrpcServed(call.start, call.method, call.code, call.fault, now - call.start,
                                   call.rid, call.delay_s))
