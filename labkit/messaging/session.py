"""`labkit.broker()`: the one call a chapter 02 notebook makes to get a broker connection.

    conn = await labkit.broker()              # the kernel's embedded broker (one per event loop)
    conn = await labkit.broker(url="amqp://guest:guest@127.0.0.1:5672/")   # or $LABKIT_AMQP_URL
    conn.backend, conn.broker, conn.journal   # "embedded"/"rabbitmq", the Broker (or None), events
    await labkit.shutdown()                   # closes them; deletes this run's names on RabbitMQ

Every call in one loop shares one embedded broker, as cells share a real one; `shutdown()`
gives the next run a fresh one. On RabbitMQ, names are namespaced per run: the server holds
`lk-<run id>.kitchen`, the notebook sees and uses `kitchen` everywhere (names, deliveries,
dead-letter arguments, x-death, the journal), so re-runs and parallel kernels never collide and
shutdown deletes exactly what this run declared ("" / `amq.*` names are left as they are). An
unreachable URL costs one sentence, then the embedded broker. The run id is not drawn from
the course seed on purpose: two kernels with the same seed must still get different ids.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import uuid
import weakref
from urllib.parse import urlsplit

from labkit._core import runtime, validate
from labkit.messaging import api
from labkit.messaging.api import DEFAULT_URL_ENV, BrokerUnavailable
from labkit.messaging.broker import Broker
from labkit.messaging.journal import Journal

__all__ = ["broker", "embedded_broker", "run_id", "MAX_NAMES", "CLEANUP_TIMEOUT_S"]

MAX_NAMES = 10_000           # queues + exchanges one run may declare on RabbitMQ (all deleted)
CLEANUP_TIMEOUT_S = 10.0     # shutdown's bound for closing connections and deleting names
_STEP_TIMEOUT_S = 3.0        # one close, connect or delete during cleanup
_run_ids: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()    # loop -> run id
_sessions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # loop -> _Session


class _Session:
    """What `broker()` made in one loop, until `labkit.shutdown()` cleans it up."""

    def __init__(self, loop):
        self.broker: Broker | None = None
        self.connections: list = []                 # open ones (closed ones are pruned)
        self.declared: dict[str, dict] = {}         # url -> {(kind, server name): None}
        runtime.on_shutdown(lambda: _stop(loop, self), loop=loop)


def _loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("labkit.broker() needs a running event loop: call it in a notebook "
                           "cell, or inside asyncio.run() or labkit.sim.run()") from None


def _session() -> _Session:
    loop = _loop()
    if loop not in _sessions:
        _sessions[loop] = _Session(loop)
    return _sessions[loop]


def run_id() -> str:
    """This loop's run id (8 hex digits), fixed for the loop's life, shutdown included."""
    loop = _loop()
    if loop not in _run_ids:
        _run_ids[loop] = uuid.uuid4().hex[:8]
    return _run_ids[loop]


def embedded_broker() -> Broker:
    """The running loop's embedded Broker (made on first use; fresh after shutdown)."""
    s = _session()
    if s.broker is None:
        s.broker = Broker()
    return s.broker


async def broker(url: str | None = None, *, fallback: bool = True, timeout_s: float = 3.0):
    """A connection to the loop's embedded broker, or to RabbitMQ at `url` / $LABKIT_AMQP_URL
    with this run's namespace. Unreachable: one sentence, then the embedded broker
    (`fallback=False`: BrokerUnavailable with that sentence). Chapter 02."""
    timeout_s = validate.number("timeout_s", timeout_s, 0, lo_open=True, unit=" s")
    fallback = validate.boolean("fallback", fallback)
    source = "url"
    if validate.text("url", url, optional=True) is None and os.environ.get(DEFAULT_URL_ENV):
        url, source = os.environ[DEFAULT_URL_ENV], f"url (from ${DEFAULT_URL_ENV})"
    s, conn = _session(), None
    s.connections[:] = [c for c in s.connections if not c.is_closed]
    if url is not None:
        _check_url(url, source)
        try:
            conn = await _connect(url, s, timeout_s)
        except BrokerUnavailable as e:
            if not fallback:
                raise
            print(f"{e.what}; this chapter goes on with the embedded broker.")
    conn = conn if conn is not None else await api.connect(broker=embedded_broker())
    s.connections.append(conn)
    return conn


