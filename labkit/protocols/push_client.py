"""Push clients (chapter 03): a WebSocket client that resumes where it left off, and an SSE reader.

`ResumingWebSocket` follows labkit.protocols.push's ``/ws``: when the connection drops it
reconnects with backoff (labkit.patterns.backoff) and asks for the events after the last id it
saw, so it never loses an event; `follow_events` (exercise 03.follow_events) drops the repeats
a reconnect can bring and raises `EventGap` if an id is missing, so it never repeats one either.

`SSEParser` is the text/event-stream format (WHATWG HTML, "server-sent events") with no I/O:
fields ``data:`` (several lines join with "\\n"), ``id:``, ``event:``, ``retry:``; lines
starting with ":" are comments (heartbeats). `sse_events` reads a stream with aiohttp.
aiohttp is imported inside the functions that connect, so the pure parts load without it.
"""
from __future__ import annotations

import asyncio
import codecs
import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from labkit._core import runtime, validate
from labkit.patterns.backoff import Backoff, FullJitter, Strategy

__all__ = ["EventGap", "ResumeTooOld", "PushClosed", "follow_events", "ResumingWebSocket",
           "SSEEvent", "SSEParser", "sse_events"]


class EventGap(Exception):
    """Events are missing: after `last_id` the next id seen was `got`."""

    def __init__(self, last_id: int, got: int):
        super().__init__(f"events {last_id + 1}..{got - 1} are missing: after id {last_id} "
                         f"the next event has id {got}")
        self.last_id, self.got = last_id, got


class ResumeTooOld(RuntimeError):
    """The server no longer has the events after our last id (close code 4004 / HTTP 410)."""


class PushClosed(RuntimeError):
    """The server refused or ended the stream for a reason retrying cannot fix."""


def follow_events(events, last_id):
    """Keep only the events not seen yet, in id order, and the new last id (chapter 03).

    `events`: a batch of dicts with an "id" (after a reconnect it may repeat events already
    seen). Returns (new_events, last_id); raises EventGap if an id after `last_id` is missing.
    """
    fresh = []
    for event in sorted(events, key=lambda e: e["id"]):
        if event["id"] <= last_id:
            continue                            # seen before: a repeat after a reconnect
        if event["id"] != last_id + 1:
            raise EventGap(last_id, event["id"])
        fresh.append(event)
        last_id = event["id"]
    return fresh, last_id


def _ws_url(url: str, after: int | None) -> str:
    parts = urlsplit(validate.text("url", url))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"url must be an http:// or ws:// URL such as svc.url, got {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    query = "" if after is None else f"after={after}"
    return urlunsplit((scheme, parts.netloc, path, query, ""))


