"""Chapter 04's measurements: sizes per codec and fixture (exact, deterministic), the timing
procedure (checked with a fake clock, never by wall time) and the type-fidelity table,
produced by running the codecs."""
import gzip
import math
import subprocess
import sys

import pytest

from labkit.codecs import fixtures as fx
from labkit.codecs.formats import CODECS, get
from labkit.labs import serialization as ser
from labkit.labs import serialization_fidelity as fid


@pytest.fixture(scope="module")
def order_rows():
    return ser.size_and_speed(fixtures=("order",), repeats=2, budget_s=0.05)


def _row(rows, codec, fixture="order"):
    return next(r for r in rows if r["codec"] == codec and r["fixture"] == fixture)


def test_every_codec_measured_on_the_order_with_exact_sizes(order_rows):
    assert [r["codec"] for r in order_rows] == list(CODECS)
    obj = fx.load("order")
    for name in ("json", "orjson", "protobuf", "cbor", "avro"):   # they carry the typed order
        r = _row(order_rows, name)
        data = get(name).encode(obj)
        assert r["error"] is None and r["input"] == "typed"
        assert r["raw_bytes"] == len(data)
        assert r["gzip_bytes"] == len(gzip.compress(data, compresslevel=6, mtime=0))
        assert r["encode_us"] > 0 and r["decode_us"] > 0 and r["samples"] >= 1
    # MessagePack and YAML have no Decimal: they are measured on the JSON file's strings.
    for name in ("msgpack", "yaml"):
        r = _row(order_rows, name)
        assert r["input"] == "strings"
        assert r["raw_bytes"] == len(get(name).encode(fx.load("order", typed=False)))


def test_sizes_are_deterministic_and_ratios_are_to_stdlib_json(order_rows):
    again = ser.size_and_speed(fixtures=("order",), repeats=1, budget_s=0.02)
    assert [(r["raw_bytes"], r["gzip_bytes"]) for r in again] == \
        [(r["raw_bytes"], r["gzip_bytes"]) for r in order_rows]
    base = _row(order_rows, "json")
    assert base["bytes_vs_json"] == 1.0 and base["time_vs_json"] == 1.0
    for r in order_rows:
        assert r["bytes_vs_json"] == pytest.approx(r["raw_bytes"] / base["raw_bytes"])
    # Schema formats leave the field names out of the bytes: smaller than self-describing ones.
    assert _row(order_rows, "avro")["raw_bytes"] < _row(order_rows, "protobuf")["raw_bytes"] \
        < _row(order_rows, "cbor")["raw_bytes"] < base["raw_bytes"]
    assert _row(order_rows, "orjson")["raw_bytes"] == base["raw_bytes"]


def test_a_codec_that_cannot_carry_a_fixture_gets_an_error_row():
    rows = ser.size_and_speed(fixtures="nested", repeats=1, budget_s=0.02,
                              codec_names=("avro", "protobuf", "msgpack"))
    assert [r["codec"] for r in rows] == ["json", "msgpack", "protobuf", "avro"]
    for name in ("avro", "protobuf"):
        r = _row(rows, name, "nested")
        assert r["error"].startswith("EncodeError") and "raw_bytes" not in r
    assert _row(rows, "msgpack", "nested")["error"] is None
    assert "cannot carry it" in ser.format_sizes(rows)


def test_speed_claims_need_the_margin():
    def row(codec, us):
        return {"codec": codec, "fixture": "f", "error": None, "raw_bytes": 10, "gzip_bytes": 10,
                "encode_us": us / 2, "decode_us": us / 2}
    rows = [row("json", 30.0), row("a", 9.0), row("b", 11.0), row("c", 89.0), row("d", 91.0)]
    ser._add_ratios(rows)
    assert [r["speed_claim"] for r in rows] == ["no claim", ">= 3x faster", "no claim",
                                                "no claim", ">= 3x slower"]


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _FakeCodec:
    """Encode/decode advance a fake clock by `cost_s` and log the call."""

    def __init__(self, name, cost_s, clock, log):
        self.name, self.cost_s, self.clock, self.log = name, cost_s, clock, log

    def encode(self, obj):
        self.clock.now += self.cost_s
        self.log.append(self.name)
        return b"x" * 10

    def decode(self, data):
        self.clock.now += self.cost_s
        return {}


def test_interleaved_rounds_and_slow_pairs_timed_once(monkeypatch):
    clock, log = _Clock(), []
    table = {"json": _FakeCodec("json", 1e-5, clock, log),
             "fast": _FakeCodec("fast", 1e-5, clock, log),
             "slow": _FakeCodec("slow", 0.5, clock, log)}
    monkeypatch.setattr(ser, "codecs", lambda include_pickle=False: dict(table))
    monkeypatch.setattr(ser, "_load_fixture", lambda name, typed: {"n": name})
    monkeypatch.setattr(ser.time, "perf_counter", clock)
    rows = ser.size_and_speed(fixtures=("order",), repeats=3, budget_s=0.03)
    by = {r["codec"]: r for r in rows}
    # the slow pair: one call only (the size pass), its fake time reported exactly
    assert by["slow"]["samples"] == 1 and log.count("slow") == 2   # warm-up, size pass
    assert by["slow"]["encode_us"] == pytest.approx(0.5e6)
    # fast pairs: 3 rounds of `calls_per_measure` calls, at 10 µs each
    assert by["fast"]["samples"] == 3 and by["fast"]["calls_per_measure"] >= 2
    assert by["fast"]["encode_us"] == pytest.approx(10.0)
    assert by["fast"]["speed_claim"] == "no claim"
    assert by["slow"]["speed_claim"] == ">= 3x slower"
    # interleaved: after the warm-up and size pass, json and fast alternate round by round
    timed = [c for c in log[6:] if c != "slow"]
    n = by["fast"]["calls_per_measure"]
    assert timed[:n] == ["json"] * n and timed[n:2 * n] == ["fast"] * n
    assert timed[2 * n:3 * n] == ["json"] * n


