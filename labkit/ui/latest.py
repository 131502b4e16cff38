"""Run what a control asks for in the background; a newer request supersedes an older one.

A lab widget (the fan-out lab in chapter 1, the storm lab in chapter 5) starts a measurement
or a simulation when a slider moves. The work must not run inside the control's callback
(that would block the kernel's loop, freezing the services and live charts), a newer move
must cancel the run it makes obsolete, and a failure must be shown, never swallowed.
"""
from __future__ import annotations

import asyncio
import html
from typing import Awaitable, Callable

import ipywidgets as W

from labkit._core import runtime

__all__ = ["LatestRun", "error_html"]


def error_html(err: BaseException) -> str:
    """A failure as a red status line (a ValueError's own words: it names the bad input)."""
    text = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
    return f"<span style='color:#b00'>{html.escape(text)}</span>"


class LatestRun:
    """`start(work)`: cancel the run still going, say `running_html`, run `work()` in a task
    that `labkit.shutdown()` stops; an exception ends up in `status`."""

    def __init__(self, status: W.HTML, *, name: str):
        self.status = status
        self.name = name
        self.task: asyncio.Task | None = None

    def start(self, work: Callable[[], Awaitable], running_html: str) -> asyncio.Task:
        if self.task is not None and not self.task.done():
            self.task.cancel()                       # superseded: its result is dropped
        self.status.value = running_html
        self.task = runtime.spawn(self._shown(work), name=self.name)
        return self.task

    async def _shown(self, work) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - shown in the status line, never swallowed
            self.status.value = error_html(err)

    async def wait(self, timeout_s: float) -> None:
        """Wait at most `timeout_s` real seconds for the current run (if any) to end."""
        task = self.task
        if task is not None and not task.done():
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
