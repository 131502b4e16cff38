"""Protocols (chapter 03): the same operations over REST, gRPC, WebSocket and server-sent events.

`proto` compiles `.proto` files from data/ at runtime (nothing generated is committed);
`grpc_service` serves them with grpc.aio on 127.0.0.1 under the service fault model;
`push` and `push_client` stream order-status events over WebSocket and SSE, with a client that
resumes where it left off; `recommend` chooses a protocol from requirements (the tutorial's
recommender fixed); `adapter` is one interface with REST and gRPC implementations.
Like `labkit.services`, these modules do I/O; grpc and protobuf are imported only by the
modules that need them, never by `import labkit`.
"""
from __future__ import annotations

import importlib

# name -> module; loaded on first use (PEP 562), so `import labkit.protocols` loads no grpc.
_LAZY = {
    "start_grpc_service": "grpc_service", "GrpcService": "grpc_service",
    "ShopClient": "grpc_service", "GrpcServiceShutDown": "grpc_service", "load": "proto",
    "start_push_service": "push", "PushService": "push",
    "ResumingWebSocket": "push_client", "sse_events": "push_client", "SSEParser": "push_client",
    "follow_events": "push_client", "EventGap": "push_client", "ResumeTooOld": "push_client",
    "PushClosed": "push_client",
    "recommend": "recommend", "Recommendation": "recommend",
    "TutorialProtocolComparison": "recommend",
    "UserDirectory": "adapter", "RestUsers": "adapter", "GrpcUsers": "adapter",
    "Unavailable": "adapter",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"labkit.protocols.{_LAZY[name]}")
        # importing a submodule binds its name here (labkit.protocols.recommend = the module);
        # the function of the same name wins, for every name that module exports
        globals().update({n: getattr(module, n) for n, m in _LAZY.items() if m == _LAZY[name]})
        return globals()[name]
    raise AttributeError(f"module 'labkit.protocols' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
