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
from labkit.messaging.namespace import MAX_NAMES, _Connection, _Journal, _Names

__all__ = ["broker", "embedded_broker", "run_id", "MAX_NAMES", "CLEANUP_TIMEOUT_S"]

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
        s.broker = Broker(log_handler_errors=True)    # a learner's handler errors are shown
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