@pytest.mark.parametrize("kwargs, name", [
    ({"repeats": 0}, "repeats"), ({"budget_s": -1}, "budget_s"),
    ({"fixtures": ("orders",)}, "fixtures"), ({"fixtures": ()}, "fixtures"),
    ({"fixtures": 3}, "fixtures"), ({"codec_names": ["pickle"]}, "codec_names"),
])
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ser.size_and_speed(**kwargs)


def test_size_chart(order_rows):
    from matplotlib.figure import Figure
    fig = ser.size_chart(order_rows)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    bars = fig.axes[0].patches
    assert len(bars) == 2 * len(order_rows)       # raw and gzip per codec
    assert sorted(b.get_height() for b in bars[:len(order_rows)]) == \
        sorted(r["raw_bytes"] for r in order_rows)
    with pytest.raises(ValueError, match="rows"):
        ser.size_chart([{"codec": "json", "error": "x"}])
    with pytest.raises(ValueError, match="rows"):
        ser.size_chart("nope")


# ---- type fidelity ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table():
    return fid.type_fidelity()


def _cell(table, value, codec):
    return next(r for r in table if r["value"] == value and r["codec"] == codec)


def test_table_covers_every_value_and_codec(table):
    names = list(CODECS) + [fid.JS_READER, "pickle (danger)"]
    assert len(table) == len(fid.FIDELITY_VALUES) * len(names)
    assert [r["codec"] for r in table[:len(names)]] == names
    # pickle keeps everything: that is what makes it dangerous
    assert all(r["verdict"] == "same" for r in table if r["codec"] == "pickle (danger)")


@pytest.mark.parametrize("value, codec, verdict", [
    ("tuple", "json", "changed: tuple -> list"),
    ("set", "json", "refused: EncodeError"),
    ("set", "cbor", "same"),
    ("Decimal('0.1')", "json", "changed: Decimal -> str"),
    ("Decimal('0.1')", "cbor", "same"),
    ("bytes", "msgpack", "same"),
    ("bytes", "orjson", "changed: bytes -> str"),
    ("dict with int keys", "json", "changed: keys int -> str"),
    ("dict with int keys", "msgpack", "refused on decode: DecodeError"),
    ("float('nan')", "orjson", "changed: float -> NoneType"),
    ("float('nan')", "json", "same"),
    ("float('nan')", fid.JS_READER, "refused on decode: ValueError: JSON.parse refuses NaN"),
    ("naive datetime", "yaml", "same"),
    ("aware datetime", "msgpack", "changed: same instant, offset UTC+02:00 -> UTC"),
    ("2**53 + 1", "json", "same"),
    ("2**53 + 1", fid.JS_READER, "changed: int -> float"),
    ("None", "protobuf", "refused: EncodeError"),
])
def test_verdicts_come_from_running_the_codec(table, value, codec, verdict):
    assert _cell(table, value, codec)["verdict"].startswith(verdict)


def test_values_that_came_back(table):
    big = _cell(table, "2**53 + 1", fid.JS_READER)
    assert big["back"] == float(2**53 + 1) == 2**53 and big["back"] != 2**53 + 1
    assert fid.JS_ROUNDING["as_int"] == 2**53 and fid.JS_ROUNDING["changed"] is True
    assert _cell(table, "float('nan')", "json")["wire"] == b"NaN"
    assert math.isnan(_cell(table, "float('nan')", "cbor")["back"])
    assert _cell(table, "tuple", "json")["back"] == [1, "a"]


def test_pretty_printer(table):
    text = ser.format_fidelity(table)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["value", "codec", "came"]
    assert any(line.startswith("2**53 + 1") for line in lines)
    assert "9007199254740992" in text and "not JSON (RFC 8259)" in text
    assert text.count("refused") == sum(r["verdict"].startswith("refused") for r in table)


def test_same_is_strict():
    assert fid._same(float("nan"), float("nan"))
    assert not fid._same((1, 2), [1, 2])
    assert not fid._same({1: "a"}, {"1": "a"})
    assert not fid._same(True, 1)
    a = fid.FIDELITY_VALUES[0][1]
    assert not fid._same(a, a.astimezone(fid.dt.timezone.utc))


def test_importing_the_lab_loads_no_codec_library():
    code = ("import sys, labkit.labs.serialization; print(sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('orjson', 'cbor2', 'fastavro', 'yaml', 'google', 'msgpack', "
            "'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_fidelity_grid_has_a_word_for_every_cell():
    from labkit.labs.serialization import fidelity_grid, type_fidelity
    grid = fidelity_grid(type_fidelity())
    lines = grid.splitlines()
    assert "protobuf" not in lines[0] and "avro" not in lines[0]          # schema formats left out
    assert "?" not in grid                        # refused on decode is still "refused"
    nan = next(line for line in lines if line.startswith("float('nan')"))
    assert nan.split()[-2] == "refused"            # JSON.parse refuses NaN (the JS reader column)
