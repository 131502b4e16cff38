"""Chapter 07, exercise 1 (notebooks/07_observability.ipynb): `parse_traceparent`, read and
validate a W3C `traceparent` header (https://www.w3.org/TR/trace-context/).

The check sends valid headers (version 00 with varied ids and flags, ids with leading zeros,
future versions with and without extra fields) and the spec's invalid ones (uppercase hex,
version ff, all-zero ids, wrong lengths, missing fields, non-hex characters that int(x, 16)
lets through, the tutorial's "None" parent and UUID trace id, version 00 with extra fields),
ids drawn afresh each run. Every message names the header and the rule it breaks.
"""
from __future__ import annotations

import re
import uuid

from . import Wrong, exercise, plain, run_rng

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def parse_traceparent(header):
    """(version, trace_id, parent_id, flags), the header's four fields as strings, or None when
    `header` is missing (None) or invalid: then the receiver starts a new trace."""
    if not isinstance(header, str):
        return None
    m = _TRACEPARENT.fullmatch(header)
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest is not None:
        return None                          # version 00 is exactly 55 characters
    return version, trace_id, parent_id, flags


_HINT = ("Check the shape first: two lowercase hex digits, '-', 32, '-', 16, '-', 2 (a regular "
         "expression like [0-9a-f]{32} says it exactly). Then the spec's extra rules: version "
         "ff, an all-zero trace-id or parent-id are invalid; version 00 ends after the flags; a "
         "higher version may go on after the flags, starting with '-'.")
_INVALID_END = "Return None for an invalid header: the receiver then starts a new trace."


def _hex(rng, n: int, *, letter: bool = False) -> str:
    """n lowercase hex digits, not all zero; with a letter a-f at a random place if asked."""
    while True:
        s = "".join(rng.choice("0123456789abcdef") for _ in range(n))
        if s.strip("0") and (not letter or any(c in "abcdef" for c in s)):
            return s


def _cases(rng) -> list:
    """(header, expected, why): expected is the 4-tuple or None; why is true for this header."""
    tid, pid = _hex(rng, 32, letter=True), _hex(rng, 16, letter=True)
    flags = rng.choice(["02", "03", "09", "0b", "80", "ff"])
    future = f"{rng.randrange(1, 255):02x}"
    extra = "-" + _hex(rng, rng.randrange(2, 9)) + rng.choice(["", "-x", "-vendor=7"])
    valid = [
        (f"00-{tid}-{pid}-01", "a plain version-00 header"),
        (f"00-{_hex(rng, 32)}-{_hex(rng, 16)}-00", "flags 00 (not sampled) are valid"),
        (f"00-{'0' * 28}{_hex(rng, 4)}-{'0' * 14}{_hex(rng, 2)}-01",
         "ids with leading zeros are valid: only ids of all zeros are invalid"),
        (f"00-{_hex(rng, 32)}-{_hex(rng, 16)}-{flags}",
         f"flags {flags!r} are valid: any two lowercase hex digits; version 00 gives a meaning "
         "only to bit 0 (sampled), and a receiver keeps the others"),
        (f"{future}-{tid}-{pid}-01{extra}",
         f"version {future} is a future version: a receiver reads its first four fields by the "
         "version-00 rules and ignores what follows a '-' after the flags (the spec's rule for "
         "versions it does not know)"),
        (f"{future}-{_hex(rng, 32)}-{_hex(rng, 16)}-01",
         f"version {future} is a future version; with nothing after the flags it reads like "
         "version 00"),
    ]
    pos = rng.randrange(32)
    while tid[pos] not in "abcdef":
        pos = (pos + 1) % 32
    upper_tid = tid[:pos] + tid[pos].upper() + tid[pos + 1:]
    ppos = next(i for i, c in enumerate(pid) if c in "abcdef")
    upper_pid = pid[:ppos] + pid[ppos].upper() + pid[ppos + 1:]
    bad_hex = tid[:pos] + rng.choice("ghxz") + tid[pos + 1:]
    sign_pid = rng.choice(["+" + pid[1:], " " + pid[1:], pid[:7] + "_" + pid[8:]])
    odd = next(c for c in sign_pid if c not in "0123456789abcdef")
    invalid = [
        (f"00-{upper_tid}-{pid}-01",
         f"the trace-id contains {upper_tid[pos]!r}, an uppercase hex digit: the spec allows "
         "lowercase only, so it is not \"the same id\""),
        (f"00-{tid}-{upper_pid}-01",
         f"the parent-id contains {upper_pid[ppos]!r}, an uppercase hex digit: the spec allows "
         "lowercase only"),
        (f"00-{tid}-None-01",
         "'None' is not a parent-id: it is what the tutorial's code sends when there is no "
         "parent (it formats None into the header). No parent is said by sending no "
         "traceparent at all"),
        (f"ff-{tid}-{pid}-01", "version ff is forbidden by the spec"),
        (f"00-{'0' * 32}-{pid}-01", "a trace-id of 32 zeros is invalid"),
        (f"00-{tid}-{'0' * 16}-01", "a parent-id of 16 zeros is invalid"),
        (f"00-{tid[:-1]}-{pid}-01", "the trace-id has 31 hex digits; it must have exactly 32"),
        (f"00-{tid}a-{pid}-01", "the trace-id has 33 hex digits; it must have exactly 32"),
        (f"00-{tid}-{pid[:-1]}-01", "the parent-id has 15 hex digits; it must have exactly 16"),
        (f"00-{tid}-{pid}-1", "the flags are one digit; they must be exactly two"),
        (f"00-{tid}-{pid}", "the flags field is missing: a traceparent has four fields"),
        (f"00-{tid}", "only two of the four fields are there"),
        (f"00-{bad_hex}-{pid}-01", f"{bad_hex[pos]!r} in the trace-id is not a hex digit"),
        (f"00-{tid}-{sign_pid}-01",
         f"{odd!r} in the parent-id is not a hex digit (int(x, 16) accepts a sign, "
         "underscores and spaces, so it cannot tell whether a field is hex)"),
        (f"00-{uuid.UUID(int=rng.getrandbits(128), version=4)}-{pid}-01",
         "the trace-id is a UUID with hyphens (the tutorial's str(uuid.uuid4())), not 32 hex "
         "digits"),
        (f"00-{tid}-{pid}-01{extra}",
         "version 00 is exactly 55 characters: nothing may follow its flags (only a future "
         "version may add fields)"),
        (f"{future}-{tid}-{pid}-01{extra[1:]}",
         "in a future version, anything after the flags must start with '-'"),
        (f"0{rng.choice('gxz')}-{tid}-{pid}-01", "the version must be two lowercase hex digits"),
        ("", "the header is empty"),
        (None, "None means the request carried no traceparent header (headers.get(...) "
               "returned None)"),
    ]
    # the shape and the basic rules first; then the rules about versions
    out = [(h, _parsed(h), why) for h, why in valid[:4]] + \
        [(h, None, why) for h, why in invalid[:-5]] + \
        [(h, _parsed(h), why) for h, why in valid[4:]] + [(h, None, why) for h, why in invalid[-5:]]
    return out


