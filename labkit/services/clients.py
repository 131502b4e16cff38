"""HTTP clients done right: the corrected versions of the source tutorial's clients.

Defined in chapter 1. Times are seconds.

- `SyncClient` (requests): one `Session` for connection reuse, a base URL, default headers,
  and a (connect, read) timeout on *every* call. It refuses to run on the thread whose event
  loop serves labkit's services: that call could never be answered (the loop that must answer
  is the one it blocks). Run it with ``await asyncio.to_thread(client.get, ...)``.
- `AsyncClient` (aiohttp): one `ClientSession` reused for every call, a `ClientTimeout`
  with connect and total limits, and the body read *inside* ``async with`` so the caller gets
  data, not a response object whose connection is already gone.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import requests

from labkit._core import runtime


@dataclass(frozen=True)
class Reply:
    """What a call returns: status, headers and the already-read JSON body (or None)."""
    status: int
    headers: dict
    data: object

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _check_timeouts(connect_s, total_s):
    for name, value in (("connect_timeout_s", connect_s), ("timeout_s", total_s)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 300:
            raise ValueError(f"{name} must be a number of seconds in (0, 300], got {value!r}")


def _loop_thread_would_block() -> bool:
    """True when this thread runs the loop that serves labkit's services."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return any(s.loop is loop for s in runtime.services().values())


class SyncClient:
    """A blocking JSON client on `requests.Session`; see the module docstring."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 1.0,
                 headers: dict | None = None):
        _check_timeouts(connect_timeout_s, timeout_s)
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout_s, timeout_s)   # requests: (connect, read)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json",
                                     "User-Agent": "labkit-course/1.0", **(headers or {})})
        runtime.on_shutdown(self.close)

    def request(self, method: str, path: str, **kwargs) -> Reply:
        if _loop_thread_would_block():
            raise RuntimeError(
                "SyncClient called on the thread that runs the notebook's event loop: the "
                "service on that loop could never answer (the call would hang the kernel). "
                "Run it in a thread: await asyncio.to_thread(client.get, path)")
        kwargs.setdefault("timeout", self.timeout)
        resp = self.session.request(method, f"{self.base_url}/{path.lstrip('/')}", **kwargs)
        data = resp.json() if resp.content and "json" in resp.headers.get("Content-Type", "") else None
        return Reply(resp.status_code, dict(resp.headers), data)

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json=None, **kwargs) -> Reply:
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path: str, json=None, **kwargs) -> Reply:
        return self.request("PUT", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()


class AsyncClient:
    """An aiohttp JSON client with one reused session; see the module docstring.

    Use it as ``async with AsyncClient(url) as client: reply = await client.get("/users/1")``,
    or create it once and ``await client.close()`` (labkit.shutdown() closes it too).
    """

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 1.0,
                 headers: dict | None = None):
        _check_timeouts(connect_timeout_s, timeout_s)
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self.headers = {"Accept": "application/json", "User-Agent": "labkit-course/1.0",
                        **(headers or {})}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def request(self, method: str, path: str, **kwargs) -> Reply:
        if self._session is None or self._session.closed:
            self._session = runtime.session(timeout=self.timeout, headers=self.headers)
        url = f"{self.base_url}/{path.lstrip('/')}"
        async with self._session.request(method, url, **kwargs) as resp:
            # Read while the response is open: after `async with` the connection is released.
            data = await resp.json() if resp.content_type == "application/json" else None
            return Reply(resp.status, dict(resp.headers), data)

    async def get(self, path: str, **kwargs) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json=None, **kwargs) -> Reply:
        return await self.request("POST", path, json=json, **kwargs)

    async def put(self, path: str, json=None, **kwargs) -> Reply:
        return await self.request("PUT", path, json=json, **kwargs)

    async def delete(self, path: str, **kwargs) -> Reply:
        return await self.request("DELETE", path, **kwargs)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