def _shown(url: str) -> str:
    """`url` with its password replaced by ***."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _check_url(url: str, source: str) -> None:
    parts = urlsplit(url)
    try:
        ok = parts.scheme in ("amqp", "amqps") and bool(parts.hostname) and parts.port != -1
    except ValueError:                             # the port is not a number
        ok = False
    if not ok:
        raise ValueError(f"{source} must look like amqp://user:password@host:5672/ (or "
                         f"amqps://), got {_shown(url)!r}")


def _why(error) -> str:
    """Why a connect failed, in words (aiormq puts the errno first in its error's args)."""
    code = (getattr(error, "args", None) or [None])[0]
    if error is None or isinstance(error, TimeoutError):
        return "no answer"
    if "Authentication" in type(error).__name__:
        return "user or password refused"
    if code == errno.ECONNREFUSED or isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return "host name not found" if isinstance(code, int) and code < 0 else type(error).__name__


@contextlib.contextmanager
def _quiet():
    """aiormq logs each failed connect attempt; the learner gets our one sentence instead."""
    log = logging.getLogger("aiormq.connection")
    f = lambda record: not str(record.msg).startswith("error when creating transport")  # noqa
    log.addFilter(f)
    try:
        yield
    finally:
        log.removeFilter(f)


async def _connect(url: str, session: _Session, timeout_s: float) -> "_Connection":
    names = _Names(run_id())
    with _quiet():
        try:
            raw = await api.connect(url, journal=_Journal(names), timeout_s=timeout_s)
        except BrokerUnavailable as e:
            what = (f"RabbitMQ did not answer at {_shown(url)} ({_why(e.__context__)} within "
                    f"{timeout_s:g} s)")
            error = BrokerUnavailable(f"{what}; start it, or call labkit.broker() without a url "
                                      "for the embedded broker.")
            error.what = what
            raise error from None
    return _Connection(raw, names, session.declared.setdefault(url, {}))


async def _stop(loop, session: _Session) -> dict:
    """The shutdown hook: close this loop's connections, delete its RabbitMQ names. Never
    raises; what went wrong is listed in the summary's `broker_problems`."""
    if _sessions.get(loop) is session:
        del _sessions[loop]                        # the next broker() starts a fresh session
    report = {"broker_connections": 0, "broker_names_deleted": 0, "broker_problems": []}
    try:
        await asyncio.wait_for(_cleanup(session, report), CLEANUP_TIMEOUT_S)
    except Exception as e:  # TimeoutError included: shutdown finishes whatever the broker does
        report["broker_problems"].append(f"broker cleanup stopped early: {e!r}")
    return report


async def _cleanup(session: _Session, report: dict) -> None:
    conns, session.connections = session.connections, []
    if session.broker is not None:                 # also connect(broker=embedded_broker())
        conns += [c for c in session.broker._connections.values() if c not in conns]
    for c in [c for c in conns if not c.is_closed]:
        try:
            await c.close(timeout_s=_STEP_TIMEOUT_S)
            report["broker_connections"] += 1
        except Exception as e:
            report["broker_problems"].append(f"closing {c!r}: {type(e).__name__}: {e}")
    session.broker = None
    for url, names in session.declared.items():
        if names:
            await _delete_names(url, names, report)


async def _delete_names(url: str, names: dict, report: dict) -> None:
    order = sorted(names, key=lambda kn: kn[0] != "queue")     # queues, then exchanges
    try:
        with _quiet():
            admin = await api.connect(url, timeout_s=_STEP_TIMEOUT_S)
    except Exception as e:
        return report["broker_problems"].append(
            f"RabbitMQ at {_shown(url)} did not answer ({type(e).__name__}); {len(order)} "
            f"queues/exchanges of this run stay there (lk-{run_id()}.*)")
    try:
        ch = None
        for kind, name in order:
            try:
                if ch is None or ch.is_closed:
                    ch = await asyncio.wait_for(admin.channel(), _STEP_TIMEOUT_S)
                delete = ch.queue_delete if kind == "queue" else ch.exchange_delete
                await asyncio.wait_for(delete(name), _STEP_TIMEOUT_S)
                names.pop((kind, name), None)
                report["broker_names_deleted"] += 1
            except Exception as e:
                report["broker_problems"].append(f"deleting {kind} {name}: {type(e).__name__}")
    finally:
        with contextlib.suppress(Exception):
            await admin.close(timeout_s=_STEP_TIMEOUT_S)


class _Names:
    """One run's namespace: the learner's `kitchen` is the server's `lk-<run id>.kitchen`."""

    def __init__(self, rid: str):
        self.prefix = f"lk-{rid}."

    def server(self, name):
        if not isinstance(name, str) or not name or name.startswith(("amq.", self.prefix)):
            return name
        return self.prefix + name

    def learner(self, name):
        ours = isinstance(name, str) and name.startswith(self.prefix)
        return name[len(self.prefix):] if ours else name

    def arguments(self, arguments):
        if arguments is None:
            return None
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments must be a dict or None, got {arguments!r}")
        out, dlx = dict(arguments), arguments.get("x-dead-letter-exchange")
        if dlx is not None:
            out["x-dead-letter-exchange"] = self.server(dlx)
            if dlx == "" and "x-dead-letter-routing-key" in out:     # it names a queue
                out["x-dead-letter-routing-key"] = self.server(out["x-dead-letter-routing-key"])
        return out

    def delivery(self, d):
        """The delivery as the learner sees it: names without the prefix, x-death included."""
        if d is None:
            return None
        d.queue, d.exchange = self.learner(d.queue), self.learner(d.exchange)
        d.routing_key, h, bare = self.learner(d.routing_key), d.headers, self.learner
        if isinstance(h.get("x-death"), list):
            h["x-death"] = [{**e, "queue": bare(e.get("queue")),
                             "exchange": bare(e.get("exchange")),
                             "routing-keys": [bare(k) for k in e.get("routing-keys", [])]}
                            if isinstance(e, dict) else e for e in h["x-death"]]
        for key in ("x-first-death-queue", "x-first-death-exchange", "x-last-death-queue",
                    "x-last-death-exchange"):
            if key in h:
                h[key] = bare(h[key])
        return d


class _Journal(Journal):
    """The client's journal, with queue names as the learner knows them."""

    def __init__(self, names: _Names):
        super().__init__()
        self._names = names

    def record(self, kind, message_id, queue="", *args, **kw):
        return super().record(kind, message_id, self._names.learner(queue), *args, **kw)


class _Proxy:
    """An amqp backend object in a run's namespace; what it does not override (is_closed,
    close, set_qos, cancel, status, purge, ...) goes to the backend object unchanged."""

    def __init__(self, raw, names: _Names):
        self._raw, self._names = raw, names

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self._raw, attr)

    def __repr__(self):
        return f"<{type(self).__name__[1:]} {getattr(self, 'name', '')!r} ({self._names.prefix}*)>"


