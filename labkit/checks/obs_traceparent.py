"""Chapter 07, exercise 1 (notebooks/07_observability.ipynb): `parse_traceparent`, read and
validate a W3C `traceparent` header (https://www.w3.org/TR/trace-context/).

The check sends valid headers (version 00 with varied ids and flags, ids with leading zeros,
future versions with and without extra fields) and the spec's invalid ones (uppercase hex in
each field, version ff, all-zero ids, wrong lengths, missing fields, non-hex flags, characters
that int(x, 16) lets through in each field, a digit of another script that \\d matches, the
tutorial's "None" parent and UUID trace id, version 00 with extra fields or a final newline),
ids drawn afresh each run. Every message names the header and the rule it breaks. Headers
never have surrounding whitespace: labkit's parser ignores spaces and tabs there (HTTP's
optional whitespace), the reference does not, and the statement says the value arrives without.
"""
from __future__ import annotations

import re
import unicodedata
import uuid

from . import Wrong, exercise, plain, run_rng


def parse_traceparent(header):
    """(version, trace_id, parent_id, flags), the header's four fields as strings, or None when
    `header` is missing (None) or invalid: then the receiver starts a new trace."""
    import re                                # self-contained: solution() prints this function
    if not isinstance(header, str):
        return None
    m = re.fullmatch(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", header,
                     re.DOTALL)               # a future version's extra fields: anything
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest is not None:
        return None                          # version 00 is exactly 55 characters
    return version, trace_id, parent_id, flags


_HINT = ("Check the shape first: two lowercase hex digits, '-', 32, '-', 16, '-', 2 (re.fullmatch "
         "with [0-9a-f]{2}-[0-9a-f]{32}-... says it exactly; re.match with '$' lets a final "
         "newline through, \\d matches digits of other scripts, int(x, 16) accepts signs and "
         "spaces). Then the spec's extra rules: version "
         "ff, an all-zero trace-id or parent-id are invalid; version 00 ends after the flags; a "
         "higher version may go on after the flags, starting with '-'.")
_INVALID_END = "Return None for an invalid header: the receiver then starts a new trace."


def _hex(rng, n: int, *, letter: bool = False) -> str:
    """n lowercase hex digits, not all zero; with a letter a-f at a random place if asked."""
    while True:
        s = "".join(rng.choice("0123456789abcdef") for _ in range(n))
        if s.strip("0") and (not letter or any(c in "abcdef" for c in s)):
            return s


def _with(text: str, pos: int, char: str) -> str:
    return text[:pos] + char + text[pos + 1:]


def _upper_one(rng, text: str) -> tuple[str, str]:
    """`text` with one of its letters a-f uppercased, and that letter."""
    pos = rng.choice([i for i, c in enumerate(text) if c in "abcdef"])
    return _with(text, pos, text[pos].upper()), text[pos].upper()


def _int_lets_through(rng, text: str) -> str:
    """`text` with one character that is not hex but that int(x, 16) accepts: a sign in front,
    a space at either end or an underscore between digits (the 2-digit version and flags:
    a sign, so no space lands at the header's ends)."""
    if len(text) == 2:
        return "+" + text[1]
    kind = rng.choice(["+", " ", " end", "_"])
    if kind == " end":
        return text[:-1] + " "
    if kind == "_":
        return _with(text, rng.randrange(1, len(text) - 1), "_")
    return kind + text[1:]


