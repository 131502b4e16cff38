"""Simulated services: real aiohttp servers on 127.0.0.1 with live fault knobs.

Defined in chapter 1 (notebooks/01_sync.ipynb). A service is one JSON collection with the
usual REST routes, declared in one line as a `ServiceSpec`:

    GET    /{collection}          200  list
    POST   /{collection}          201  create (Location header); 400 bad body; 409 duplicate
    GET    /{collection}/{id}     200  or 404
    PUT    /{collection}/{id}     200  replace; 400; 404; 409
    DELETE /{collection}/{id}     204  or 404
    POST   /{collection}/batch-get 200  {"results": [record or null, ...]} for {"ids": [...]},
                                  in request order (chapter 06); 400 for a bad body or more
                                  than `BATCH_MAX_IDS` (100) ids
    GET    /health                200

`Service.connections_accepted` counts the TCP connections the server accepted (chapter 06:
a keep-alive session reuses one; a new session per request opens one per request).

Every request passes the fault layer first, in this order:

1. ``X-Deadline-Remaining-Ms`` (chapter 5): parsed by `labkit.patterns.deadline.
   decode_remaining_ms`; a malformed value gets 400 naming the header and a value of 0 or less
   gets 504, both before any work. A delay longer than the time left is cut short with 504.
2. The fault decision (`FaultModel`): from the request's ``X-Request-Id`` when it has one
   (labkit's clients send a fresh id per call), so concurrent requests get the same faults in
   every run with the same seed; in arrival order otherwise.
3. ``Idempotency-Key`` on a POST (chapter 5, the IETF draft "The Idempotency-Key HTTP Header
   Field"): a retry with the same key and payload replays the first answer, a different
   payload gets 422, a retry while the first is still being processed gets 409. Keys expire
   24 h after first seen (``idempotency_ttl_s``) and at most ``idempotency_max_keys`` (10 000)
   are kept, oldest evicted first (see labkit.services.idempotency).
4. The injected delay (the time the work takes), reset, error or slow body.

A spec can add routes of its own, e.g. an endpoint that calls another service:
``ServiceSpec("checkout", routes=(("POST", "/checkout", handler),))`` where
``async def handler(service, request) -> web.Response``; they sit behind the same fault layer.

Start one inside the notebook's running loop: ``users = await start_service("users")``.
Starting a name that is already running returns the running service. Each service listens
with a backlog of 4096 connections (`DEFAULT_BACKLOG`; aiohttp's default of 128 turns a burst
of 1000 new connections into SYN retransmits that look like seconds of service latency); the
kernel caps it at net.core.somaxconn (`somaxconn()`).
"""
from __future__ import annotations

import asyncio
import collections
import functools
import json
from dataclasses import dataclass, field

from aiohttp import web

from labkit._core import runtime, seeding, validate
from labkit.patterns.deadline import HEADER as DEADLINE_HEADER, decode_remaining_ms
from labkit.services import idempotency, layers as service_layers, negotiation as neg, toxics
from labkit.services.faults import FaultModel
from labkit.services.toxics import Blackhole  # noqa: F401  (labkit.Blackhole)

REQUEST_ID_HEADER = "X-Request-Id"
DEFAULT_BACKLOG = 4096
BATCH_MAX_IDS = 100          # ids one POST /{collection}/batch-get may ask for


@dataclass(frozen=True)
class ServiceSpec:
    """A service declaration: its name, collection, required fields and unique fields."""
    name: str
    fields: dict = field(default_factory=dict)      # field name -> type (str, int, float, bool)
    collection: str = ""                             # URL segment; defaults to the name
    unique: tuple = ()
    routes: tuple = ()          # extra (method, path, handler); handler(service, request)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.fields, dict):
            raise ValueError(f"fields must be a dict of field name -> type, got {self.fields!r}")

    @property
    def path(self) -> str:
        return "/" + (self.collection or self.name)


