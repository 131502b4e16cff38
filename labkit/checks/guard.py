"""Run a learner's answer so that it cannot hang the kernel or `make grade`.

A check calls code the learner just wrote, and a beginner's answer may never return:
``time.sleep(100)``, ``while True: pass``, ``requests.get`` without a timeout (chapter 01
explains why a blocking call inside ``async def`` stalls everything else). Two guards:

- `in_thread` runs a plain-``def`` check in a daemon thread and stops waiting after its limit
  (`DidNotReturn`). The thread is then asked to stop: an exception is raised in it at its next
  Python instruction. A thread stuck inside one blocking call (time.sleep, a socket read)
  keeps running until that call returns; being a daemon, it never keeps Python from exiting.
- `LoopWatchdog` is a thread that notices the event loop has not ticked for more than
  `blocked_s`. When the loop runs on the main thread (a Jupyter kernel, ``asyncio.run``) and the
  learner's code is on its stack, it interrupts that code with `LoopBlocked`, delivered by a
  signal, so it also ends a time.sleep or a blocking socket read. Otherwise it only measures,
  and the check reports the block once the loop runs again.
"""
from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import signal
import sys
import threading
import time
import types

__all__ = ["LoopBlocked", "DidNotReturn", "StopAnswer", "in_thread", "LoopWatchdog",
           "learner_code"]

#: The signal the watchdog sends to the main thread (not used by Jupyter or asyncio).
_SIGNAL = getattr(signal, "SIGUSR2", None)
_CHECKS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_POLL_S = 0.05          # heartbeat period and watchdog poll
_RESEND_S = 0.25        # re-send the signal while the loop stays blocked


class LoopBlocked(BaseException):
    """Raised inside the learner's code when it has blocked the event loop too long.

    A BaseException, so an answer's ``except Exception`` does not swallow it, and asyncio
    stores it in the check's task instead of stopping the loop (only KeyboardInterrupt and
    SystemExit stop a loop).
    """


class StopAnswer(BaseException):
    """Raised in a worker thread whose answer did not return in time."""


class DidNotReturn(Exception):
    """`in_thread`: the function did not return within the limit."""

    def __init__(self, limit_s: float, inside_answer: bool):
        super().__init__(f"did not return within {limit_s:g} s")
        self.limit_s, self.inside_answer = limit_s, inside_answer


def learner_code(impl) -> tuple[frozenset, frozenset]:
    """(code objects, file names) that identify the learner's code on a stack."""
    while isinstance(impl, functools.partial):
        impl = impl.func
    code = getattr(impl, "__code__", None)
    if not isinstance(code, types.CodeType):
        return frozenset(), frozenset()
    return frozenset({code}), frozenset({code.co_filename})


class Tracked:
    """A sync answer wrapped so the guard knows whether the answer itself is running."""

    def __init__(self, impl):
        self.impl, self.inside = impl, 0
        functools.update_wrapper(self, impl, updated=())

    def __call__(self, *args, **kwargs):
        self.inside += 1
        try:
            return self.impl(*args, **kwargs)
        finally:
            self.inside -= 1


def _stop_thread(thread: threading.Thread) -> None:
    """Raise StopAnswer in `thread` at its next Python instruction (CPython only)."""
    if sys.implementation.name != "cpython" or thread.ident is None or not thread.is_alive():
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                               ctypes.py_object(StopAnswer))


async def in_thread(fn, impl, *, limit_s: float, name: str):
    """Return ``fn(Tracked(impl))`` run in a daemon thread, or raise `DidNotReturn` after
    `limit_s` seconds (then the thread is asked to stop; see the module docstring)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    tracked = Tracked(impl)

    def settle(ok, value):
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def work():
        try:
            ok, value = True, fn(tracked)
        except BaseException as exc:  # noqa: B036 - handed to the waiting coroutine
            ok, value = False, exc
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:          # the loop is closed: nobody waits any more
            pass

    thread = threading.Thread(target=work, name=f"labkit-check:{name}", daemon=True)
    thread.start()
    try:
        await asyncio.wait({fut}, timeout=limit_s)
    finally:
        if not fut.done():
            inside = tracked.inside > 0
            _stop_thread(thread)
            fut.cancel()
    if fut.cancelled():
        raise DidNotReturn(limit_s, inside)
    return fut.result()


class LoopWatchdog:
    """Measure (and, when possible, end) stalls of the running loop caused by `impl`.

    Use as ``async with LoopWatchdog(impl, blocked_s) as dog:``. A stall counts only while the
    learner's code is on the loop thread's stack (sampled by the watchdog thread), so a slow
    machine is not blamed on the answer. Afterwards `dog.blocked` says whether the answer
    blocked the loop longer than `blocked_s`, `dog.longest_s` for how long, and
    `dog.interrupted` whether it was interrupted.
    """

    _active: set = set()
    _installed = False

    def __init__(self, impl, blocked_s: float):
        self.blocked_s = blocked_s
        self.codes, self.files = learner_code(impl)
        self.longest_s = 0.0
        self.interrupted = False
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._handle = None
        self._can_interrupt = False

    async def __aenter__(self):
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat(loop)
        self._can_interrupt = bool(self.codes) and _SIGNAL is not None and \
            threading.current_thread() is threading.main_thread() and self._install()
        self._thread = threading.Thread(target=self._watch, name="labkit-check-watchdog",
                                        daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc):
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        self._thread.join(1.0)
        LoopWatchdog._active.discard(self)
        return False

    @property
    def blocked(self) -> bool:
        return self.longest_s > self.blocked_s

    def _beat(self, loop):
        self._last = time.monotonic()
        self._handle = loop.call_later(_POLL_S, self._beat, loop)

    def _learner_running(self, frame) -> bool:
        """Is the learner's code running, inside the check? Innermost frame first: a frame of
        labkit.checks met before any of the learner's means the check itself is busy."""
        while frame is not None:
            code = frame.f_code
            if code in self.codes or code.co_filename in self.files:
                return True
            if code.co_filename.startswith(_CHECKS_DIR):
                return False
            frame = frame.f_back
        return False

    def _watch(self):
        sent = 0.0
        while not self._stop.wait(_POLL_S):
            now = time.monotonic()
            stall_s = now - self._last - _POLL_S        # a heartbeat is due every _POLL_S
            if stall_s <= self.blocked_s:
                continue
            if not self._learner_running(sys._current_frames().get(self._loop_thread)):
                continue
            self.longest_s = max(self.longest_s, stall_s)
            if self._can_interrupt and now - sent > _RESEND_S:
                sent = now
                signal.pthread_kill(threading.main_thread().ident, _SIGNAL)

    # -- the signal handler, shared by every active watchdog ---------------------------------
    # Installed once and never removed: a signal still on its way when a check ends must not
    # meet the default action (which ends the process). With no active watchdog it does
    # nothing. If another library already handles the signal, the watchdog only measures.

    def _install(self) -> bool:
        cls = LoopWatchdog
        if not cls._installed:
            try:
                if callable(signal.getsignal(_SIGNAL)):
                    return False
                signal.signal(_SIGNAL, cls._on_signal)
            except (ValueError, OSError):
                return False
            cls._installed = True
        cls._active.add(self)
        return True

    @classmethod
    def _on_signal(cls, signum, frame):
        for dog in list(cls._active):
            if dog.blocked and time.monotonic() - dog._last > dog.blocked_s \
                    and dog._learner_running(frame):
                dog.interrupted = True
                raise LoopBlocked(f"blocked the event loop for more than {dog.blocked_s:g} s")
