"""What labkit started, so that one call can stop all of it.

Services, background tasks and client sessions register here when they start.
`await labkit.shutdown()` stops every one of them, in the running loop, with no
"unclosed session" warnings. Entries belong to the loop they were started on: a fresh
loop (a restarted kernel, a new test) starts from an empty registry.
"""
from __future__ import annotations

import asyncio
import weakref

_services: dict[str, object] = {}                    # name -> Service
_tasks: "weakref.WeakSet[asyncio.Task]" = weakref.WeakSet()
_sessions: weakref.WeakSet = weakref.WeakSet()        # aiohttp.ClientSession
_stoppers: list = []                                  # (loop or None, callable)


def services() -> dict:
    """Running services by name (only those of the current loop)."""
    loop = _current_loop()
    return {n: s for n, s in _services.items() if s.loop is loop and s.running}


def register_service(service) -> None:
    _services[service.name] = service


def forget_service(service) -> None:
    if _services.get(service.name) is service:
        del _services[service.name]


def spawn(coro, *, name: str | None = None) -> asyncio.Task:
    """Start a background task that `shutdown()` will cancel."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _tasks.add(task)
    return task


def session(**kwargs):
    """An aiohttp ClientSession that `shutdown()` closes if you have not."""
    import aiohttp  # here, not at the top: `import labkit` and the patterns stay light

    s = aiohttp.ClientSession(**kwargs)
    _sessions.add(s)
    return s


def on_shutdown(stop, *, loop=None) -> None:
    """Register `stop()` (plain or async) to run at shutdown; `loop`: only on that loop."""
    _stoppers.append((loop, stop))


async def shutdown() -> dict:
    """Stop every service, background task and client session labkit started.

    Returns counts of what was stopped, e.g. ``{"services": 2, "tasks": 1, "sessions": 1}``.
    """
    loop = asyncio.get_running_loop()
    stoppers, _stoppers[:] = list(_stoppers), []
    for owner, stop in stoppers:
        if owner is None or owner is loop:
            result = stop()
            if asyncio.iscoroutine(result):
                await result
    tasks = [t for t in list(_tasks) if not t.done() and t.get_loop() is loop
             and t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    sessions = [s for s in list(_sessions) if not s.closed]
    for s in sessions:
        await s.close()
    svcs = [s for s in list(_services.values()) if s.loop is loop]
    for s in svcs:
        await s.stop()
    _services.clear()
    return {"services": len(svcs), "tasks": len(tasks), "sessions": len(sessions)}


def _current_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
