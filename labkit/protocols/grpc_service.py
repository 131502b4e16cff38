"""A gRPC shop service (data/shop.proto) on grpc.aio, and a client that returns dicts.

Chapter 03. ``svc = await start_grpc_service("users")`` serves the `Shop` service of
data/shop.proto (compiled at runtime by `labkit.protocols.proto`) on 127.0.0.1 with a port
the OS picks, in the running loop, behind the fault interceptor (`grpc_faults`): the same
`FaultModel` as the HTTP services, so ``labkit.panel(svc)`` drives it. ``await
labkit.shutdown()`` stops it; a `ShopClient` call after that fails at once with
`GrpcServiceShutDown` ("the service was shut down").

Deadlines: gRPC sends the caller's deadline with every call (the ``grpc-timeout`` header) and
the server reads what is left with ``context.time_remaining()`` (`deadline_seen_s`: what the
last call had left when it arrived, before any injected latency).
`PlaceOrder` shows propagation: it checks the stock with a downstream Shop server
(``downstream=inventory.target``) and gives that call only the time its own caller has left
(`downstream_timeout_s`). Chapter 05 does the same by hand over HTTP with the
``X-Deadline-Remaining-Ms`` header (labkit.patterns.deadline); gRPC does it natively.

Times are seconds (`timeout_s`); `interval_ms` in WatchOrder is milliseconds, as in the proto.
"""
from __future__ import annotations

import asyncio
import itertools
import weakref

import grpc
from grpc import aio

from labkit._core import runtime, seeding, validate
from labkit.patterns.errors import GrpcError
from labkit.protocols import proto
from labkit.protocols.grpc_faults import PUSHBACK_KEY, REQUEST_ID_KEY, FaultInterceptor
from labkit.protocols.grpc_tracing import ServerTracing, client_interceptors
from labkit.services.faults import FaultModel
from labkit.services.http import Service, ServicesShutDown

__all__ = ["GrpcService", "GrpcServiceShutDown", "ShopClient", "start_grpc_service",
           "downstream_timeout_s", "ORDER_STATUSES"]

ORDER_STATUSES = ("placed", "paid", "packed", "shipped", "delivered")
MIN_TIMEOUT_S = 0.001   # gRPC's timer cannot honour a shorter deadline: the call would succeed
_INT64, _INT32 = 2**63 - 1, 2**31 - 1
MAX_RECORDS = 100_000           # users, items and orders each: a bounded in-memory store
_running: "weakref.WeakSet[GrpcService]" = weakref.WeakSet()


class GrpcServiceShutDown(ServicesShutDown):
    """A gRPC service that `labkit.shutdown()` (or `stop()`) stopped was called."""

    def __init__(self, where: str):
        RuntimeError.__init__(self, f"{where}: the service was shut down; run the start cell "
                                    f"again (the one with `await start_grpc_service(...)`)")


def downstream_timeout_s(context) -> float | None:
    """The timeout to give a call made while serving `context`: what the caller has left
    (None if the caller set no deadline). Passing it on is deadline propagation."""
    return context.time_remaining()


def _abort(context, code: str, details: str):
    return context.abort(getattr(grpc.StatusCode, code), details)


