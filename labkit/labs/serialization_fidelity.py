"""Chapter 04's type-fidelity table: each value sent through each codec, and what came back.

Nothing here is asserted from documentation: `type_fidelity()` runs encode then decode and
compares. Verdicts are "same", "changed: <how>" or "refused: <error>". One extra row reads
stdlib JSON the way a JavaScript client does (every number a float64), which is how
2**53 + 1 silently becomes 2**53 (`JS_ROUNDING`). Re-exported by labkit.labs.serialization.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

__all__ = ["FIDELITY_VALUES", "JS_ROUNDING", "JS_READER", "type_fidelity", "format_fidelity"]

_BIG = 2**53 + 1
FIDELITY_VALUES = (
    ("aware datetime", dt.datetime(2024, 5, 17, 9, 30, 15, 123456,
                                   tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    ("naive datetime", dt.datetime(2024, 5, 17, 9, 30, 15, 123456)),
    ("Decimal('0.1')", Decimal("0.1")),
    ("bytes", b"\x00\xffpdf"),
    ("set", {1, 2, 3}),
    ("tuple", (1, "a")),
    ("2**53 + 1", _BIG),
    ("float('nan')", float("nan")),
    ("dict with int keys", {1: "a", 2: "b"}),
    ("None", None),
)
# What a float64 (a JavaScript Number, or any JSON reader that parses numbers as doubles) keeps.
JS_ROUNDING = {"sent": _BIG, "float64": float(_BIG), "as_int": int(float(_BIG)),
               "changed": float(_BIG) != _BIG, "max_safe_integer": 2**53 - 1}
JS_READER = "json read as JS"
_WIRE = 48


class _JsReader:
    """Stdlib JSON bytes decoded the way JavaScript's JSON.parse does: numbers are float64."""

    name = JS_READER

    def __init__(self, json_codec):
        self._json = json_codec

    def encode(self, obj) -> bytes:
        return self._json.encode(obj)

    def decode(self, data: bytes):
        return json.loads(data, parse_int=float, parse_constant=_no_constant)


def _no_constant(name: str):
    raise ValueError(f"JSON.parse refuses {name}: it is not JSON (RFC 8259)")


def _short(x, n: int = 34) -> str:
    r = repr(x)
    return r if len(r) <= n else r[: n - 3] + "..."


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dt.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _how(sent, back) -> str:
    """A short account of what changed between `sent` and `back`."""
    if isinstance(sent, dt.datetime) and isinstance(back, dt.datetime):
        tz = (lambda d: "naive" if d.utcoffset() is None else f"UTC{_offset(d)}")
        aware = sent.utcoffset() is not None and back.utcoffset() is not None
        if aware and sent == back:
            return f"same instant, offset {tz(sent)} -> {tz(back)}"
        if tz(sent) != tz(back):
            return f"{tz(sent)} -> {tz(back)}"
        return f"{_short(sent)} -> {_short(back)}"
    if isinstance(sent, dict) and isinstance(back, dict):
        ks, kb = {type(k).__name__ for k in sent}, {type(k).__name__ for k in back}
        if ks != kb:
            return f"keys {'/'.join(sorted(ks))} -> {'/'.join(sorted(kb))}"
    if type(sent) is not type(back):
        return f"{type(sent).__name__} -> {type(back).__name__} {_short(back, 26)}"
    return f"{_short(sent, 24)} -> {_short(back, 24)}"


def _offset(d: dt.datetime) -> str:
    off = d.utcoffset()
    if not off:
        return ""
    sign, minutes = ("+" if off >= dt.timedelta(0) else "-"), abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _one(codec, sent) -> dict:
    try:
        data = codec.encode(sent)
    except Exception as e:  # noqa: BLE001 - the refusal is the result
        return {"back": None, "back_type": "", "verdict": f"refused: {_err(e)}", "wire": None}
    try:
        back = codec.decode(data)
    except Exception as e:  # noqa: BLE001
        return {"back": None, "back_type": "", "verdict": f"refused on decode: {_err(e)}",
                "wire": data[:_WIRE]}
    verdict = "same" if _same(sent, back) else f"changed: {_how(sent, back)}"
    return {"back": back, "back_type": type(back).__name__, "verdict": verdict, "wire": data[:_WIRE]}


