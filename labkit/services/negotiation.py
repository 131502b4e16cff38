"""Content negotiation for labkit's HTTP services: JSON or MessagePack, chosen per request.

Chapter 04 (serialization). The same record can travel as JSON or as MessagePack; the client
says which it can read with ``Accept`` and which it sent with ``Content-Type``:

- Responses (RFC 9110 §12.5.1): each media range in ``Accept`` carries a weight ``q`` (default
  1, ``q=0`` means "not this"); the most specific range that names a type decides its weight
  (``application/msgpack`` over ``application/*`` over ``*/*``). The acceptable type with the
  highest weight wins; ties go to the server's preference, JSON first. No ``Accept`` (or a
  blank one) means anything. A malformed range (``*/json``, ``q=abc``, ``q=2``) is unusable
  (RFC 9110 §12.4.2) and skipped; the server never answers with a type the client did not
  list, so when nothing usable is left -> 406 with the available types and the skipped
  ranges. An Accept line over aiohttp's 8190-byte limit is a 400 from aiohttp's parser, logged
  in one line (`quiet_bad_request_logs`), not with a traceback. Every negotiated answer carries ``Vary: Accept`` so caches keep the two
  encodings apart. Media-type parameters other than ``q`` (e.g. ``charset``) are ignored.
- Requests: the body is decoded by ``Content-Type``: ``application/json`` (or ``+json``),
  ``application/msgpack`` / ``application/x-msgpack``. Unlabelled bytes (no Content-Type, or
  ``application/octet-stream``, which HTTP clients send when the caller named no type) are read
  as the service's default, JSON. Any other type -> 415 listing the supported ones; bytes that
  fail to decode (labkit.codecs' JSON and MessagePack codecs, their `DecodeError`) -> 400
  naming the format.
- Errors follow the same negotiation when the client accepts one of the types, else JSON.

The parsing and choosing functions are pure (no I/O); `respond` wraps them for aiohttp.
"""
from __future__ import annotations

import json
import logging
from typing import NamedTuple

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from labkit.codecs.base import DecodeError  # noqa: F401  (re-exported: bad bytes -> 400)
from labkit.codecs.formats_binary import MsgpackCodec
from labkit.codecs.formats_text import JsonCodec

__all__ = ["JSON", "MSGPACK", "X_MSGPACK", "AVAILABLE", "DecodeError", "UnsupportedMediaType",
           "MediaRange", "parse_accept", "malformed", "acceptable", "choose", "decode", "encode", "format_name",
           "respond",
           "not_acceptable", "unsupported", "quiet_bad_request_logs"]

JSON = "application/json"
MSGPACK = "application/msgpack"
X_MSGPACK = "application/x-msgpack"          # the older, unregistered name clients still send
AVAILABLE = (JSON, MSGPACK)                   # the server's preference order
_NAMES = {JSON: (JSON,), MSGPACK: (MSGPACK, X_MSGPACK)}
_FORMAT = {JSON: "JSON", MSGPACK: "MessagePack"}
_UNLABELLED = ("", "application/octet-stream")
MAX_ACCEPT_RANGES = 64                        # more ranges than this in one header are ignored
# chapter 04's codecs read request bodies (size limits, msgpack lengths capped by the payload)
# and write MessagePack; JSON answers keep the stdlib's default form labkit always sent.
_READERS = {JSON: JsonCodec(), MSGPACK: MsgpackCodec()}


class UnsupportedMediaType(ValueError):
    """A request body in a media type the service does not read (-> 415)."""

    def __init__(self, media_type: str):
        super().__init__(f"Content-Type {media_type!r} is not supported; send one of "
                         f"{', '.join(AVAILABLE)}")
        self.media_type = media_type


class MediaRange(NamedTuple):
    """One element of an Accept header: ``type/subtype`` (either may be ``*``) and its weight."""
    type: str
    subtype: str
    q: float


def _media_type(value: str) -> str:
    """``type/subtype`` of a Content-Type value, lowercased, parameters dropped."""
    return value.split(";", 1)[0].strip().lower()


