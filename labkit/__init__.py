"""labkit: the workbench for the course on how microservices talk to each other.

Chapters import what they need from here::

    import labkit
    labkit.require("0.2")                       # the version the notebook was written for
    users = await labkit.start_service("users")  # a real HTTP service on 127.0.0.1
    labkit.panel(users)                          # sliders for its faults
    labkit.watch(users)                          # a live latency chart
    await labkit.shutdown()                      # stop everything labkit started

The package is grouped by what each part is (top uses bottom, never the reverse):

    labs/      chapter experiments (contention, storm, amplification, fan-out, breaker timeline)
    checks/    exercise checks and `make grade`
    ui/        fault panel, live view, charts: the only place for ipywidgets and matplotlib
    services/  real HTTP services on 127.0.0.1, their fault model, clients, deadline chain
    messaging/ an embedded broker with RabbitMQ's semantics, and the same API on real RabbitMQ
    protocols/ gRPC (compiled at runtime), WebSocket and SSE beside REST; choosing a protocol
    sim/       the virtual-time event loop and queueing models
    patterns/  pure resilience logic: errors, backoff, retry, budget, breaker, bulkhead, deadline
    obs/       measurement: latency recorder and percentiles
    course/    glossary and source display;  _core/  runtime, seeding, argument validation

The rule that keeps it honest: `patterns/`, `obs/` and `sim/` never import `services/`, `ui/`,
aiohttp, matplotlib or ipywidgets, and read time only from the running loop, so the same code
runs on real sockets and in virtual time (tests/test_layout.py enforces it). `import labkit`
is light: the names below are loaded on first use.
"""
from __future__ import annotations

import importlib
import logging

# A library's loggers stay silent until the application configures them (chapter 07's
# labkit.obs.logs.install() does): no "last resort" lines on stderr.
logging.getLogger("labkit").addHandler(logging.NullHandler())

__version__ = "0.2.0"

# name -> module that defines it; loaded on first attribute access (PEP 562).
_LAZY = {
    "AsyncClient": "labkit.services.clients",
    "broker": "labkit.messaging.session",
    "Reply": "labkit.services.clients",
    "SyncClient": "labkit.services.clients",
    "shutdown": "labkit._core.runtime",
    "set_seed": "labkit._core.seeding",
    "SPECS": "labkit.services.http",
    "Blackhole": "labkit.services.http",
    "Service": "labkit.services.http",
    "ServicesShutDown": "labkit.services.http",
    "ServiceSpec": "labkit.services.http",
    "Shedding": "labkit.services.shedding",
    "start_service": "labkit.services.http",
    "show": "labkit.course.source",
    "panel": "labkit.ui.panel",
    "watch": "labkit.ui.liveview",
}
_SUBPACKAGES = {"checks", "course", "labs", "messaging", "obs", "patterns", "protocols", "services",
                "sim", "ui"}

__all__ = sorted([*_LAZY, "VersionMismatch", "__version__", "require"])


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"labkit.{name}")
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})


class VersionMismatch(RuntimeError):
    """The notebook and the installed labkit were written for different versions."""


def require(version: str) -> str:
    """Check that the installed labkit matches the notebook (same major.minor).

    Raises `VersionMismatch` with the exact steps to fix it; returns the installed version.
    """
    try:
        want = tuple(int(x) for x in str(version).split(".")[:2])
    except ValueError:
        raise ValueError(f"require() takes a version such as \"0.2\", got {version!r}") from None
    have = tuple(int(x) for x in __version__.split(".")[:2])
    if want != have:
        newer = "notebooks are newer" if want > have else "labkit is newer"
        raise VersionMismatch(
            f"This notebook was written for labkit {version}, but labkit {__version__} is "
            f"installed ({newer}). Fix: in a terminal, in the course folder, run `git pull` "
            f"and then `make lab` (it reinstalls labkit), then restart this kernel "
            f"(Kernel > Restart Kernel) and run the notebook again.")
    return __version__