class _Connection(_Proxy):
    """A RabbitMQ connection in this run's namespace (`namespace`: the server-side prefix)."""

    backend, broker = "rabbitmq", None

    def __init__(self, raw, names: _Names, declared: dict):
        super().__init__(raw, names)
        self._declared, self.journal, self.namespace = declared, raw.journal, names.prefix

    async def channel(self, publisher_confirms: bool = True) -> "_Channel":
        return _Channel(self, await self._raw.channel(publisher_confirms))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self._raw.close()

    def _record(self, kind: str, name: str, *, ours: bool = False) -> None:
        """Remember a declared server name for shutdown (`ours`: server-named, also ours)."""
        if not (ours or name.startswith(self._names.prefix)):
            return                                  # "", amq.*: not this run's to delete
        if (kind, name) not in self._declared and len(self._declared) >= MAX_NAMES:
            raise RuntimeError(f"this run declared {MAX_NAMES} queues and exchanges; delete "
                               "some (queue_delete, exchange_delete) before declaring more")
        self._declared[(kind, name)] = None


class _Channel(_Proxy):
    def __init__(self, connection: _Connection, raw):
        super().__init__(raw, connection._names)
        self.connection = connection
        self.default_exchange = _Exchange(self, raw.default_exchange)

    async def declare_exchange(self, name: str, type: str = "direct", **flags) -> "_Exchange":
        server = self._names.server(validate.text("name", name))
        self.connection._record("exchange", server)
        return _Exchange(self, await self._raw.declare_exchange(server, type, **flags))

    async def declare_queue(self, name: str = "", *, arguments: dict | None = None,
                            **flags) -> "_Queue":
        server = self._names.server(validate.text("name", name))
        if server:
            self.connection._record("queue", server)
        q = await self._raw.declare_queue(server, arguments=self._names.arguments(arguments),
                                          **flags)
        self.connection._record("queue", q.name, ours=True)     # server-named ones too
        return _Queue(self, q)

    async def get_queue(self, name: str) -> "_Queue":
        return _Queue(self, await self._raw.get_queue(self._names.server(validate.text("name", name))))

    async def queue_delete(self, name: str) -> int:
        return await self._delete("queue", self._raw.queue_delete, name)

    async def exchange_delete(self, name: str) -> None:
        await self._delete("exchange", self._raw.exchange_delete, name)

    async def _delete(self, kind, delete, name):
        server = self._names.server(validate.text("name", name))
        result = await delete(server)
        self.connection._declared.pop((kind, server), None)     # gone: not shutdown's to do
        return result


