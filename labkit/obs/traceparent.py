"""W3C Trace Context headers, `traceparent` and `tracestate`, to the letter (chapter 07).

A trace is a parcel's tracking number; `traceparent` is the label each depot reads and
re-writes: ``00-<trace-id>-<parent-id>-<flags>``, e.g.
``00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01``
(https://www.w3.org/TR/trace-context/). The rules this module enforces:

- lowercase hex only (``4BF9...`` is invalid, not "the same id");
- version ``ff`` is invalid; trace-id of 32 zeros or parent-id of 16 zeros is invalid;
- version ``00`` is exactly 55 characters (nothing after the flags);
- a higher version is read by the 00 rules on its first four fields, if anything after the
  flags starts with "-" (future versions may append fields); we always write version 00;
- flags: bit 0 is "sampled"; other bits are kept but mean nothing to version 00;
- spaces and tabs around the header value are ignored (HTTP's optional whitespace).

An invalid `traceparent` is not an error for the receiver: it starts a new trace. So
`parse_traceparent` returns None for a missing or invalid header; with ``strict=True`` it raises
ValueError saying what is wrong (for learners and tests). If `traceparent` is invalid,
`tracestate` must be ignored too.

`tracestate` is a list of up to 32 ``key=value`` members, vendor data carried alongside:
keys are ``[a-z][a-z0-9_\\-*/]{0,255}`` or ``tenant@system`` (Level 1 grammar), values 0-256
printable ASCII characters without "," or "=" and not ending in a space. A key may appear only
once. Updating a key removes its old entry and puts the new one first (leftmost); a list over
32 members drops from the right. Empty members (``a=1,,b=2``) are allowed and ignored.

Pure: no I/O; ids come from `IdStream`, a seeded generator (one stream per instance).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from labkit._core import seeding

__all__ = ["IdStream", "MAX_TRACESTATE_MEMBERS", "TraceParent", "delete_tracestate",
           "format_traceparent", "format_tracestate", "is_trace_id", "parse_traceparent",
           "parse_tracestate", "update_tracestate"]

MAX_TRACESTATE_MEMBERS = 32
SAMPLED = 0x01
_HEX2, _HEX16, _HEX32 = re.compile(r"[0-9a-f]{2}"), re.compile(r"[0-9a-f]{16}"), \
    re.compile(r"[0-9a-f]{32}")
_OWS = " \t"
_KEY = re.compile(r"[a-z][a-z0-9_\-*/]{0,255}"
                  r"|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


@dataclass(frozen=True)
class TraceParent:
    """The four fields of a `traceparent`; ids are lowercase hex strings."""
    trace_id: str
    parent_id: str
    flags: int = SAMPLED
    version: int = 0

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def child(self, span_id: str) -> "TraceParent":
        """The header a hop sends on: same trace, `span_id` (the sender's span) as parent."""
        return TraceParent(self.trace_id, span_id, self.flags)

    def __str__(self) -> str:
        return format_traceparent(self)


def _problem(value) -> tuple[str | None, TraceParent | None]:
    """(what is wrong, None) or (None, the parsed TraceParent)."""
    if value is None:
        return "no traceparent header", None
    if not isinstance(value, str):
        return f"traceparent must be a str, got {type(value).__name__}", None
    v = value.strip(_OWS)
    if len(v) < 55:
        return f"too short: {len(v)} characters, version 00 needs exactly 55", None
    version, trace_id, parent_id, flags, rest = v[0:2], v[3:35], v[36:52], v[53:55], v[55:]
    if not _HEX2.fullmatch(version):
        return f"version {version!r} is not 2 lowercase hex digits", None
    if version == "ff":
        return "version ff is forbidden", None
    if v[2] != "-" or v[35] != "-" or v[52] != "-":
        return "fields must be separated by '-' at positions 2, 35 and 52", None
    if not _HEX32.fullmatch(trace_id):
        return f"trace-id {trace_id!r} is not 32 lowercase hex digits", None
    if trace_id == "0" * 32:
        return "trace-id is all zeros", None
    if not _HEX16.fullmatch(parent_id):
        return f"parent-id {parent_id!r} is not 16 lowercase hex digits", None
    if parent_id == "0" * 16:
        return "parent-id is all zeros", None
    if not _HEX2.fullmatch(flags):
        return f"trace-flags {flags!r} are not 2 lowercase hex digits", None
    if version == "00" and rest:
        return f"version 00 is exactly 55 characters, got {len(v)}", None
    if rest and not rest.startswith("-"):
        return "after the flags a future version may only add '-'-separated fields", None
    return None, TraceParent(trace_id, parent_id, int(flags, 16), int(version, 16))


def is_trace_id(text: str) -> bool:
    """True for a valid trace-id: 32 lowercase hex digits, not all zeros."""
    return bool(_HEX32.fullmatch(text)) and text != "0" * 32


def parse_traceparent(value, *, strict: bool = False) -> TraceParent | None:
    """The TraceParent in header `value`, or None if missing/invalid (start a new trace).

    strict=True: raise ValueError naming the problem instead of returning None."""
    problem, parsed = _problem(value)
    if problem and strict:
        raise ValueError(f"invalid traceparent {value!r}: {problem}")
    return parsed


def format_traceparent(tp: TraceParent) -> str:
    """The version-00 header for `tp`; ValueError if a field would make it invalid."""
    if not isinstance(tp, TraceParent):
        raise ValueError(f"tp must be a TraceParent, got {tp!r}")
    if not isinstance(tp.flags, int) or not 0 <= tp.flags <= 0xFF:
        raise ValueError(f"flags must be an int in [0, 255], got {tp.flags!r}")
    text = f"00-{tp.trace_id}-{tp.parent_id}-{tp.flags:02x}"
    parse_traceparent(text, strict=True)          # ids: lowercase hex, right length, not zero
    return text


class IdStream:
    """New trace and span ids from one seeded stream (never all zeros).

    Each instance draws its own stream from the course seed (`seeding.stream`), so a re-run
    from `labkit.set_seed` gives the same ids; pass `seed` for a stream of its own."""

    def __init__(self, *, seed: int | None = None, kind: str = "traceparent"):
        self._rng: random.Random = (seeding.stream(kind) if seed is None
                                    else seeding.rng(kind, seed))

    def _bits(self, n: int) -> int:
        while True:
            x = self._rng.getrandbits(n)
            if x:
                return x

    def trace_id(self) -> str:
        return f"{self._bits(128):032x}"

    def span_id(self) -> str:
        return f"{self._bits(64):016x}"

    def new_traceparent(self, *, sampled: bool = True) -> TraceParent:
        """The header a request with no valid parent starts its trace with."""
        return TraceParent(self.trace_id(), self.span_id(), SAMPLED if sampled else 0)


def _members(value) -> list[str]:
    if isinstance(value, (list, tuple)):          # several tracestate headers: one list
        value = ",".join(value)
    if not isinstance(value, str):
        raise ValueError(f"tracestate must be a str, got {type(value).__name__}")
    return value.split(",")


def parse_tracestate(value, *, strict: bool = False) -> list[tuple[str, str]] | None:
    """[(key, value), ...] in header order, or None when missing or invalid (then the whole
    header is dropped). Accepts one header value or a list of them (combined in order)."""
    if value is None:
        if strict:
            raise ValueError("no tracestate header")
        return None
    try:
        out, seen = [], set()
        for raw in _members(value):
            member = raw.strip(_OWS)
            if not member:
                continue                          # empty members are allowed
            key, eq, val = member.partition("=")
            if not eq or not _KEY.fullmatch(key):
                raise ValueError(f"member {member!r} has no valid key (a-z start, "
                                 f"lowercase, digits, _-*/ or tenant@system)")
            if not _VALUE.fullmatch(val):
                raise ValueError(f"member {member!r} has an invalid value (1-256 printable "
                                 f"ASCII, no ',' or '=', not ending in a space)")
            if key in seen:
                raise ValueError(f"key {key!r} appears twice")
            seen.add(key)
            out.append((key, val))
        if len(out) > MAX_TRACESTATE_MEMBERS:
            raise ValueError(f"{len(out)} members, at most {MAX_TRACESTATE_MEMBERS}")
    except ValueError as err:
        if strict:
            raise ValueError(f"invalid tracestate {value!r}: {err}") from None
        return None
    return out


def _check_member(key, val) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"key must be a tracestate key (e.g. 'congo' or 'tenant@vendor'), "
                         f"got {key!r}")
    if not isinstance(val, str) or not _VALUE.fullmatch(val):
        raise ValueError(f"value must be 1-256 printable ASCII characters without ',' or '=' "
                         f"and not ending in a space, got {val!r}")


def format_tracestate(members) -> str:
    """The header for [(key, value), ...]; ValueError on a bad member, a duplicate key or
    more than 32 members."""
    members = list(members)
    keys = [k for k, _ in members]
    for k, v in members:
        _check_member(k, v)
    if len(set(keys)) != len(keys):
        raise ValueError(f"members must have distinct keys, got {keys!r}")
    if len(members) > MAX_TRACESTATE_MEMBERS:
        raise ValueError(f"members must be at most {MAX_TRACESTATE_MEMBERS}, got {len(members)}")
    return ",".join(f"{k}={v}" for k, v in members)


def update_tracestate(members, key: str, value: str) -> list[tuple[str, str]]:
    """A new list with `key=value` first (leftmost) and any old entry of `key` removed;
    at most 32 members (the rightmost are dropped)."""
    _check_member(key, value)
    rest = [(k, v) for k, v in (members or []) if k != key]
    return [(key, value), *rest][:MAX_TRACESTATE_MEMBERS]


def delete_tracestate(members, key: str) -> list[tuple[str, str]]:
    """A new list without `key` (order of the others kept)."""
    return [(k, v) for k, v in (members or []) if k != key]