SPECS: dict[str, ServiceSpec] = {s.name: s for s in (
    ServiceSpec("users", {"name": str, "email": str}, unique=("email",)),
    ServiceSpec("inventory", {"sku": str, "stock": int}, collection="items", unique=("sku",)),
    ServiceSpec("payments", {"order_id": str, "amount_cents": int}, unique=("order_id",)),
    ServiceSpec("orders", {"user_id": int, "sku": str, "quantity": int}),
    ServiceSpec("notifications", {"to": str, "message": str}),
)}


@dataclass(frozen=True)
class Served:
    """One request as the service saw it (server-side log)."""
    t: float            # loop time when it arrived, seconds
    method: str
    path: str
    status: int         # 0 for a reset connection (or a client that hung up)
    fault: str          # "pass", "error", "outage", "reset", "deadline", "invalid" (400)
    duration_s: float
    request_id: str | None = None     # the X-Request-Id it carried
    delay_s: float = 0.0              # the latency the fault layer injected (ground truth)


def _json(status: int, body) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def somaxconn() -> int | None:
    """The kernel's cap on any listen backlog (Linux net.core.somaxconn), or None if unknown."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class ServicesShutDown(RuntimeError):
    """A service that `labkit.shutdown()` (or `stop()`) stopped was used."""

    def __init__(self, where: str):
        super().__init__(f"{where}: the services were shut down; run the start cell again "
                         f"(the one with `await labkit.start_service(...)`)")


def _error(status: int, message: str, headers=None, request=None) -> web.Response:
    """An error body, negotiated like answers when the request is given (chapter 04), but
    never a 406: a client that accepts neither type gets JSON."""
    return neg.respond(request, status, {"error": message, "status": status}, strict=False,
                       headers=headers)


class Service:
    """A running (or stopped) simulated service; see the module docstring.

    `seed` (default: the course seed when created) drives its faults. `backlog` is the listen
    backlog: connections the kernel queues before the server accepts them (default 4096; the
    kernel caps it at net.core.somaxconn, see `effective_backlog`). `idempotency_ttl_s` and
    `idempotency_max_keys` set the idempotency-key expiry and limit. `log` keeps the last
    `log_size` requests; `counts` and `requests_seen` count all of them.
    """

    def __init__(self, spec: ServiceSpec, *, seed: int | None = None, log_size: int = 10_000,
                 backlog: int = DEFAULT_BACKLOG,
                 idempotency_ttl_s: float = idempotency.DEFAULT_TTL_S,
                 idempotency_max_keys: int = idempotency.DEFAULT_MAX_KEYS):
        if not isinstance(spec, ServiceSpec):
            raise ValueError(f"spec must be a ServiceSpec, got {spec!r}")
        self.spec = spec
        self.name = spec.name
        self.seed = seeding.course_seed() if seed is None else validate.integer("seed", seed)
        self.backlog = validate.integer("backlog", backlog, 1, 65535)
        self.faults = FaultModel()
        self.rng = seeding.rng(f"service:{spec.name}", self.seed)
        self._key_prefix = f"labkit:{self.seed}:service:{spec.name}:request:"
        self.log: collections.deque[Served] = collections.deque(
            maxlen=validate.integer("log_size", log_size, 1))
        self.counts: collections.Counter = collections.Counter()      # outcome -> requests
        self.status_counts: collections.Counter = collections.Counter()
        self.items: dict[int, dict] = {}
        self._next_id = 1
        self.idempotency = idempotency.IdempotencyStore(
            ttl_s=validate.number("idempotency_ttl_s", idempotency_ttl_s, 0, lo_open=True,
                                  unit=" seconds"),
            max_keys=validate.integer("idempotency_max_keys", idempotency_max_keys, 1))
        self.shedding = None          # chapter 06: a labkit.services.shedding.Shedding, or off
        self._runner: web.AppRunner | None = None
        self._was_stopped = False
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections_accepted = 0    # TCP connections accepted since created (chapter 06)

    @property
    def requests_seen(self) -> int:
        """Every request the service received (the log keeps only the last `log_size`)."""
        return sum(self.counts.values())

    @property
    def effective_backlog(self) -> int:
        """The backlog the kernel really grants: min(backlog, net.core.somaxconn)."""
        cap = somaxconn()
        return self.backlog if cap is None else min(self.backlog, cap)

    # ---- lifecycle -------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if self.port is None:
            if self._was_stopped:
                raise ServicesShutDown(f"service {self.name!r}")
            raise RuntimeError(f"service {self.name!r} is not running: await start_service({self.name!r})")
        return f"http://127.0.0.1:{self.port}"

    def make_app(self, *, faults: bool = True, layers: bool = True) -> web.Application:
        """The aiohttp app; `faults=False` leaves out the fault layer (deadlines, idempotency
        keys) and the outer layers; `layers=False` only the outer ones (used by benchmarks)."""
        app = web.Application()
        if faults:
            outer = service_layers.outer_middlewares(self, app) if layers else []
            app.middlewares.extend([*outer, self._fault_layer])
        p = self.spec.path
        app.router.add_get("/health", self._health)
        app.router.add_get(p, self._list)
        app.router.add_post(p, self._create)
        app.router.add_post(p + "/batch-get", self._batch_get)
        app.router.add_get(p + "/{id}", self._get)
        app.router.add_put(p + "/{id}", self._put)
        app.router.add_delete(p + "/{id}", self._delete)
        for method, path, handler in self.spec.routes:
            app.router.add_route(method, path, functools.partial(handler, self))
        return app

    async def start(self) -> "Service":
        if self.running:
            return self
        self.loop = asyncio.get_running_loop()
        # handler_cancellation: a request whose client hung up stops waiting (as a real
        # server's worker would be freed), so stop() never waits on a 60 s injected delay.
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False,
                               handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        self._count_connections(runner.server)
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=self.backlog)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._was_stopped = False
        runtime.register_service(self)
        return self

    def _count_connections(self, server) -> None:
        """Count accepted connections: aiohttp's server calls its `connection_made(handler,
        transport)` once per accepted TCP connection; we wrap it (an int, no per-connection
        memory)."""
        made = server.connection_made

        def connection_made(handler, transport):
            self.connections_accepted += 1
            made(handler, transport)
        server.connection_made = connection_made

    async def stop(self) -> None:
        """Stop listening (requests in flight get 1 s to finish); `labkit.shutdown()` calls it."""
        runner, self._runner = self._runner, None
        port, self.port = self.port, None
        if runner is not None:
            self._was_stopped = True
            await runner.cleanup()
        runtime.forget_service(self, port=port)

    def summary(self) -> dict:
        """Counts of all requests by outcome and status, plus the fault knobs."""
        return {"name": self.name, "url": self.url if self.running else None,
                "requests": self.requests_seen, "connections_accepted": self.connections_accepted,
                "outcomes": dict(self.counts),
                "statuses": {str(k): v for k, v in self.status_counts.items()},
                "items": len(self.items), "faults": self.faults.summary(),
                "idempotency": self.idempotency.summary()}

    def __repr__(self):
        where = self.url if self.running else "stopped"
        return f"<Service {self.name} {where} | {self.faults.describe()}>"

    # ---- fault layer -------------------------------------------------------
    @web.middleware
    async def _fault_layer(self, request: web.Request, handler):
        loop_time = asyncio.get_running_loop().time
        start = loop_time()
        headers = request.headers
        rid = headers.get(REQUEST_ID_HEADER)
        outcome, status, claim = "pass", 0, None
        delay_s = 0.0
        try:
            budget = None
            raw = headers.get(DEADLINE_HEADER)
            if raw is not None:                          # 1. deadline, before any work
                try:
                    budget = decode_remaining_ms(raw)
                except ValueError as err:
                    outcome, status = "invalid", 400
                    return _error(400, str(err), request=request)
                if budget <= 0:
                    outcome, status = "deadline", 504
                    return _error(504, "deadline exceeded before any work was done",
                                  request=request)
            fault = (self.faults.decide(self.rng) if rid is None       # 2. the fault
                     else self.faults.decide_keyed(self._key_prefix + rid))
            outcome = fault.action
            if outcome == "outage":
                status = 503
                return _error(503, f"{self.name} is down (outage)", request=request)
            if request.method == "POST" and idempotency.HEADER in headers:   # 3. idempotency
                verdict = self.idempotency.begin(
                    request.path, idempotency.normalize_key(headers[idempotency.HEADER]),
                    await request.read())
                if verdict.kind != "claimed":
                    response = _idempotent_answer(verdict, request)
                    status = response.status
                    return response
                claim = verdict.token
            if fault.delay_s:                                              # 4. the work
                delay_s = fault.delay_s
                if budget is not None and fault.delay_s > budget:
                    await asyncio.sleep(budget)
                    outcome, status = "deadline", 504
                    return _error(504, "deadline exceeded: work abandoned", request=request)
                await asyncio.sleep(fault.delay_s)
            if outcome == "reset":
                toxics.reset(request)
                return web.Response()
            if outcome == "error":
                status = fault.status
                extra = ({"Retry-After": f"{fault.retry_after_s:g}"}
                         if fault.retry_after_s is not None else None)
                return _error(fault.status, f"injected fault {fault.status}", extra, request)
            try:
                response = await handler(request)
            except web.HTTPException as exc:           # 404 / 405 for unknown routes
                status = exc.status
                raise
            except Exception:
                status = 500                            # aiohttp answers 500
                raise
            status = response.status
            if claim is not None:
                kept = {k: response.headers[k] for k in ("Content-Type", "Location", "Vary")
                        if k in response.headers}
                self.idempotency.finish(claim, status, getattr(response, "body", None), kept)
                claim = None
            if fault.slow_body_s and getattr(response, "body", None):
                return await toxics.trickle(request, response, fault.slow_body_s)
            return response
        finally:
            if claim is not None:                      # the work never ran: free the key
                self.idempotency.release(claim)
            self.counts[outcome] += 1
            self.status_counts[status] += 1
            self.log.append(Served(start, request.method, request.path, status, outcome,
                                   loop_time() - start, rid, delay_s))

    # ---- REST handlers -------------------------------------------------------
    async def _health(self, request):
        return _json(200, {"status": "ok", "service": self.name})

    def render(self, request: web.Request, body, status: int = 200) -> web.Response:
        """A successful answer (a record, or the list) in the encoding the request's Accept
        asks for: JSON or MessagePack, else 406 (chapter 04, labkit.services.negotiation)."""
        return neg.respond(request, status, body)

    async def _list(self, request):
        return self.render(request, list(self.items.values()))

    def _find(self, request) -> tuple[int | None, web.Response | None]:
        raw = request.match_info["id"]
        if not raw.isdigit() or int(raw) not in self.items:
            return None, _error(404, f"{self.spec.path.strip('/')} {raw} not found",
                                request=request)
        return int(raw), None

    async def _get(self, request):
        key, missing = self._find(request)
        return missing or self.render(request, self.items[key])

    async def _batch_get(self, request):
        """POST {"ids": [...]}: the records in the order asked, null for an id not found; one
        request, so one fault decision for the whole batch (chapter 06)."""
        err = functools.partial(_error, 400, request=request)
        ctype = request.headers.get("Content-Type")
        try:
            body = neg.decode(ctype, await request.read())
        except neg.UnsupportedMediaType as e:
            return neg.unsupported(request, e)
        except neg.DecodeError as e:
            return err(f"body is not valid {neg.format_name(ctype or '')}: {e.reason}")
        if not isinstance(body, dict) or set(body) != {"ids"} or not isinstance(body["ids"], list):
            return err('body must be an object with one field, "ids": a list of ids, '
                       'e.g. {"ids": [1, 2, 3]}')
        ids = body["ids"]
        if len(ids) > BATCH_MAX_IDS:
            return err(f"at most {BATCH_MAX_IDS} ids per batch-get, got {len(ids)}: "
                       "split the batch")
        bad = [i for i in ids if not isinstance(i, int) or isinstance(i, bool)]
        if bad:
            return err(f"ids must be integers, got {bad[0]!r}")
        return self.render(request, {"results": [self.items.get(i) for i in ids]})

    async def _create(self, request):
        if not neg.acceptable(request.headers.get("Accept")):     # 406 before any change
            return neg.not_acceptable(request)
        record, problem = await self._read(request)
        if problem:
            return problem
        record = {"id": self._next_id, **record}
        self._next_id += 1
        self.items[record["id"]] = record
        resp = self.render(request, record, 201)
        resp.headers["Location"] = f"{self.spec.path}/{record['id']}"
        return resp

    async def _put(self, request):
        key, missing = self._find(request)
        if missing:
            return missing
        if not neg.acceptable(request.headers.get("Accept")):     # 406 before any change
            return neg.not_acceptable(request)
        record, problem = await self._read(request, exclude=key)
        if problem:
            return problem
        self.items[key] = {"id": key, **record}
        return self.render(request, self.items[key])

    async def _delete(self, request):
        key, missing = self._find(request)
        if missing:
            return missing
        del self.items[key]
        return web.Response(status=204)

    async def _read(self, request, exclude: int | None = None):
        """The request's record, decoded by its Content-Type (chapter 04: JSON or MessagePack,
        else 415; 400 naming the format if it does not decode) and checked; or an error."""
        ctype = request.headers.get("Content-Type")
        try:
            body = neg.decode(ctype, await request.read())
        except neg.UnsupportedMediaType as err:
            return None, neg.unsupported(request, err)
        except neg.DecodeError as err:
            fmt = neg.format_name(ctype or "")
            return None, _error(400, f"body is not valid {fmt}: {err.reason}", request=request)
        return self._validate(body, exclude, request, neg.format_name(ctype or ""))

    def _validate(self, body, exclude: int | None, request, fmt: str = "JSON"):
        err = functools.partial(_error, request=request)
        if not isinstance(body, dict) or not all(isinstance(k, str) for k in body):
            return None, err(400, "body must be a JSON object" if fmt == "JSON"
                             else f"body must be a {fmt} map with text keys")
        fields = self.spec.fields
        unknown = sorted(set(body) - set(fields))
        if unknown:
            return None, err(400, f"unknown fields: {', '.join(unknown)}")
        missing = [f for f in fields if f not in body]
        if missing:
            return None, err(400, f"missing fields: {', '.join(missing)}")
        for name, typ in fields.items():
            value = body[name]
            if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
                return None, err(400, f"field {name!r} must be {typ.__name__}")
        for name in self.spec.unique:
            for key, other in self.items.items():
                if key != exclude and other[name] == body[name]:
                    return None, err(409, f"{name} {body[name]!r} already exists")
        return {f: body[f] for f in fields}, None


def _idempotent_answer(verdict, request) -> web.Response:
    """The answer for a key seen before: the replay, 422 or 409 (labkit.services.idempotency)."""
    if verdict.kind == "replay":
        record = verdict.record
        resp = web.Response(status=record.status, body=record.body, headers=record.headers)
        resp.headers["Idempotent-Replayed"] = "true"
        return resp
    if verdict.kind == "mismatch":
        return _error(422, "Idempotency-Key reused with a different payload: a key names one "
                           "request; use a new key for a new request", request=request)
    return _error(409, "a request with this Idempotency-Key is still being processed; "
                       "retry later (no change needed)", request=request)


async def start_service(name: str | ServiceSpec = "users", *, seed: int | None = None,
                        **options) -> Service:
    """Start a service by name (see `SPECS`) or from a `ServiceSpec`, or return it if running.

    Binds 127.0.0.1 on a port the OS picks, inside the running event loop: use top-level
    ``await`` in a notebook. `options` go to `Service` (backlog, idempotency_ttl_s, ...).
    """
    if isinstance(name, ServiceSpec):
        spec = name
    elif isinstance(name, str):
        spec = SPECS.get(name)
        if spec is None:
            raise ValueError(f"unknown service {name!r}; known: {', '.join(SPECS)} (or pass a ServiceSpec)")
    else:
        raise ValueError(f"name must be a service name (str) or a ServiceSpec, got {name!r}; "
                         f"known names: {', '.join(SPECS)}")
    running = runtime.services().get(spec.name)
    if running is not None:
        return running
    return await Service(spec, seed=seed, **options).start()
