"""Traces across gRPC calls: `traceparent` in the call metadata, client and server spans (ch. 07).

gRPC metadata is HTTP/2 headers, so W3C Trace Context travels as a ``traceparent`` metadata
entry, exactly as over HTTP. `ClientTracing` (a grpc.aio unary-unary client interceptor) makes
a client span per call and adds the entry; `ServerTracing` (a server interceptor, placed
before the fault interceptor so injected faults end inside the span) makes the server span,
child of the caller's span, or a new trace when the entry is missing or invalid, and keeps it
current while the handler runs, so a handler's own downstream calls are its children.
Span names follow OpenTelemetry's RPC conventions: ``shop.Shop/GetUser``. A call that ends
with any code but OK is an error span carrying ``rpc.grpc.status_code``.
Streaming calls get server spans; client spans are made for unary calls only.
"""
from __future__ import annotations

import asyncio

import grpc
from grpc import aio

from labkit.obs import tracing

__all__ = ["ClientTracing", "ServerTracing", "client_interceptors"]


def _span_name(method: str) -> str:
    return method.lstrip("/") or "(unknown)"


def _code_of(context) -> str:
    """The status code the handler set (None while it is unset means OK)."""
    try:
        code = context.code()
    except (AttributeError, NotImplementedError):
        return "OK"
    return "OK" if code is None else getattr(code, "name", str(code))


def _finish_server(span, context, exc: BaseException | None) -> None:
    code = _code_of(context)
    if exc is not None and code == "OK":              # raised without setting a code
        code = "CANCELLED" if isinstance(exc, asyncio.CancelledError) else "UNKNOWN"
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", code)
        if code != "OK":
            tracing.error(span, code)


class ServerTracing(aio.ServerInterceptor):
    """A server span around every call to the service named `service`."""

    def __init__(self, service: str):
        self.service = service

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        tracer = tracing.default()
        if handler is None or not tracer.enabled:
            return handler
        method = handler_call_details.method
        metadata = {k: v for k, v in (handler_call_details.invocation_metadata or ())}
        parent = tracing.extract(metadata) or tracing.ROOT
        attrs = {"rpc.system": "grpc", "rpc.method": method}
        kw = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
        service = self.service

        def span():
            return tracer.span(_span_name(method), service=service, kind="server",
                               parent=parent, attributes=attrs)

        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def single(request, context):
                with span() as s:
                    try:
                        reply = await inner(request, context)
                    except BaseException as exc:
                        _finish_server(s, context, exc)
                        raise
                    _finish_server(s, context, None)
                    return reply
            make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                    else grpc.stream_unary_rpc_method_handler)
            return make(single, **kw)
        inner = handler.unary_stream or handler.stream_stream

        async def streaming(request, context):
            with span() as s:
                try:
                    async for message in inner(request, context):
                        yield message
                except BaseException as exc:
                    _finish_server(s, context, exc)
                    raise
                _finish_server(s, context, None)
        make = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler)
        return make(streaming, **kw)


class ClientTracing(aio.UnaryUnaryClientInterceptor):
    """A client span per unary call, its `traceparent` added to the call's metadata."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        headers: dict = {}
        name = client_call_details.method
        name = name.decode() if isinstance(name, bytes) else name
        with tracing.outgoing(_span_name(name), headers,
                              attributes={"rpc.system": "grpc", "rpc.method": name}) as span:
            if headers:
                md = aio.Metadata(*tuple(client_call_details.metadata or ()),
                                  *headers.items())
                client_call_details = client_call_details._replace(metadata=md)
            call = await continuation(client_call_details, request)
            try:
                await call
            except aio.AioRpcError as err:
                if span.is_recording():
                    span.set_attribute("rpc.grpc.status_code", err.code().name)
                    tracing.error(span, err.code().name)
            else:
                if span.is_recording():
                    span.set_attribute("rpc.grpc.status_code", "OK")
            return call


def client_interceptors() -> list:
    """The interceptors a labkit gRPC channel is made with."""
    return [ClientTracing()]