class _Shop:
    """The servicer: the Shop methods over the service's in-memory records."""

    def __init__(self, svc: "GrpcService"):
        self.svc, self.pb = svc, svc.shop

    async def GetUser(self, request, context):
        user = self.svc.users.get(request.id)
        if user is None:
            await _abort(context, "NOT_FOUND", f"user {request.id} not found")
        return self.pb.User(**user)

    async def CreateUser(self, request, context):
        users = self.svc.users
        missing = [f for f in ("name", "email") if not getattr(request, f)]
        if missing:
            await _abort(context, "INVALID_ARGUMENT", f"missing fields: {', '.join(missing)}")
        if any(u["email"] == request.email for u in users.values()):
            await _abort(context, "ALREADY_EXISTS", f"email {request.email!r} already exists")
        if len(users) >= MAX_RECORDS:
            await _abort(context, "RESOURCE_EXHAUSTED", f"at most {MAX_RECORDS} users")
        user = {"id": len(users) + 1, "name": request.name, "email": request.email}
        users[user["id"]] = user
        return self.pb.User(**user)

    async def ListUsers(self, request, context):
        return self.pb.UserList(users=[self.pb.User(**u) for u in self.svc.users.values()])

    async def GetItem(self, request, context):
        stock = self.svc.items.get(request.sku)
        if stock is None:
            await _abort(context, "NOT_FOUND", f"no item {request.sku!r}")
        return self.pb.Item(sku=request.sku, stock=stock)

    async def PlaceOrder(self, request, context):
        svc = self.svc
        if not request.sku or request.quantity < 1:
            await _abort(context, "INVALID_ARGUMENT", "sku must be set and quantity >= 1")
        if svc.downstream is None:
            stock = svc.items.get(request.sku)
            if stock is None:                          # unknown, not "0 in stock"
                await _abort(context, "NOT_FOUND", f"no item {request.sku!r}")
        else:                                          # deadline propagation
            try:
                item = await svc._downstream_stub().GetItem(
                    self.pb.GetItemRequest(sku=request.sku),
                    timeout=downstream_timeout_s(context))
            except aio.AioRpcError as err:
                await _abort(context, err.code().name, f"inventory: {err.details()}")
            stock = item.stock
        if stock < request.quantity:
            await _abort(context, "FAILED_PRECONDITION",
                         f"only {stock} of {request.sku!r} in stock, {request.quantity} ordered")
        if len(svc.orders) >= MAX_RECORDS:
            await _abort(context, "RESOURCE_EXHAUSTED", f"at most {MAX_RECORDS} orders")
        order = {"id": len(svc.orders) + 1, "user_id": request.user_id, "sku": request.sku,
                 "quantity": request.quantity, "status": ORDER_STATUSES[0]}
        svc.orders[order["id"]] = order
        return self.pb.Order(**order)

    async def WatchOrder(self, request, context):
        order = self.svc.orders.get(request.order_id)
        if order is None:
            await _abort(context, "NOT_FOUND", f"order {request.order_id} not found")
        if not 0 <= request.interval_ms <= 60_000:
            await _abort(context, "INVALID_ARGUMENT", "interval_ms must be in 0..60000")
        for seq, status in enumerate(ORDER_STATUSES, 1):
            if seq > 1 and request.interval_ms:
                await asyncio.sleep(request.interval_ms / 1000)
            order["status"] = status
            yield self.pb.OrderStatus(order_id=order["id"], seq=seq, status=status)

    async def UpdateStock(self, request_iterator, context):
        items = self.svc.items
        async for change in request_iterator:
            if not change.sku:
                await _abort(context, "INVALID_ARGUMENT", "sku must be set")
            if change.sku not in items and len(items) >= MAX_RECORDS:
                await _abort(context, "RESOURCE_EXHAUSTED", f"at most {MAX_RECORDS} items")
            items[change.sku] = max(0, items.get(change.sku, 0) + change.delta)
            yield self.pb.Item(sku=change.sku, stock=items[change.sku])