def _qvalue(raw: str) -> float | None:
    """RFC 9110 §12.4.2 qvalue: 0 to 1 with at most three decimals; None if malformed."""
    whole, _, frac = raw.partition(".")
    if whole not in ("0", "1") or len(frac) > 3 or not (frac.isdigit() or frac == ""):
        return None
    q = float(raw)
    return q if q <= 1 else None


def _parse_element(element: str) -> MediaRange | str | None:
    """One Accept element as a MediaRange, a reason string when malformed, None when blank."""
    parts = element.split(";")
    typ, slash, sub = parts[0].strip().lower().partition("/")
    if not parts[0].strip() and len(parts) == 1:
        return None                            # "a, , b": empty list elements are allowed
    if not slash or not typ or not sub or (typ == "*" and sub != "*") or " " in typ + sub:
        return "not a type/subtype media range"
    for param in parts[1:]:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "q":
            q = _qvalue(raw.strip())
            if q is None:
                return f"q={raw.strip()!r} is not a weight from 0 to 1 with at most 3 decimals"
            return MediaRange(typ, sub, q)     # what follows q is accept-ext: ignored
    return MediaRange(typ, sub, 1.0)


def _elements(value: str | None) -> list[str]:
    return (value or "").split(",")[:MAX_ACCEPT_RANGES]


def parse_accept(value: str | None) -> list[MediaRange]:
    """The well-formed media ranges of an Accept header, in order; malformed ones are skipped
    (``*/json``, a bad ``q``: RFC 9110 makes such a range unusable, see `malformed`). At most
    `MAX_ACCEPT_RANGES` are read."""
    return [r for r in map(_parse_element, _elements(value)) if isinstance(r, MediaRange)]


def malformed(value: str | None) -> list[str]:
    """The elements of an Accept header that were skipped, each with why (for a 406 body)."""
    out = []
    for element in _elements(value):
        why = _parse_element(element)
        if isinstance(why, str):
            out.append(f"{element.strip()[:80]!r} ({why})")
    return out


def _weight(ranges: list[MediaRange], offer: str) -> tuple[float, str]:
    """The weight of `offer` under the most specific matching range, and the name to send."""
    best, q, name = -1, 0.0, offer
    for r in ranges:
        full = f"{r.type}/{r.subtype}"
        if full in _NAMES[offer]:
            rank, sent = 2, full
        elif r.subtype == "*" and r.type in ("*", offer.split("/")[0]):
            rank, sent = (1 if r.type != "*" else 0), offer
        else:
            continue
        if rank > best or (rank == best and r.q > q):
            best, q, name = rank, r.q, sent
    return q, name


def acceptable(accept: str | None, offered: tuple = AVAILABLE) -> list[str]:
    """The media types to answer with, best first (weight, then the server's order);
    empty when nothing offered is acceptable (-> 406). A missing or blank Accept accepts
    all; one whose every range is malformed accepts nothing (the client listed no type)."""
    if not (accept or "").strip(", \t"):
        return list(offered)
    ranges = parse_accept(accept)
    weighted = [(_weight(ranges, o), i) for i, o in enumerate(offered)]
    return [name for (q, name), i in sorted(weighted, key=lambda w: (-w[0][0], w[1])) if q > 0]


def choose(accept: str | None, offered: tuple = AVAILABLE) -> str | None:
    """The one media type to answer with, or None when nothing is acceptable (-> 406)."""
    ranked = acceptable(accept, offered)
    return ranked[0] if ranked else None


def _canonical(media_type: str) -> str | None:
    if media_type in _NAMES[MSGPACK]:
        return MSGPACK
    if media_type == JSON or (media_type.startswith("application/") and
                              media_type.endswith("+json")) or media_type in _UNLABELLED:
        return JSON
    return None


def decode(content_type: str | None, data: bytes):
    """A request body as Python objects, by its Content-Type (see the module docstring).

    Raises `UnsupportedMediaType` for a type the service does not read and
    `labkit.codecs.DecodeError` (``.format``, ``.reason``) for bytes that do not decode: a
    MessagePack header claiming 10**9 items is refused at once, not allocated."""
    media_type = _media_type(content_type or "")
    kind = _canonical(media_type)
    if kind is None:
        raise UnsupportedMediaType(media_type)
    return _READERS[kind].decode(data)