#: digits of other scripts: \d, str.isdigit() and int() accept them; [0-9a-f] does not
_OTHER_DIGITS = "\u0663\u06f7\u0969\uff15"      # Arabic-Indic, Persian, Devanagari, fullwidth


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
    upper_tid, up_t = _upper_one(rng, tid)
    upper_pid, up_p = _upper_one(rng, pid)
    upper_version, up_v = _upper_one(rng, rng.choice(
        [f"{n:02x}" for n in range(1, 255) if set(f"{n:02x}") & set("abcdef")]))
    upper_flags, up_f = _upper_one(rng, rng.choice(["0b", "0a", "a1", "c3", "0f", "e1"]))
    bad_hex = _with(tid, rng.randrange(32), rng.choice("ghxz"))
    bad_flags = rng.choice(["zz", "0g", "x1", "g0", "0z"])
    fields = {"version": "00", "trace-id": tid, "parent-id": pid, "flags": "01"}

    def header(name: str, text: str) -> str:
        """The plain version-00 header with field `name` replaced by `text`."""
        return "-".join({**fields, name: text}.values())

    def int_case(name: str):
        text = _int_lets_through(rng, fields[name])
        odd = next(c for c in text if c not in "0123456789abcdef")
        return (header(name, text),
                f"{odd!r} in the {name} is not a hex digit (int(x, 16) accepts a sign, "
                "underscores and spaces, so it cannot tell whether a field is hex)")

    other = rng.choice(_OTHER_DIGITS)
    other_field = rng.choice(["trace-id", "parent-id"])
    other_text = _with(fields[other_field], rng.randrange(len(fields[other_field])), other)

    invalid = [
        (f"00-{upper_tid}-{pid}-01",
         f"the trace-id contains {up_t!r}, an uppercase hex digit: the spec allows "
         "lowercase only, so it is not \"the same id\""),
        (f"00-{tid}-{upper_pid}-01",
         f"the parent-id contains {up_p!r}, an uppercase hex digit: the spec allows "
         "lowercase only"),
        (f"{upper_version}-{tid}-{pid}-01",
         f"the version is {upper_version!r}: {up_v!r} is an uppercase hex digit, and the spec "
         "allows lowercase only"),
        (f"00-{tid}-{pid}-{upper_flags}",
         f"the flags are {upper_flags!r}: {up_f!r} is an uppercase hex digit, and the spec "
         "allows lowercase only"),
        (f"00-{tid}-None-01",
         "'None' is not a parent-id: it is what a missing parent becomes when it is formatted "
         "as text. The tutorial puts the Python value None in its X-Parent-Span-ID header "
         "for a call made outside any span: aiohttp raises TypeError, and a client that "
         "str()s header values sends 'None'. No parent is said by sending no traceparent at "
         "all"),
        (f"ff-{tid}-{pid}-01", "version ff is forbidden by the spec"),
        (f"00-{'0' * 32}-{pid}-01", "a trace-id of 32 zeros is invalid"),
        (f"00-{tid}-{'0' * 16}-01", "a parent-id of 16 zeros is invalid"),
        (f"00-{tid[:-1]}-{pid}-01", "the trace-id has 31 hex digits; it must have exactly 32"),
        (f"00-{tid}a-{pid}-01", "the trace-id has 33 hex digits; it must have exactly 32"),
        (f"00-{tid}-{pid[:-1]}-01", "the parent-id has 15 hex digits; it must have exactly 16"),
        (f"00-{tid}-{pid}-1", "the flags are one digit; they must be exactly two"),
        (f"00-{tid}-{pid}", "the flags field is missing: a traceparent has four fields"),
        (f"00-{tid}", "only two of the four fields are there"),
        (f"00-{bad_hex}-{pid}-01",
         f"{next(c for c in bad_hex if c in 'ghxz')!r} in the trace-id is not a hex digit"),
        (f"00-{tid}-{pid}-{bad_flags}",
         f"the flags are {bad_flags!r}: {next(c for c in bad_flags if c in 'gxz')!r} is not a "
         "hex digit, and the flags must be two lowercase hex digits"),
        *(int_case(name) for name in ("version", "trace-id", "parent-id", "flags")),
        (header(other_field, other_text),
         f"{other!r} in the {other_field} is not one of 0-9a-f: it is {unicodedata.name(other)}, "
         "a digit of another script that \\d, str.isdigit() and int() accept"),
        (f"00-{uuid.UUID(int=rng.getrandbits(128), version=4)}-{pid}-01",
         "the trace-id is a UUID with hyphens (the tutorial's str(uuid.uuid4())), not 32 hex "
         "digits"),
        (f"00-{tid}-{pid}-01{extra}",
         "version 00 is exactly 55 characters: nothing may follow its flags (only a future "
         "version may add fields)"),
        (f"00-{tid}-{pid}-01\n",
         "the header ends in a newline after the flags: version 00 is exactly 55 characters, "
         "and a newline is no part of any field (str.strip() removes it, and a regular "
         "expression's '$' matches just before it: use re.fullmatch on the header as it is)"),
        (f"{future}-{tid}-{pid}-01{extra[1:]}",
         "in a future version, anything after the flags must start with '-'"),
        (f"0{rng.choice('gxz')}-{tid}-{pid}-01", "the version must be two lowercase hex digits"),
        ("", "the header is empty"),
        (None, "None means the request carried no traceparent header (headers.get(...) "
               "returned None)"),
    ]
    # the shape and the basic rules first; then the rules about versions
    out = [(h, _parsed(h), why) for h, why in valid[:4]] + \
        [(h, None, why) for h, why in invalid[:-6]] + \
        [(h, _parsed(h), why) for h, why in valid[4:]] + [(h, None, why) for h, why in invalid[-6:]]
    return out


def _parsed(header: str):
    version, trace_id, parent_id, rest = header.split("-", 3)
    return version, trace_id, parent_id, rest[:2]


_KEYS = ("version", "trace_id", "parent_id", "flags")
_ALIAS = {"parent_id": ("parent_id", "span_id"), "flags": ("flags", "trace_flags")}   # OTel's


def _dict_missing(got) -> list[str]:
    """The four fields that `got` (a dict's keys, or an object's attributes) has under neither
    name."""
    has = (lambda k: k in got) if isinstance(got, dict) else (lambda k: hasattr(got, k))
    return [key for key in _KEYS if not any(has(k) for k in _ALIAS.get(key, (key,)))]


def _fields(got):
    """The answer as (version, trace_id, parent_id, flags), or None if it has another shape.
    A tuple/list of four, a dict with those keys, or an object with those attributes (either
    may say span_id and trace_flags, OTel's names)."""
    if isinstance(got, (tuple, list)) and len(got) == 4:
        return tuple(got)
    if isinstance(got, (str, bytes, tuple, list)) or _dict_missing(got):
        return None
    if isinstance(got, dict):
        return tuple(next(got[k] for k in _ALIAS.get(key, (key,)) if k in got)
                     for key in _KEYS)
    return tuple(next(getattr(got, k) for k in _ALIAS.get(key, (key,)) if hasattr(got, k))
                 for key in _KEYS)


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
            note = ""
            if not isinstance(got, (str, bytes, tuple, list)):
                missing = ", ".join(" (or ".join(map(repr, _ALIAS.get(k, (k,)))) +
                                    ")" * (k in _ALIAS) for k in _dict_missing(got))
                what = ("A dict is read too when it has all four keys; this dict has no"
                        if isinstance(got, dict) else "An object is read too when it has all "
                        f"four attributes; this {type(got).__name__} has no")
                note = f" ({what} {missing}.)" if missing else ""
            raise Wrong(f"{call} returned {got!r}; return the four fields as a tuple "
                        f"(version, trace_id, parent_id, flags): here {want!r}.{note}", _HINT)
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