class GrpcService:
    """A running (or stopped) gRPC Shop server; see the module docstring.

    `seed` (default: the course seed) drives its faults, decided as for the HTTP service of
    the same name. `downstream` is the target ("127.0.0.1:PORT") PlaceOrder checks the stock
    with. `log` keeps the last `log_size` calls; `counts`/`code_counts` count all of them.
    `unsupported_knobs`: fault knobs gRPC has no counterpart for (labkit.panel hides them).
    """

    unsupported_knobs = frozenset({"slow_body_ms"})

    def __init__(self, name: str = "users", *, seed: int | None = None,
                 downstream: str | None = None, log_size: int = 10_000):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be a short identifier such as \"users\", got {name!r}")
        self.name = name
        self.seed = seeding.course_seed() if seed is None else validate.integer("seed", seed)
        self.downstream = None if downstream is None else _check_target("downstream", downstream)[0]
        self.shop = proto.load("shop.proto")
        self.faults = FaultModel()
        self.rng = seeding.rng(f"service:{name}", self.seed)
        self.key_prefix = f"labkit:{self.seed}:service:{name}:request:"
        self.interceptor = FaultInterceptor(self, log_size=validate.integer("log_size", log_size, 1))
        self.users: dict[int, dict] = {}
        self.items: dict[str, int] = {}
        self.orders: dict[int, dict] = {}
        self.deadline_seen_s: float | None = None     # time_remaining() as the last call arrived
        self.metadata_seen: dict = {}                   # invocation metadata of the last call
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._channel = None
        self._unregister = None
        self._was_stopped = False

    log = property(lambda self: self.interceptor.log)
    counts = property(lambda self: self.interceptor.counts)
    code_counts = property(lambda self: self.interceptor.code_counts)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def target(self) -> str:
        """Where clients connect, e.g. ``127.0.0.1:41234``."""
        if self.port is None:
            if self._was_stopped:
                raise GrpcServiceShutDown(f"gRPC service {self.name!r}")
            raise RuntimeError(f"gRPC service {self.name!r} is not running: "
                               f"await start_grpc_service({self.name!r})")
        return f"127.0.0.1:{self.port}"

    async def start(self) -> "GrpcService":
        if self.running:
            return self
        self.loop = asyncio.get_running_loop()
        server = aio.server(interceptors=[ServerTracing(self.name), self.interceptor],
                            options=[("grpc.so_reuseport", 0)])
        self.shop.add_ShopServicer_to_server(_Shop(self), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server, self.port, self._was_stopped = server, port, False
        _running.add(self)
        self._unregister = runtime.on_shutdown(self.stop, loop=self.loop)
        return self

    async def stop(self) -> None:
        """Stop serving (calls in flight get 1 s); `labkit.shutdown()` calls it."""
        server, self._server = self._server, None
        port, self.port = self.port, None
        channel, self._channel = self._channel, None
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        _running.discard(self)
        if channel is not None:
            await channel.close()
        if server is not None:
            self._was_stopped = True
            await server.stop(1.0)
            runtime.forget_service(self, port=port)   # remembered: clients say "shut down"

    def _downstream_stub(self):
        if self._channel is None:
            self._channel = aio.insecure_channel(self.downstream, options=_CHANNEL_OPTIONS,
                                                 interceptors=client_interceptors())
        return self.shop.ShopStub(self._channel)

    def summary(self) -> dict:
        """Counts of all calls by fault and code, plus the fault knobs."""
        return {"name": self.name, "target": self.target if self.running else None,
                "calls": sum(self.counts.values()), "outcomes": dict(self.counts),
                "codes": dict(self.code_counts), "users": len(self.users),
                "items": len(self.items), "orders": len(self.orders),
                "faults": self.faults.summary()}

    def __repr__(self):
        where = self.target if self.running else "stopped"
        return f"<GrpcService {self.name} {where} | {self.faults.describe()}>"


async def start_grpc_service(name: str = "users", *, seed: int | None = None,
                             downstream: str | None = None, log_size: int = 10_000) -> GrpcService:
    """Start a gRPC Shop server on 127.0.0.1 (port from the OS) in the running loop, or
    return the one of that name already running in this loop (re-running a cell starts
    nothing new)."""
    svc = GrpcService(name, seed=seed, downstream=downstream, log_size=log_size)
    loop = asyncio.get_running_loop()
    for running in list(_running):
        if running.name == name and running.loop is loop and running.running:
            if downstream is not None and running.downstream != svc.downstream:
                raise ValueError(f"downstream: gRPC service {name!r} is already running with "
                                 f"downstream={running.downstream!r}; `await svc.stop()` first")
            return running
    return await svc.start()


def _stopped(port: int | None) -> bool:
    return runtime.was_stopped(port) and not any(s.port == port for s in list(_running))


# ---- the client ---------------------------------------------------------------------------
# gRPC's own retries (and transparent retries) off: the fault rate set is the rate seen.
_CHANNEL_OPTIONS = [("grpc.enable_retries", 0)]


def _check_target(name: str, target) -> tuple[str, int]:
    if isinstance(target, Service) or (hasattr(target, "url") and not hasattr(target, "target")):
        raise ValueError(f"{name}: that is a REST service (start_grpc_service gives a gRPC one), "
                         f"got {target!r}")
    if isinstance(target, str) and "://" in target:
        raise ValueError(f"{name} must be \"host:port\" with no scheme: pass the gRPC service "
                         f"or its .target, e.g. 127.0.0.1:PORT, got {target!r}")
    host, sep, port = target.rpartition(":") if isinstance(target, str) else ("", "", "")
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{name} must be \"host:port\" such as svc.target (127.0.0.1:41234), "
                         f"got {target!r}")
    return target, int(port)


