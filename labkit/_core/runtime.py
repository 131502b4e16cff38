"""What labkit started, so that one call can stop all of it.

Services, background tasks and client sessions register here when they start.
`await labkit.shutdown()` stops every one of them, in the running loop, with no
"unclosed session" warnings. Entries belong to the loop they were started on: a fresh
loop (a restarted kernel, a new test) starts from an empty registry.

Every service is tracked, two with the same name included (the registry is a list, not a
name -> service dict), so none escapes `shutdown()`. The ports of services it stopped are
remembered (the last 256) so that labkit's clients can say "the services were shut down"
instead of showing a connection-refused traceback.

Sessions made by `session()` never re-send a request behind the caller's back (see
`no_hidden_resends`): the reset rate a learner sets is the rate labkit's clients see.
"""
from __future__ import annotations

import asyncio
import collections
import re
import warnings
import weakref

_services: list = []                                  # every Service started, in start order
_stopped_ports: collections.deque = collections.deque(maxlen=256)
_tasks: "weakref.WeakSet[asyncio.Task]" = weakref.WeakSet()
# Strong references: a client dropped by a re-run cell keeps its session open (not left to the
# garbage collector, which would warn "Unclosed client session") until shutdown() closes it.
# Closed sessions are pruned whenever a new one is made, so the list holds only open ones.
_sessions: list = []                                  # aiohttp.ClientSession
_stoppers: list = []                                  # (loop or None, callable)
_warned_resends = False


def services() -> dict:
    """Running services of the current loop by name; for a name started twice, the first."""
    found: dict = {}
    for s in running_services():
        found.setdefault(s.name, s)
    return found


def running_services() -> list:
    """Every running service of the current loop, in start order (same names included)."""
    loop = _current_loop()
    return [s for s in _services if s.loop is loop and s.running]


def register_service(service) -> None:
    if not any(s is service for s in _services):
        _services.append(service)
    if service.port in _stopped_ports:
        _stopped_ports.remove(service.port)           # the OS gave the port to a new service


def forget_service(service, *, port: int | None = None) -> None:
    """`service` stopped; `port` is the one it listened on (remembered for `was_stopped`)."""
    _services[:] = [s for s in _services if s is not service]
    if port is not None and port not in _stopped_ports:
        _stopped_ports.append(port)


def was_stopped(port: int | None) -> bool:
    """True if a labkit service listened on `port` and was stopped, and none listens there now."""
    return port is not None and port in _stopped_ports and \
        not any(s.port == port for s in _services if s.running)


def spawn(coro, *, name: str | None = None) -> asyncio.Task:
    """Start a background task that `shutdown()` will cancel."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _tasks.add(task)
    return task


def session(**kwargs):
    """An aiohttp ClientSession that never re-sends behind your back and that `shutdown()`
    closes if you have not."""
    import aiohttp  # here, not at the top: `import labkit` and the patterns stay light

    s = aiohttp.ClientSession(**kwargs)
    no_hidden_resends(s)
    _sessions[:] = [x for x in _sessions if _open_on_a_live_loop(x)]
    _sessions.append(s)
    return s


def _open_on_a_live_loop(session) -> bool:
    loop = getattr(session, "_loop", None)
    return not session.closed and loop is not None and not loop.is_closed()


def _aiohttp_version() -> tuple[int, int]:
    import aiohttp
    major, minor = (int(x) for x in re.findall(r"\d+", aiohttp.__version__)[:2])
    return major, minor


def no_hidden_resends(session) -> bool:
    """Stop `session` from re-sending a request by itself; True if it now never does.

    Since 3.9, aiohttp's ClientSession sends a GET, HEAD, OPTIONS, TRACE, PUT or DELETE a second
    time, once, when the connection fails while sending it or before the response starts
    (ClientOSError, ServerDisconnectedError): RFC 9112's retry on a persistent connection, done
    for every connection. With `reset_rate=0.3` the caller then sees about 0.3 ** 2 = 9 % resets
    and the server logs ~30 % extra requests. aiohttp has no public switch; since 3.11 the
    session reads the private flag `_retry_connection`, which aiohttp's own test client
    (aiohttp.test_utils.TestClient) turns off for the same reason. We feature-detect it. On
    3.9 and 3.10 there is no switch: we warn once (upgrade with ``pip install "aiohttp>=3.11"``).
    """
    if hasattr(session, "_retry_connection"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # setting an attribute
            session._retry_connection = False
        return True
    if _aiohttp_version() < (3, 9):
        return True                                   # before 3.9 aiohttp never re-sent
    global _warned_resends
    if not _warned_resends:
        _warned_resends = True
        warnings.warn("this aiohttp version re-sends GET/PUT/DELETE requests once after a "
                      "connection reset and offers no switch to stop it, so reset rates on "
                      "those look smaller than set; fix: pip install \"aiohttp>=3.11\"",
                      RuntimeWarning, stacklevel=3)
    return False


def resends_disabled(session) -> bool:
    """True if `session` never re-sends a request by itself (see `no_hidden_resends`)."""
    flag = getattr(session, "_retry_connection", None)
    return flag is False or (flag is None and _aiohttp_version() < (3, 9))


def on_shutdown(stop, *, loop=None):
    """Register `stop()` (plain or async) to run at shutdown; `loop`: only on that loop.

    Returns `unregister()`, for things that stop earlier by themselves (so the list of
    stoppers does not grow with every re-run of a cell).
    """
    entry = (loop, stop)
    _stoppers.append(entry)

    def unregister() -> None:
        try:
            _stoppers.remove(entry)
        except ValueError:
            pass                                      # already ran, or already unregistered
    return unregister


async def shutdown() -> dict:
    """Stop every service, background task and client session labkit started.

    Returns counts of what was stopped, e.g. ``{"services": 2, "tasks": 1, "sessions": 1}``,
    plus the entries of any dict a stopper registered with `on_shutdown` returns (labkit.broker
    adds ``broker_connections``, ``broker_names_deleted`` and ``broker_problems``).
    Tasks get 5 s to end after being cancelled; services 1 s for requests in flight.
    """
    loop = asyncio.get_running_loop()
    stoppers = [(owner, stop) for owner, stop in _stoppers if owner is None or owner is loop]
    _stoppers[:] = [(owner, stop) for owner, stop in _stoppers
                    if owner is not None and owner is not loop and not owner.is_closed()]
    reports: dict = {}
    for _, stop in stoppers:
        result = stop()
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, dict):                  # a stopper's own summary (e.g. brokers)
            reports.update(result)
    tasks = [t for t in list(_tasks) if not t.done() and t.get_loop() is loop
             and t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    sessions = [s for s in list(_sessions) if not s.closed and getattr(s, "_loop", loop) is loop]
    for s in sessions:
        await s.close()
    _sessions[:] = [s for s in _sessions if _open_on_a_live_loop(s)]
    svcs = [s for s in _services if s.loop is loop and s.running]
    for s in svcs:
        await s.stop()
    # Forget what belongs to this loop or to loops that are gone (a restarted kernel).
    _services[:] = [s for s in _services if s.running and s.loop is not loop
                    and s.loop is not None and not s.loop.is_closed()]
    return {"services": len(svcs), "tasks": len(tasks), "sessions": len(sessions), **reports}


def _current_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