def _parsed(header: str):
    version, trace_id, parent_id, rest = header.split("-", 3)
    return version, trace_id, parent_id, rest[:2]


def _fields(got):
    """The answer as (version, trace_id, parent_id, flags), or None if it has another shape.
    A tuple/list of four, a dict with those keys, or an object with those attributes."""
    if isinstance(got, (tuple, list)) and len(got) == 4:
        return tuple(got)
    keys = ("version", "trace_id", "parent_id", "flags")
    if isinstance(got, dict):
        alias = {"parent_id": ("parent_id", "span_id"), "flags": ("flags", "trace_flags")}
        try:
            return tuple(next(got[k] for k in alias.get(key, (key,)) if k in got)
                         for key in keys)
        except StopIteration:
            return None
    if all(hasattr(got, k) for k in keys):
        return tuple(getattr(got, k) for k in keys)
    return None


def _same_hex_byte(got, want: str) -> bool:
    """A version or flags field given as the header's two digits, or as the int they mean."""
    if isinstance(got, bool):
        return False
    if isinstance(got, int):
        return got == int(want, 16)
    return got == want


@exercise("07.parse_traceparent", reference=parse_traceparent,
          title="Exercise 1 · parse_traceparent", hint=_HINT, timeout_s=10.0)
def check_parse_traceparent(impl) -> None:
    for header, want, why in _cases(run_rng("07.parse_traceparent")):
        call = f"parse_traceparent({header!r})"
        try:
            got = impl(header)
        except NotImplementedError:
            raise                            # the untouched skeleton: the standard message
        except Exception as err:
            name = f"{type(err).__name__}" + (f" ({err})" if str(err) else "")
            if want is None:
                raise Wrong(f"{call} raised {name}, but an invalid or missing header is not an "
                            f"error for the receiver: {why}. {_INVALID_END}", _HINT) from None
            raise Wrong(f"{call} raised {name} for a valid header: {why}.", _HINT) from None
        got = plain(got, "`parse_traceparent` reads a string and waits for nothing: make it "
                         "a plain `def`, not `async def`.")
        if want is None:
            if got is not None:
                raise Wrong(f"{call} returned {got!r}, but the header is invalid: {why}. "
                            f"{_INVALID_END}", _HINT)
            continue
        if got is None:
            raise Wrong(f"{call} returned None, but the header is valid: {why}.", _HINT)
        fields = _fields(got)
        if fields is None:
            raise Wrong(f"{call} returned {got!r}; return the four fields as a tuple "
                        f"(version, trace_id, parent_id, flags): here {want!r}.", _HINT)
        version, trace_id, parent_id, flags = fields
        if trace_id != want[1] or parent_id != want[2]:
            raise Wrong(f"{call} returned {got!r}: trace_id and parent_id are the header's "
                        f"second and third fields, as they are written: {want[1]!r} and "
                        f"{want[2]!r}.", _HINT)
        if not _same_hex_byte(version, want[0]) or not _same_hex_byte(flags, want[3]):
            note = ""
            if isinstance(flags, bool) or flags in (0, 1, "0", "1") and want[3] not in ("00", "01"):
                note = (f" The flags field is the whole byte ({want[3]!r}), not only the sampled "
                        "bit.")
            raise Wrong(f"{call} returned {got!r}, expected {want!r}: the version and the "
                        "flags are the first and fourth fields (two hex digits each; the int "
                        f"they stand for is fine too).{note}", _HINT)
