"""labkit: the workbench for the course on how microservices talk to each other.

Chapters import what they need from here::

    import labkit
    labkit.require("0.1")                       # the version the notebook was written for
    users = await labkit.start_service("users")  # a real HTTP service on 127.0.0.1
    labkit.panel(users)                          # sliders for its faults
    labkit.watch(users)                          # a live latency chart
    await labkit.shutdown()                      # stop everything labkit started

Deeper parts live in their own modules: `labkit.faults`, `labkit.clients`, `labkit.checks`,
`labkit.metrics`, `labkit.fanout`, ...
"""
from __future__ import annotations

__version__ = "0.1.0"

from .clients import AsyncClient, Reply, SyncClient
from .runtime import shutdown
from .seeding import set_seed
from .services import SPECS, Blackhole, Service, ServiceSpec, start_service
from .source import show
from .widgets import panel, watch

__all__ = ["AsyncClient", "Blackhole", "Reply", "SPECS", "Service", "ServiceSpec", "SyncClient",
           "__version__", "panel", "require", "set_seed", "show", "shutdown", "start_service",
           "watch"]


class VersionMismatch(RuntimeError):
    """The notebook and the installed labkit were written for different versions."""


def require(version: str) -> str:
    """Check that the installed labkit matches the notebook (same major.minor).

    Raises `VersionMismatch` with the exact steps to fix it; returns the installed version.
    """
    want = tuple(int(x) for x in version.split(".")[:2])
    have = tuple(int(x) for x in __version__.split(".")[:2])
    if want != have:
        newer = "notebooks are newer" if want > have else "labkit is newer"
        raise VersionMismatch(
            f"This notebook was written for labkit {version}, but labkit {__version__} is "
            f"installed ({newer}). Fix: in a terminal, in the course folder, run `git pull` "
            f"and then `make lab` (it reinstalls labkit), then restart this kernel "
            f"(Kernel > Restart Kernel) and run the notebook again.")
    return __version__