def _err(e: Exception) -> str:
    reason = getattr(e, "reason", None) or (str(e).splitlines()[0] if str(e) else "")
    return f"{type(e).__name__}: {reason}"[:100]


def type_fidelity(*, include_pickle: bool = True, js_reader: bool = True) -> list[dict]:
    """Run every codec on `FIDELITY_VALUES`: one row per (value, codec) with "value", "codec",
    "sent", "back", "back_type", "verdict" and "wire" (the first 48 encoded bytes; None if
    the encoder refused).

    Each value is encoded at top level as it is. Protobuf and Avro take only their schema's
    message, so they refuse loose values: that refusal is their answer. With `js_reader`, stdlib
    JSON is also read as JavaScript would (float64 numbers); with `include_pickle`, the danger
    demo's pickle shows that keeping every type is what makes it unsafe. Chapter 04.
    """
    from labkit.labs.serialization import BASELINE, codecs
    table = codecs(include_pickle=False)
    if js_reader:
        table[JS_READER] = _JsReader(table[BASELINE])
    if include_pickle:
        from labkit.codecs.danger import danger_pickle
        table[danger_pickle.name] = danger_pickle
    rows = []
    for label, value in FIDELITY_VALUES:
        for name, codec in table.items():
            rows.append({"value": label, "codec": name, "sent": value, **_one(codec, value)})
    return rows


def format_fidelity(rows: list[dict], *, width: int = 150) -> str:
    """The `type_fidelity` rows as a plain-text table, grouped by value, plus the JS note."""
    lines, last = [], None
    head = f"{'value':<20}{'codec':<18}{'came back':<28}{'type':<10}verdict"
    lines += [head, "-" * min(width, max(len(head), 90))]
    for r in rows:
        label = r["value"] if r["value"] != last else ""
        if r["value"] != last and last is not None:
            lines.append("")
        last = r["value"]
        back = _short(r["back"], 26) if r["back_type"] else "-"
        line = f"{label:<20}{r['codec']:<18}{back:<28}{r['back_type']:<10}{r['verdict']}"
        lines.append(line[:width])
    nan = [r for r in rows if r["value"] == "float('nan')" and r["codec"] == "json"]
    if nan and nan[0]["wire"] is not None and b"NaN" in nan[0]["wire"]:
        lines += ["", f"note: stdlib json wrote float('nan') as {nan[0]['wire']!r}, which is not "
                  f"JSON (RFC 8259): other parsers, JavaScript's JSON.parse among them, refuse it."]
    js = JS_ROUNDING
    lines += ["", f"note: {js['sent']} > 2**53 - 1 = {js['max_safe_integer']}; as a float64 "
              f"(a JavaScript Number) it is {js['as_int']}: float(2**53 + 1) != 2**53 + 1 is "
              f"{js['changed']}. A codec keeps the integer; a JS client reading it does not."]
    return "\n".join(lines)


def fidelity_grid(rows: list[dict], *, skip=("protobuf", "avro")) -> str:
    """The `type_fidelity` rows at a glance: one line per value, one column per codec, each
    cell "same", "CHANGED" or "refused" (`format_fidelity` has the details). Schema formats
    (`skip`) are left out: they refuse every loose value, by design."""
    codecs = list(dict.fromkeys(r["codec"] for r in rows if r["codec"] not in skip))
    cell = {(r["value"], r["codec"]): r["verdict"].split(":")[0].split()[0] for r in rows}
    word = {"same": "same", "changed": "CHANGED", "refused": "refused"}   # on encode or decode
    width = max(9, *(len(c) + 1 for c in codecs))
    lines = [f"{'value':<20}" + "".join(f"{c:>{width}}" for c in codecs)]
    for value in dict.fromkeys(r["value"] for r in rows):
        lines.append(f"{value:<20}" + "".join(
            f"{word.get(cell.get((value, c), ''), '?'):>{width}}" for c in codecs))
    return "\n".join(lines)
