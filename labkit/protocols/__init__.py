"""Protocols (chapter 03): the same operations over REST, gRPC, WebSocket and server-sent events.

`proto` compiles `.proto` files from data/ at runtime (nothing generated is committed);
`grpc_service` serves them with grpc.aio on 127.0.0.1 under the service fault model;
`push` and `push_client` stream order-status events over WebSocket and SSE, with a client that
resumes where it left off; `recommend` chooses a protocol from requirements (the tutorial's
recommender fixed); `adapter` is one interface with REST and gRPC implementations.
Like `labkit.services`, these modules do I/O; grpc and protobuf are imported only by the
modules that need them, never by `import labkit`.
"""