def encode(media_type: str, body) -> bytes:
    """`body` in `media_type` (JSON or either MessagePack name); a ValueError (for MessagePack
    `labkit.codecs.EncodeError`) or TypeError when the value cannot be written in it."""
    if media_type in _NAMES[MSGPACK]:
        return _READERS[MSGPACK].encode(body)
    if media_type == JSON:
        return json.dumps(body).encode()
    raise ValueError(f"media_type must be one of {', '.join((JSON, MSGPACK, X_MSGPACK))}, "
                     f"got {media_type!r}")


def format_name(media_type: str) -> str:
    """"JSON" or "MessagePack" for a media type the service reads or writes."""
    return _FORMAT.get(_canonical(_media_type(media_type)) or "", media_type)


# ---- the aiohttp side ----------------------------------------------------------------------
def _response(status: int, media_type: str, data: bytes, vary: bool) -> web.Response:
    if media_type == JSON:                      # as labkit always sent it: charset=utf-8
        resp = web.Response(status=status, text=data.decode(), content_type=JSON)
    else:
        resp = web.Response(status=status, body=data, content_type=media_type)
    if vary:
        resp.headers["Vary"] = "Accept"
    return resp


def respond(request: web.Request | None, status: int, body, *, strict: bool = True,
            headers: dict | None = None) -> web.Response:
    """`body` in the best media type the request accepts. With nothing acceptable: 406 when
    `strict` (answers), JSON otherwise (errors). A value the first choice cannot encode (an
    int above 2**64 in MessagePack) goes in the next acceptable one; with none left, 500.
    Without a request (no negotiation) the answer is JSON without Vary."""
    ranked = [JSON] if request is None else acceptable(request.headers.get("Accept"))
    if not ranked:
        if strict:
            return not_acceptable(request)
        ranked = [JSON]
    resp = None
    for media_type in ranked:
        try:
            resp = _response(status, media_type, encode(media_type, body), request is not None)
            break
        except (TypeError, ValueError, OverflowError):
            continue
    if resp is None:
        resp = _response(500, JSON, json.dumps(
            {"error": f"the answer cannot be encoded as {', '.join(ranked)}", "status": 500,
             "available": list(AVAILABLE)}).encode(), request is not None)
    if headers:
        resp.headers.update(headers)
    return resp


def not_acceptable(request: web.Request) -> web.Response:
    """406, in JSON, listing the media types the service can answer with."""
    accept = request.headers.get("Accept", "")
    bad = malformed(accept)
    skipped = f" (skipped as malformed: {'; '.join(bad[:5])})" if bad else ""
    body = {"error": f"none of the media types in Accept ({accept[:200]!r}) is available"
                     f"{skipped}; ask for one of {', '.join(AVAILABLE)}",
            "status": 406, "available": list(AVAILABLE)}
    return _response(406, JSON, json.dumps(body).encode(), True)


def unsupported(request: web.Request, err: UnsupportedMediaType) -> web.Response:
    """415 listing the supported request types (negotiated like any error); a POST also gets
    ``Accept-Post`` naming them."""
    extra = {"Accept-Post": ", ".join(AVAILABLE)} if request.method == "POST" else None
    return respond(request, 415, {"error": str(err), "status": 415, "supported": list(AVAILABLE)},
                   strict=False, headers=extra)


class _OneLineBadRequest(logging.Filter):
    """Turns aiohttp's "Error handling request" record for a request its parser refused (a
    header line over 8190 bytes, a malformed request line) into one WARNING line without the
    traceback: the client got its 400; the server log needs a line, not a stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            text = " ".join(str(exc.message or exc).split())
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "bad request from %s answered %s: %s", (
                peer, exc.code, text[:160] + ("..." if len(text) > 160 else ""))
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_bad_request_logs() -> None:
    """Install the one-line filter on aiohttp's server logger (idempotent; done on import of
    this module, which every labkit service imports)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _OneLineBadRequest) for f in logger.filters):
        logger.addFilter(_OneLineBadRequest())


quiet_bad_request_logs()