class ResumingWebSocket:
    """Async iterator over the events of a push service's ``/ws``; resumes after a drop.

        async with ResumingWebSocket(svc.url, last_id=0) as feed:
            async for event in feed: ...

    `last_id`: resume after this id on the first connection (None: from now on).
    `backoff`: a labkit backoff strategy for the waits between reconnects; `max_attempts`:
    failed connects in a row before giving up (None: no limit, but a stopped labkit service
    fails at once); `timeout_s`: the connect-and-hello limit, and how soon a silent server
    is declared dead (the client pings every timeout_s / 2). `follow` filters each batch (the
    exercise's function plugs in here). Iteration ends when the server closes with 1000 or
    1001; 4004 raises `ResumeTooOld`, other refusals `PushClosed`.
    """

    def __init__(self, url: str, *, last_id: int | None = None,
                 backoff: Strategy | None = None, max_attempts: int | None = None,
                 timeout_s: float = 10.0, follow=follow_events):
        _ws_url(url, None)
        self.url = url
        self.last_id = None if last_id is None else validate.integer("last_id", last_id, 0)
        strategy = FullJitter(base=0.05, cap=2.0) if backoff is None else backoff
        self.backoff = Backoff(strategy)             # validates the strategy
        self.max_attempts = None if max_attempts is None else \
            validate.integer("max_attempts", max_attempts, 1)
        self.timeout_s = validate.number("timeout_s", timeout_s, 0, 3600, lo_open=True, unit=" s")
        if not callable(follow):
            raise ValueError(f"follow must be a function (events, last_id) -> (new, last_id), "
                             f"got {follow!r}")
        self.follow = follow
        self.reconnects = 0          # connections after the first
        self.received = 0            # events handed to the caller
        self.repeats_dropped = 0     # events the server sent again and `follow` dropped
        self.close_code: int | None = None
        self._session = None
        self._ws = None
        self._pending: list = []
        self._done = False
        self._connected_once = False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def __aiter__(self):
        return self

    async def close(self) -> None:
        """Close the socket and the session (also done at the end of `async with`)."""
        self._done = True
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def summary(self) -> dict:
        return {"last_id": self.last_id, "received": self.received,
                "reconnects": self.reconnects, "repeats_dropped": self.repeats_dropped,
                "close_code": self.close_code}

    async def __anext__(self) -> dict:
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            if self._ws is None or self._ws.closed:
                await self._connect()
                continue
            await self._receive()
        self.received += 1
        return self._pending.pop(0)

    async def _connect(self) -> None:
        import aiohttp
        if self._session is None or self._session.closed:
            self._session = runtime.session()
        failures = 0
        while True:
            url = _ws_url(self.url, self.last_id)
            try:
                ws = await self._session.ws_connect(
                    url, heartbeat=self.timeout_s / 2,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.timeout_s))
                hello = await ws.receive(timeout=self.timeout_s)
            except (aiohttp.ClientConnectorError, aiohttp.WSServerHandshakeError,
                    aiohttp.ClientOSError, asyncio.TimeoutError) as err:
                port = urlsplit(url).port
                if runtime.was_stopped(port):
                    raise PushClosed(f"{self.url}: the push service was stopped; start it again "
                                     "and make a new client") from None
                status = getattr(err, "status", None)
                failures += 1
                if self.max_attempts is not None and failures >= self.max_attempts:
                    raise PushClosed(f"{self.url}: gave up after {failures} failed connects in a "
                                     f"row (last: {type(err).__name__} {status or err})") from None
                await asyncio.sleep(self.backoff.next_delay())
                continue
            if hello.type == aiohttp.WSMsgType.TEXT and json.loads(hello.data).get("hello"):
                if self._connected_once:
                    self.reconnects += 1
                self._connected_once = True
                if self.last_id is None:
                    self.last_id = json.loads(hello.data)["last_id"]
                self._ws = ws
                self.backoff.reset()
                return
            await self._closed(ws, hello.extra)       # refused before the hello (4004 ...)
            if self._done:
                return

    async def _receive(self) -> None:
        import aiohttp
        msg = await self._ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT:
            event = json.loads(msg.data)
            new, self.last_id = self.follow([event], self.last_id)
            self.repeats_dropped += 1 - len(new)
            self._pending.extend(new)
        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                          aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            await self._closed(self._ws, msg.extra if msg.type == aiohttp.WSMsgType.CLOSE else "")

    async def _closed(self, ws, reason: str | None = "") -> None:
        """The server closed `ws`: end (1000/1001), raise (4004, 1008, ...) or reconnect."""
        if not ws.closed:
            await ws.close()
        code = ws.close_code
        self.close_code = code
        self._ws = None
        if code in (1000, 1001):
            self._done = True
            return
        if code == 4004:
            raise ResumeTooOld(f"the server no longer has the events after id {self.last_id} "
                               f"(close code 4004): events were lost; its history is too short "
                               f"for how long this client was away")
        if code is not None and (code == 1008 or code >= 4000):
            raise PushClosed(f"the server closed the stream with code {code}{reason and ': '}"
                             f"{reason or ''}")
        await asyncio.sleep(self.backoff.next_delay())     # a drop (1006 ...): reconnect


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched server-sent event: `data` is the data lines joined with "\\n"."""
    data: str
    event: str = "message"
    id: str | None = None          # the last event id at dispatch (what Last-Event-ID resends)
    retry_ms: int | None = None    # the reconnection time the server asked for, if any

    def json(self):
        return json.loads(self.data)


class SSEParser:
    """The event-stream parsing rules with no I/O: feed text, get dispatched events.

    Lines end with \\r\\n, \\n or \\r; an empty line dispatches; ":" starts a comment
    (counted in `comments`); "field: value" loses one leading space; unknown fields are
    ignored; an id containing NUL is ignored; retry takes only digits.
    """

    def __init__(self, *, max_line: int = 1 << 20):
        self.max_line = validate.integer("max_line", max_line, 1)
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self.comments = 0
        self._buf = ""
        self._skip_lf = False
        self._data: list[str] = []
        self._event = ""

    def feed(self, text: str) -> list[SSEEvent]:
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]                            # the \n of a \r\n split across chunks
        self._skip_lf = False
        self._buf += text
        out: list[SSEEvent] = []
        while True:
            cut = min((i for i in (self._buf.find("\r"), self._buf.find("\n")) if i >= 0),
                      default=-1)
            if cut < 0:
                break
            line = self._buf[:cut]
            if self._buf[cut] == "\r" and cut == len(self._buf) - 1:
                self._skip_lf = True                   # a \n may follow in the next chunk
            step = 2 if self._buf.startswith("\r\n", cut) else 1
            self._buf = self._buf[cut + step:]
            event = self._line(line)
            if event is not None:
                out.append(event)
        if len(self._buf) > self.max_line:
            raise ValueError(f"an event-stream line is longer than max_line={self.max_line}")
        return out

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            data, self._data = self._data, []
            event, self._event = self._event or "message", ""
            if not data:
                return None
            return SSEEvent("\n".join(data), event, self.last_event_id, self.retry_ms)
        if line.startswith(":"):
            self.comments += 1
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self.last_event_id = value
        elif field == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


class sse_events:
    """Read a push service's ``/sse`` (or any event stream) as `SSEEvent`s.

        async with sse_events(svc.url + "/sse", last_event_id="41") as stream:
            async for event in stream: ...

    `last_event_id` is sent as the Last-Event-ID header (resume after it); `timeout_s` bounds
    the connect and any silence (the server's heartbeat comments reset it). Iteration ends
    when the server ends the stream; a refusal raises (410: `ResumeTooOld`), and so does a
    server that cannot be reached (`PushClosed`, as `ResumingWebSocket` raises).
    """

    def __init__(self, url: str, *, last_event_id: str | int | None = None,
                 timeout_s: float = 30.0):
        parts = urlsplit(validate.text("url", url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an http:// URL such as svc.url + '/sse', got {url!r}")
        if last_event_id is not None and not isinstance(last_event_id, (str, int)) or \
                isinstance(last_event_id, bool):
            raise ValueError(f"last_event_id must be a str, an int or None, got {last_event_id!r}")
        self.url = url if parts.path not in ("", "/") else url.rstrip("/") + "/sse"
        self.last_event_id = None if last_event_id is None else str(last_event_id)
        self.timeout_s = validate.number("timeout_s", timeout_s, 0, 3600, lo_open=True, unit=" s")
        self.parser = SSEParser()
        self._decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        self._session = self._resp = None
        self._pending: list[SSEEvent] = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    def __aiter__(self):
        return self

    async def aclose(self) -> None:
        if self._resp is not None:
            self._resp.release()
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def _open(self) -> None:
        import aiohttp
        self._session = runtime.session()
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout_s,
                                        sock_read=self.timeout_s)
        try:
            resp = await self._session.get(self.url, headers=headers, timeout=timeout)
        except (aiohttp.ClientConnectorError, aiohttp.ClientOSError) as err:
            await self._session.close()
            if runtime.was_stopped(urlsplit(self.url).port):
                raise PushClosed(f"{self.url}: the push service was stopped; start it again "
                                 "and open a new stream") from None
            raise PushClosed(f"{self.url}: cannot connect ({type(err).__name__}: {err}); is "
                             "the push service running?") from None
        if resp.status != 200:
            body = (await resp.text())[:300]
            resp.release()
            error = ResumeTooOld if resp.status == 410 else PushClosed
            raise error(f"{self.url} answered {resp.status}: {body}")
        self._resp = resp

    async def __anext__(self) -> SSEEvent:
        if self._resp is None:
            await self._open()
        while not self._pending:
            chunk = await self._resp.content.readany()
            if not chunk:
                raise StopAsyncIteration
            self._pending.extend(self.parser.feed(self._decode(chunk)))
        event = self._pending.pop(0)
        self.last_event_id = event.id
        return event
