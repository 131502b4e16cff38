"""Chapter 04's measurements: bytes and microseconds per codec and fixture, and which values
come back changed (type fidelity), both produced by running the codecs of `labkit.codecs`.

Sizes are deterministic (same fixture, same bytes), so the notebook may state them exactly.
Times are medians of interleaved repeats on a shared machine: only differences beyond
`MARGIN` times are called "faster"/"slower" (column `speed_claim`); anything closer is "no
claim". Times are reported in microseconds (µs).
"""
from __future__ import annotations

import gzip
import math
import statistics
import time

from labkit._core import validate

__all__ = ["FIXTURES", "MARGIN", "BASELINE", "codecs", "size_and_speed", "format_sizes",
           "size_chart", "FIDELITY_VALUES", "JS_ROUNDING", "type_fidelity", "format_fidelity",
           "fidelity_grid"]

FIXTURES = ("order", "large_list", "nested")
BASELINE = "json"      # the stdlib JSON codec: every ratio is against it
MARGIN = 3.0           # speed ratios closer than this are not claimed on a shared machine
_GZIP_LEVEL = 6
_MTIME = 0             # gzip header timestamp fixed: gzip sizes are deterministic


def codecs(*, include_pickle: bool = False) -> dict:
    """{name: codec} for every codec in labkit.codecs' registry (stdlib JSON first); with
    `include_pickle`, the danger demo's pickle last (trusted bytes only)."""
    from labkit.codecs import formats
    out = {BASELINE: formats.get(BASELINE)}
    for name in formats.CODECS:
        out.setdefault(name, formats.get(name))
    if include_pickle:
        from labkit.codecs.danger import danger_pickle
        out[danger_pickle.name] = danger_pickle
    return out


def _for_fixture(name: str, codec, fixture: str):
    """The codec to measure on `fixture`: schema-bound formats use the message that fits it
    (Protobuf's RecordList for the large list); others are used as registered."""
    if name == "protobuf" and fixture == "large_list":
        from labkit.codecs.formats import ProtobufCodec
        return ProtobufCodec("RecordList")
    return codec


def _load_fixture(name: str, *, typed: bool):
    from labkit.codecs import fixtures
    return fixtures.load(name, typed=typed)


def _err(e: Exception) -> str:
    reason = getattr(e, "reason", None) or (str(e).splitlines()[0] if str(e) else "")
    return f"{type(e).__name__}: {reason}"[:120]


def _gzip_len(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=_MTIME))