class _Exchange(_Proxy):
    def __init__(self, channel: _Channel, raw):
        super().__init__(raw, channel._names)
        self.channel, self.name = channel, self._names.learner(raw.name)

    async def publish(self, message, routing_key: str, **kw) -> bool:
        """As api's publish; on the default exchange the routing key names a queue."""
        if self._raw.name == "":
            routing_key = self._names.server(validate.text("routing_key", routing_key))
        return await self._raw.publish(message, routing_key, **kw)

    async def delete(self) -> None:
        await self.channel.exchange_delete(self.name)


class _Queue(_Proxy):
    def __init__(self, channel: _Channel, raw):
        super().__init__(raw, channel._names)
        self.channel, self.name = channel, self._names.learner(raw.name)

    def _exchange(self, exchange) -> str:
        name = exchange if isinstance(exchange, str) else getattr(exchange, "name", None)
        return self._names.server(validate.text("exchange", name))

    async def bind(self, exchange, routing_key: str = "") -> None:
        await self._raw.bind(self._exchange(exchange), routing_key)

    async def unbind(self, exchange, routing_key: str = "") -> None:
        await self._raw.unbind(self._exchange(exchange), routing_key)

    async def consume(self, callback, *, no_ack: bool = False) -> str:
        if not callable(callback):
            raise ValueError(f"callback must be an async function, got {callback!r}")

        async def on_message(delivery):
            await callback(self._names.delivery(delivery))
        return await self._raw.consume(on_message, no_ack=no_ack)

    async def get(self, **kw):
        return self._names.delivery(await self._raw.get(**kw))

    async def delete(self) -> int:
        return await self.channel.queue_delete(self.name)