def _timeout(value) -> float:
    try:
        return validate.number("timeout_s", value, MIN_TIMEOUT_S, 300, unit=" seconds")
    except ValueError as err:
        raise ValueError(f"{err} (below 1 ms gRPC does not enforce the deadline, so the call "
                         f"would quietly succeed)") from None


def _change(name: str, change) -> dict:
    """A (sku, delta) pair as StockChange fields, else ValueError naming `name`."""
    if not isinstance(change, (tuple, list)) or len(change) != 2:
        raise ValueError(f"{name} must be a (sku, delta) pair, got {change!r}")
    return {"sku": validate.text(f"{name} sku", change[0]),
            "delta": validate.integer(f"{name} delta", change[1], -_INT32, _INT32)}


def _metadata(name: str, value) -> tuple:
    if value is None:
        return ()
    pairs = value.items() if isinstance(value, dict) else value
    try:
        out = tuple((str(k).lower(), str(v)) for k, v in pairs)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a dict (or pairs) of key -> str value, got {value!r}") from None
    return out


def to_dict(message) -> dict:
    """A protobuf message as a plain dict (ints stay ints, nested messages become dicts)."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None:
            value = [to_dict(v) for v in value] if _repeated(field) else to_dict(value)
        elif _repeated(field):
            value = list(value)
        out[field.name] = value
    return out


def _repeated(field) -> bool:
    flag = getattr(field, "is_repeated", None)          # protobuf >= 5.28; `label` before
    return flag if flag is not None else field.label == field.LABEL_REPEATED


class ShopClient:
    """Async client for a Shop server: methods return dicts, failures raise `GrpcError`.

    `timeout_s` is the default deadline of each call (a stream's deadline covers the whole
    stream), at least `MIN_TIMEOUT_S` (1 ms: gRPC does not enforce a shorter one, so such a
    call would quietly succeed); every method takes `timeout_s=` and `metadata=` for one call. `metadata` here is
    sent with every call. Each call carries a fresh ``x-request-id`` (as labkit's HTTP clients
    send X-Request-Id), so the server's faults repeat with the seed.
    """

    def __init__(self, target, *, timeout_s: float = 2.0, metadata=None):
        if not isinstance(target, Service):
            target = getattr(target, "target", target)
        self.target, self._port = _check_target("target", target)
        self.timeout_s = _timeout(timeout_s)
        self.metadata = _metadata("metadata", metadata)
        self.client_id = f"labkit-{seeding.stream('client').getrandbits(48):012x}"
        self._calls = itertools.count(1)
        self._pb = proto.load("shop.proto")
        self._channel = None
        self._stub = None
        self._unregister = None

    def _prepare(self, timeout_s, metadata) -> dict:
        if _stopped(self._port):
            raise GrpcServiceShutDown(f"gRPC service at {self.target}")
        if self._channel is None:
            self._channel = aio.insecure_channel(self.target, options=_CHANNEL_OPTIONS,
                                                 interceptors=client_interceptors())
            self._stub = self._pb.ShopStub(self._channel)
            self._unregister = runtime.on_shutdown(self.close, loop=asyncio.get_running_loop())
        timeout = self.timeout_s if timeout_s is None else _timeout(timeout_s)
        extra = _metadata("metadata", metadata)
        md = self.metadata + extra
        if not any(k == REQUEST_ID_KEY for k, _ in md):
            md = ((REQUEST_ID_KEY, f"{self.client_id}-{next(self._calls)}"),) + md
        return {"timeout": timeout, "metadata": md}

    def _error(self, err: "aio.AioRpcError") -> Exception:
        code = err.code().name
        if code == "UNAVAILABLE" and _stopped(self._port):
            return GrpcServiceShutDown(f"gRPC service at {self.target}")
        pushback = dict(err.trailing_metadata() or ()).get(PUSHBACK_KEY)
        retry_after_s = int(pushback) / 1000 if pushback and pushback.isdigit() else None
        return GrpcError(code, err.details() or "", retry_after_s=retry_after_s)

    async def _unary(self, method: str, request, timeout_s, metadata) -> dict:
        kw = self._prepare(timeout_s, metadata)
        try:
            return to_dict(await getattr(self._stub, method)(request, **kw))
        except aio.AioRpcError as err:
            raise self._error(err) from None

    async def _stream(self, call, bad: list | None = None):
        try:
            async for message in call:
                yield to_dict(message)
        except aio.AioRpcError as err:
            raise (bad[0] if bad else self._error(err)) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._channel is not None or (task is not None and task.cancelling()):
                raise                         # a real cancellation of the caller's task
            # the channel was closed under the stream (labkit.shutdown() or close())
            raise GrpcServiceShutDown(f"gRPC stream from {self.target}") from None
        finally:
            call.cancel()                     # a consumer that stops early ends the stream
        if bad:
            raise bad[0]                      # a bad change ended the requests: say which

    async def get_user(self, user_id: int, *, timeout_s=None, metadata=None) -> dict:
        request = self._pb.GetUserRequest(id=validate.integer("user_id", user_id, 1, _INT64))
        return await self._unary("GetUser", request, timeout_s, metadata)

    async def create_user(self, name: str, email: str, *, timeout_s=None, metadata=None) -> dict:
        request = self._pb.CreateUserRequest(name=validate.text("name", name),
                                             email=validate.text("email", email))
        return await self._unary("CreateUser", request, timeout_s, metadata)

    async def list_users(self, *, timeout_s=None, metadata=None) -> list[dict]:
        reply = await self._unary("ListUsers", self._pb.ListUsersRequest(), timeout_s, metadata)
        return reply["users"]

    async def get_item(self, sku: str, *, timeout_s=None, metadata=None) -> dict:
        request = self._pb.GetItemRequest(sku=validate.text("sku", sku))
        return await self._unary("GetItem", request, timeout_s, metadata)

    async def place_order(self, user_id: int, sku: str, quantity: int, *, timeout_s=None,
                          metadata=None) -> dict:
        request = self._pb.PlaceOrderRequest(
            user_id=validate.integer("user_id", user_id, 1, _INT64),
            sku=validate.text("sku", sku), quantity=validate.integer("quantity", quantity, 1, _INT32))
        return await self._unary("PlaceOrder", request, timeout_s, metadata)

    def watch_order(self, order_id: int, *, interval_ms: int = 0, timeout_s=None, metadata=None):
        """Async iterator of the order's status updates (dicts), ending at "delivered"."""
        validate.integer("order_id", order_id, 1, _INT64)
        validate.integer("interval_ms", interval_ms, 0, 60_000, unit=" ms")
        kw = self._prepare(timeout_s, metadata)
        request = self._pb.WatchOrderRequest(order_id=order_id, interval_ms=interval_ms)
        return self._stream(self._stub.WatchOrder(request, **kw))

    def update_stock(self, changes, *, timeout_s=None, metadata=None):
        """Send `changes` ((sku, delta) pairs, an iterable or async iterable) on one
        bidirectional stream; async iterator of the items' new stock (dicts), one per change.
        A bad change (a list's at once, a generator's when reached) raises ValueError."""
        if isinstance(changes, (str, bytes)) or (
                not hasattr(changes, "__aiter__") and not hasattr(changes, "__iter__")):
            raise ValueError(f"changes must be an iterable of (sku, delta) pairs, got {changes!r}")
        if isinstance(changes, (list, tuple)):
            for i, change in enumerate(changes):
                _change(f"changes[{i}]", change)
        kw = self._prepare(timeout_s, metadata)
        make, bad = self._pb.StockChange, []

        async def requests():
            try:
                if hasattr(changes, "__aiter__"):
                    async for change in changes:
                        yield make(**_change("change", change))
                else:
                    for change in changes:
                        yield make(**_change("change", change))
            except ValueError as err:
                bad.append(err)                # ends the requests; the reader raises it
        return self._stream(self._stub.UpdateStock(requests(), **kw), bad)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        if channel is not None:
            await channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