def _per_call_s(fn, arg, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn(arg)
    return (time.perf_counter() - start) / number


# ---- 1. size and speed -----------------------------------------------------------------------
def size_and_speed(*, fixtures=FIXTURES, repeats: int = 5, budget_s: float = 1.5,
                   codec_names=None, include_pickle: bool = False) -> list[dict]:
    """Per codec x fixture: raw and gzip bytes, encode and decode µs and ratios to stdlib JSON.

    Times are medians of `repeats` rounds; every round runs all pairs in turn (interleaved,
    so machine noise hits all alike) and each measurement loops enough calls to fill its share
    of `budget_s`. A pair whose single call is longer than that share (YAML or Protobuf on the
    large list) is timed fewer times, down to once: `samples` says how often; the run then takes
    longer than `budget_s` by about those calls. A codec that cannot carry a fixture (Protobuf and
    Avro take only their schema's shape) gives a row with `error` set and no numbers. `input`
    says what was encoded: "typed" (datetime, Decimal, bytes, as fixtures.load gives them) or,
    for a codec that refuses those types (MessagePack and YAML have no Decimal), "strings" (the
    JSON file's values). `codec_names` picks codecs (stdlib JSON is always measured). Chapter 04.
    """
    repeats = validate.integer("repeats", repeats, 1, 100)
    budget_s = validate.number("budget_s", budget_s, 0.01, 60, unit=" s")
    fixtures = _fixture_names(fixtures)
    table = codecs(include_pickle=include_pickle)
    if codec_names is not None:
        wanted = _codec_names(codec_names, table)
        table = {n: c for n, c in table.items() if n == BASELINE or n in wanted}
    for codec in table.values():
        _warm_up(codec)
    rows, live = [], []
    for fx in fixtures:
        inputs = (("typed", _load_fixture(fx, typed=True)),
                  ("strings", _load_fixture(fx, typed=False)))
        for name, codec in table.items():
            codec = _for_fixture(name, codec, fx)
            row = {"codec": name, "fixture": fx, "error": None, "input": None}
            rows.append(row)
            for kind, obj in inputs:  # typed values first; JSON's strings if refused
                try:
                    t0 = time.perf_counter()
                    data = codec.encode(obj)
                    t1 = time.perf_counter()
                    codec.decode(data)
                    t2 = time.perf_counter()
                except Exception as e:  # noqa: BLE001 - reported in the row, not raised
                    row["error"] = _err(e)
                    continue
                row.update(error=None, input=kind, raw_bytes=len(data),
                           gzip_bytes=_gzip_len(data))
                live.append((row, codec, obj, data, [t1 - t0], [t2 - t1]))
                break
    share_s = budget_s / max(1, len(live) * repeats)   # one encode + decode measurement
    pair_s = budget_s / max(1, len(live))
    plans = []
    for row, codec, obj, data, enc, dec in live:
        one = max(enc[0] + dec[0], 1e-7)
        if one <= share_s:    # fast: loop `number` calls per measurement, `repeats` rounds
            plans.append((row, codec, obj, data, min(10_000, int(share_s / one)), repeats, [], []))
        else:                 # slow: single calls, as many rounds as its share allows (>= 1)
            rounds = max(0, min(repeats, int(pair_s / one)) - 1)
            plans.append((row, codec, obj, data, 1, rounds, enc, dec))
    for k in range(repeats):
        for row, codec, obj, data, number, rounds, enc, dec in plans:
            if k < rounds:
                enc.append(_per_call_s(codec.encode, obj, number))
                dec.append(_per_call_s(codec.decode, data, number))
    for row, _c, _o, _d, number, _r, enc, dec in plans:
        row.update(encode_us=statistics.median(enc) * 1e6, decode_us=statistics.median(dec) * 1e6,
                   calls_per_measure=number, samples=len(enc))
    _add_ratios(rows)
    return rows


def _warm_up(codec) -> None:
    """First use compiles .proto files, parses schemas and imports libraries: not timed."""
    try:
        codec.decode(codec.encode({}))
    except Exception:  # noqa: BLE001, S110 - a schema may refuse {}; the warm-up still happened
        pass


def _codec_names(names, table) -> set:
    if isinstance(names, str):
        names = (names,)
    try:
        names = set(names)
    except TypeError:
        raise ValueError(f"codec_names must be names from {list(table)}, got {names!r}") from None
    for n in names:
        validate.choice("codec_names", n, table)
    return names


def _fixture_names(fixtures) -> tuple:
    if isinstance(fixtures, str):
        fixtures = (fixtures,)
    try:
        names = tuple(fixtures)
    except TypeError:
        raise ValueError(f"fixtures must be names from {FIXTURES}, got {fixtures!r}") from None
    if not names:
        raise ValueError(f"fixtures must name at least one of {FIXTURES}, got {fixtures!r}")
    for n in names:
        validate.choice("fixtures", n, FIXTURES)
    return names


def _add_ratios(rows: list[dict]) -> None:
    base = {r["fixture"]: r for r in rows if r["codec"] == BASELINE and not r["error"]}
    for r in rows:
        b = base.get(r["fixture"])
        if r["error"] or b is None:
            continue
        r["bytes_vs_json"] = r["raw_bytes"] / b["raw_bytes"]
        r["gzip_vs_json"] = r["gzip_bytes"] / b["gzip_bytes"]
        r["time_vs_json"] = (r["encode_us"] + r["decode_us"]) / (b["encode_us"] + b["decode_us"])
        t = r["time_vs_json"]
        r["speed_claim"] = (f">= {MARGIN:g}x faster" if t <= 1 / MARGIN else
                            f">= {MARGIN:g}x slower" if t >= MARGIN else "no claim")


def format_sizes(rows: list[dict]) -> str:
    """The `size_and_speed` rows as a plain-text table (µs rounded; sizes exact)."""
    head = (f"{'fixture':<11}{'codec':<17}{'bytes':>9}{'gzip':>8}{'x json':>8}"
            f"{'enc µs':>10}{'dec µs':>10}{'time x json':>12}  speed claim")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("error"):
            why = r["error"].splitlines()[0].removeprefix("EncodeError: ")
            lines.append(f"{r['fixture']:<11}{r['codec']:<17}  cannot carry it (not in its schema): "
                         f"{why[:90]}")
            continue
        ratio = r.get("bytes_vs_json", math.nan)
        t = r.get("time_vs_json", math.nan)
        lines.append(f"{r['fixture']:<11}{r['codec']:<17}{r['raw_bytes']:>9}{r['gzip_bytes']:>8}"
                     f"{ratio:>8.2f}{r['encode_us']:>10.1f}{r['decode_us']:>10.1f}{t:>12.2f}"
                     f"  {r.get('speed_claim', '')}"
                     + ("  (input: strings)" if r.get("input") == "strings" else "")
                     + (f"  ({r['samples']} sample{'s' * (r['samples'] > 1)})"
                        if r.get("samples", 0) < 3 else ""))
    return "\n".join(lines)


def size_chart(rows: list[dict]):
    """The rows as a matplotlib Figure (labkit.ui.serialization_charts.size_chart)."""
    from labkit.ui.serialization_charts import size_chart as chart
    return chart(rows)


from labkit.labs.serialization_fidelity import (  # noqa: E402 - split module, re-exported
    FIDELITY_VALUES, JS_ROUNDING, fidelity_grid, format_fidelity, type_fidelity)
