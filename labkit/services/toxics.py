"""Network-level faults, as Toxiproxy's toxics name them: `reset` (reset_peer: a TCP RST
instead of an answer), `trickle` (bandwidth: the body arrives slowly) and `Blackhole` (a host
that vanished: connecting hangs until a connect timeout). Chapter 1; the fault layer of
labkit.services.http applies the first two.
"""
from __future__ import annotations

import asyncio
import socket
import struct

from aiohttp import web


def reset(request) -> None:
    """Toxiproxy's reset_peer: close the connection with a TCP RST, send nothing."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if request.transport is not None:
        request.transport.abort()


async def trickle(request, response: web.Response, over_s: float) -> web.StreamResponse:
    """Toxiproxy's bandwidth toxic: headers at once, then the body in ten slices."""
    body = response.body
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    slices = 10
    step = max(1, -(-len(body) // slices))
    try:
        for i in range(0, len(body), step):
            await asyncio.sleep(over_s / slices)
            await stream.write(body[i:i + step])
        await stream.write_eof()
    except ConnectionError:
        pass                                   # the client gave up (its timeout fired)
    return stream


class Blackhole:
    """A port that accepts no connections: connecting to it hangs until a connect timeout.

    Its listen backlog is full, so the kernel drops new handshakes, just as a host that
    vanished would. Use it to see a *connect* timeout fire (chapter 1)::

        with Blackhole() as hole:
            ...  # session.get(hole.url, timeout=aiohttp.ClientTimeout(connect=0.5))
    """

    def __init__(self):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._fillers = []
        for _ in range(3):                    # fill the backlog (Linux keeps backlog + 1)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(s)

    def close(self) -> None:
        for s in self._fillers + [self._listener]:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
