"""Hostile bytes (chapter 04): every decoder raises DecodeError, fast, without allocating what
the payload merely claims, without running anything, without hanging."""
import tracemalloc

import pytest

from labkit.codecs import fixtures
from labkit.codecs.base import DecodeError, Limits
from labkit.codecs.formats import CODECS, CborCodec, JsonCodec, YamlCodec, get

MB = 1024 * 1024
TYPED = {"avro", "cbor"}        # codecs that take the order with its real types


def _order_bytes(name):
    return get(name).encode(fixtures.load("order", typed=name in TYPED))


def _refused(codec, payload, **kw):
    """DecodeError raised; returns (error, peak bytes allocated while decoding)."""
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as info:
            codec.decode(payload, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.format == codec.name and isinstance(info.value, ValueError)
    assert codec.name in str(info.value) and info.value.reason
    return info.value, peak


# -- truncated, garbage, wrong type, empty ---------------------------------------------------
@pytest.mark.parametrize("name", [n for n in CODECS if n != "yaml"])
@pytest.mark.parametrize("keep", [0.0, 0.5, -1])
def test_truncated_payload_is_a_decode_error(name, keep):
    data = _order_bytes(name)
    cut = len(data) - 1 if keep == -1 else max(1, int(len(data) * keep))
    _refused(get(name), data[:cut])


def test_yaml_flow_truncation_is_caught_but_block_truncation_cannot_be():
    _refused(get("yaml"), b"{a: [1, 2, 3], b: ")
    data = _order_bytes("yaml")
    half = get("yaml").decode(data[:len(data) // 2])   # still YAML: no end marker (documented)
    assert half != fixtures.load("order", typed=False)


@pytest.mark.parametrize("name", list(CODECS))
def test_garbage_is_a_decode_error(name):
    _refused(get(name), b"\xff" * 20)


@pytest.mark.parametrize("name", list(CODECS))
def test_empty_and_non_bytes_are_decode_errors(name):
    err, _ = _refused(get(name), b"")
    assert "empty" in err.reason
    err, _ = _refused(get(name), [1, 2])
    assert "must be bytes, got list" in err.reason


@pytest.mark.parametrize("name", ["cbor", "avro"])
def test_trailing_bytes_are_refused(name):
    err, _ = _refused(get(name), _order_bytes(name) + b"\x00")
    assert "trailing" in err.reason


def test_invalid_utf8_and_huge_integer_literals_are_decode_errors():
    for name in ("json", "orjson", "yaml"):
        _refused(get(name), b'"\xc3\x28"')
    _refused(get("json"), b"1" * 5000)     # Python refuses int(str) beyond 4300 digits


# -- size limits: checked before the library sees the bytes -----------------------------------
@pytest.mark.parametrize("name", list(CODECS))
def test_payload_over_max_bytes_never_reaches_the_library(name, monkeypatch):
    codec = get(name)
    calls = []
    monkeypatch.setattr(codec, "_decode", lambda data: calls.append(data))
    data = _order_bytes(name)
    err, _ = _refused(codec, data, max_bytes=len(data) - 1)
    assert "max_bytes" in err.reason and calls == []
    codec.decode(data, max_bytes=len(data))
    assert len(calls) == 1


def test_limits_object_sets_the_default_size_limit():
    small = JsonCodec(limits=Limits(max_bytes=10))
    assert small.decode(b"[1,2,3]") == [1, 2, 3]
    err, _ = _refused(small, b"[" + b"1," * 10 + b"1]")
    assert "max_bytes=10" in err.reason
    assert small.decode(b"[" + b"1," * 10 + b"1]", max_bytes=100) == [1] * 11


# -- headers that claim more than they carry ---------------------------------------------------
@pytest.mark.parametrize("payload", [
    b"\xdd\x3b\x9a\xca\x00",           # array32 of 10^9 elements
    b"\xdf\x3b\x9a\xca\x00",           # map32 of 10^9 pairs
    b"\xdb\x3b\x9a\xca\x00ab",         # str32 of 10^9 bytes
    b"\xc6\x3b\x9a\xca\x00ab",         # bin32 of 10^9 bytes
], ids=["array", "map", "str", "bin"])
def test_msgpack_header_claiming_a_billion_is_refused_without_allocating(payload):
    err, peak = _refused(get("msgpack"), payload)
    assert peak < 2 * MB


@pytest.mark.parametrize("payload", [
    b"\x5b\x00\x00\x01\x00\x00\x00\x00\x00ab",     # byte string of 2^40 bytes
    b"\x7b\x00\x00\x01\x00\x00\x00\x00\x00ab",     # text string of 2^40 bytes
    b"\x9b\x00\x00\x01\x00\x00\x00\x00\x00\x01",   # array of 2^40 items
    b"\xbb\x00\x00\x01\x00\x00\x00\x00\x00\x01",   # map of 2^40 pairs
], ids=["bytes", "text", "array", "map"])
def test_cbor_header_claiming_a_terabyte_is_refused_without_allocating(payload):
    _, peak = _refused(get("cbor"), payload)
    assert peak < 2 * MB


def _zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if not n:
            return bytes(out + bytes([byte]))
        out.append(byte | 0x80)


@pytest.mark.parametrize("payload", [
    b"\x00" * 4 + _zigzag(10**9) + b"\x00",                 # items: a block of 10^9 line items
    b"\x00" * 8 + _zigzag(10**9) + b"ab",                   # tags: a map of 10^9 entries
    _zigzag(10**12) + b"ab",                                # id: a string of 10^12 bytes
], ids=["array", "map", "string"])
def test_avro_counts_claiming_a_billion_are_refused_without_allocating(payload):
    _, peak = _refused(get("avro"), payload)
    assert peak < 2 * MB


# -- nesting -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, payload", [
    ("json", b"[" * 100_000),
    ("orjson", b"[" * 100_000),
    ("yaml", b"[" * 100_000),
    ("msgpack", b"\x91" * 100_000),
    ("cbor", b"\x81" * 100_000),
])
def test_100k_deep_nesting_is_a_decode_error(name, payload):
    err, _ = _refused(get(name), payload)
    if name == "yaml":   # stopped in the scanner, before its cost grows with depth squared
        assert "max_depth=500" in err.reason


def test_msgpack_nesting_error_is_a_sentence_not_an_empty_stackerror():
    err, _ = _refused(get("msgpack"), b"\x91" * 100_000 + b"\xc0")
    assert str(err) == ("cannot decode msgpack: the document is nested too deeply "
                        "(MessagePack stops at 1024 levels)")
    assert type(err.__cause__).__name__ == "StackError"


def test_a_library_error_without_text_is_named_not_left_blank():
    from labkit.codecs.base import describe

    class Quiet(Exception):
        pass

    assert describe(Quiet()) == "Quiet (no message)"
    assert describe(ValueError("a\n  b\n")) == "ValueError: a b"

    class Mute(JsonCodec):
        def _decode(self, data):
            raise Quiet()

    err, _ = _refused(Mute(), b"{}")
    assert str(err) == "cannot decode json: Quiet (no message)"


@pytest.mark.parametrize("payload, words", [
    (b"a: !!python/object:os.system x\n", "ConstructorError: could not determine a constructor "
                                          "for the tag 'tag:yaml.org,2002:python/object:os."
                                          "system' at line 1, column 4"),
    (b"a: *nope\n", "ComposerError: found undefined alias 'nope' at line 1, column 4"),
    (b"a: [1, 2\n", "ParserError: while parsing a flow sequence (line 1, column 4): expected "
                    "',' or ']', but got '<stream end>' at line 2, column 1"),
    (b"a: 1\n---\nb: 2\n", "ComposerError: expected a single document in the stream (line 1, "
                          "column 1): but found another document at line 2, column 1"),
])
def test_yaml_errors_are_one_line_with_the_position(payload, words):
    err, _ = _refused(get("yaml"), payload)
    assert err.reason == words and "\n" not in str(err) and "^" not in str(err)


@pytest.mark.parametrize("payload, words", [
    (b"\x02", "it needs more bytes than the 1 given (Expected 1 bytes, read 0)"),
    (b"\x02\x02ab\x00", "it needs more bytes than the 5 given (end of data)"),   # was "()"
    (b"\x7f" * 30, "a length field is negative (Expected -64 bytes, read 29)"),
    (b"\x04\xff\xfe", "UnicodeDecodeError: "),                    # the id is not UTF-8
])
def test_avro_errors_say_truncated_or_not_avro(payload, words):
    err, _ = _refused(get("avro"), payload)
    assert err.reason.startswith("truncated or not Avro for this schema: " + words)


@pytest.mark.parametrize("name", ["json", "orjson"])
def test_a_10000_digit_integer_is_refused_without_advice_to_lift_the_limit(name):
    err, _ = _refused(get(name), b"1" * 10_000)
    assert "set_int_max_str_digits" not in str(err)
    if name == "json":
        assert err.reason == ("an integer with more than 4300 digits (a denial-of-service "
                              "guard); refused")


def test_cbor_and_yaml_depth_follow_the_limits():
    deep = b"\x81" * 30 + b"\x01"
    assert CborCodec().decode(deep) is not None
    err, _ = _refused(CborCodec(limits=Limits(max_depth=20)), deep)
    assert "depth" in err.reason
    doc = b"[" * 30 + b"]" * 30
    assert YamlCodec().decode(doc) is not None
    err, _ = _refused(YamlCodec(limits=Limits(max_depth=20)), doc)
    assert "max_depth=20" in err.reason
    block = b"".join(b"  " * i + b"k:\n" for i in range(30)) + b"  " * 30 + b"k: 1\n"
    assert YamlCodec().decode(block)["k"]["k"] is not None
    err, _ = _refused(YamlCodec(limits=Limits(max_depth=20)), block)
    assert "max_depth=20" in err.reason


# -- YAML: aliases and tags --------------------------------------------------------------------
BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_yaml_billion_laughs_is_refused():
    err, peak = _refused(get("yaml"), BILLION_LAUGHS)
    assert "max_nodes" in err.reason and peak < 4 * MB


def test_yaml_aliases_within_the_budget_still_work():
    doc = b"base: &b {x: 1}\nuse: [*b, *b]\n"
    assert get("yaml").decode(doc) == {"base": {"x": 1}, "use": [{"x": 1}, {"x": 1}]}
    # 13 values once expanded: root map, 2 keys, {x: 1} (3), the list (1 + 3 + 3).
    err, _ = _refused(YamlCodec(limits=Limits(max_nodes=12)), doc)
    assert "max_nodes=12" in err.reason
    assert YamlCodec(limits=Limits(max_nodes=13)).decode(doc)["use"][1] == {"x": 1}


def test_yaml_recursive_alias_is_bounded():
    value = get("yaml").decode(b"&a [*a, 1]")
    assert value[0] is value and value[1] == 1


PWNED = []


def pwn():
    PWNED.append("ran")


@pytest.mark.parametrize("payload", [
    f"!!python/object/apply:{__name__}.pwn []".encode(),
    b"!!python/object/apply:os.system ['true']",
    b"!!python/name:builtins.eval",
])
def test_yaml_python_tags_are_refused_and_run_nothing(payload):
    err, _ = _refused(get("yaml"), payload)
    assert "python" in err.reason and PWNED == []
