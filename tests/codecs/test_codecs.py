"""labkit.codecs (chapter 04): the registry, round trips per codec, EncodeError, light imports."""
import datetime as dt
import decimal
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from labkit.codecs.base import Codec, DecodeError, EncodeError, Limits
from labkit.codecs.formats import (CODECS, AvroCodec, JsonCodec, MsgpackCodec, ProtobufCodec,
                                   get, names, text_default)

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)
UTC = dt.timezone.utc

# -- strategies ---------------------------------------------------------------------------
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
keys = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
int64 = st.integers(-2**63, 2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
json_leaf = st.none() | st.booleans() | int64 | floats | text
aware = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1),
                     timezones=st.just(UTC))


def tree(leaf):
    return st.recursive(leaf, lambda kids: st.lists(kids, max_size=4) |
                        st.dictionaries(keys, kids, max_size=4), max_leaves=12)


money = st.decimals(min_value=0, max_value=10**9, places=2).map(lambda d: d.quantize(
    decimal.Decimal("0.01")))
item = st.fixed_dictionaries({"sku": text, "name": text, "quantity": st.integers(0, 2**31 - 1),
                              "unit_price": money})
attachment = st.fixed_dictionaries({"filename": text, "content_type": text,
                                    "data": st.binary(max_size=40)})
order = st.fixed_dictionaries({
    "id": text, "customer_id": int64, "created_at": aware, "currency": text,
    "items": st.lists(item, max_size=3), "total": money, "note": text,
    "attachments": st.lists(attachment, max_size=2),
    "tags": st.dictionaries(keys, text, max_size=3)})


# -- registry -----------------------------------------------------------------------------
def test_registry_has_the_seven_formats_and_no_pickle():
    assert names() == ["json", "orjson", "msgpack", "protobuf", "yaml", "cbor", "avro"]
    for name, codec in CODECS.items():
        assert isinstance(codec, Codec) and codec.name == name and get(name) is codec
        assert "/" in codec.content_type
    assert "pickle" not in CODECS
    with pytest.raises(TypeError):
        CODECS["pickle"] = object()         # read-only


@pytest.mark.parametrize("bad", ["pickle", "JSON", 1, None])
def test_get_unknown_names_the_argument_and_choices(bad):
    with pytest.raises(ValueError, match=r"name must be one of \['json'"):
        get(bad)


def test_codecs_mapping_missing_key_lists_the_names_and_suggests_get():
    from labkit.codecs.formats import UnknownCodec
    with pytest.raises(KeyError) as e:
        CODECS["JSON"]
    assert isinstance(e.value, UnknownCodec) and e.value.known == names()
    assert str(e.value) == ("no codec named 'JSON' (did you mean 'json'?); registered (exact, "
                            "lower case): json, orjson, msgpack, protobuf, yaml, cbor, avro; "
                            "get(name) raises a ValueError instead")
    with pytest.raises(KeyError, match=r"no codec named \['x'\]; registered"):
        CODECS[["x"]]                       # unhashable: still the KeyError, not a TypeError
    assert "JSON" not in CODECS and ["x"] not in CODECS and CODECS.get("JSON") is None
    assert len(CODECS) == 7 and CODECS["json"] is get("json")


def test_cbor_encodes_every_bytes_like_as_bytes():
    codec = get("cbor")
    for value in (b"ab", bytearray(b"ab"), memoryview(b"ab")):
        assert codec.encode(value) == b"\x42ab"                 # a 2-byte byte string
    assert codec.decode(codec.encode({"k": [memoryview(b"\x00\xff")]})) == {"k": [b"\x00\xff"]}


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_cbor_refuses_a_decimal_it_could_only_write_as_a_float(value):
    with pytest.raises(EncodeError) as e:
        get("cbor").encode({"price": [decimal.Decimal(value)]})
    assert e.value.type_name == "Decimal" and "no CBOR decimal form" in str(e.value)
    assert get("cbor").decode(get("cbor").encode(decimal.Decimal("-1.25"))) == \
        decimal.Decimal("-1.25")


def test_content_types_differ_except_the_two_json_codecs():
    types = [c.content_type for c in CODECS.values()]
    assert get("json").content_type == get("orjson").content_type == "application/json"
    assert len(set(types)) == len(types) - 1
    assert get("msgpack").content_type == "application/msgpack"
    assert get("cbor").content_type == "application/cbor"


def test_importing_codecs_loads_no_serialization_library():
    code = ("import sys, labkit, labkit.codecs, labkit.codecs.base, labkit.codecs.formats, "
            "labkit.codecs.fixtures; heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('orjson', 'cbor2', 'fastavro', 'yaml', 'google', 'msgpack', 'grpc')); "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_bytes"):
        Limits(max_bytes=0)
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=1.5)
    with pytest.raises(ValueError, match="limits must be"):
        JsonCodec(limits={"max_bytes": 10})
    with pytest.raises(ValueError, match="max_bytes"):
        get("json").decode(b"1", max_bytes=-1)


# -- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["json", "orjson", "msgpack", "cbor"])
@SETTINGS
@given(value=tree(json_leaf))
def test_json_shaped_values_round_trip(name, value):
    codec = get(name)
    assert codec.decode(codec.encode(value)) == value


# PyYAML folds the line breaks U+0085, U+2028 and U+2029 in plain scalars into spaces (a
# fidelity finding the chapter reports); the round trip holds on the rest of unicode.
yaml_text = st.text(st.characters(blacklist_categories=("Cs", "Zl", "Zp"),
                                  blacklist_characters="\x85"), max_size=20)


@SETTINGS
@given(value=st.recursive(st.none() | st.booleans() | int64 | floats | yaml_text,
                          lambda kids: st.lists(kids, max_size=4) |
                          st.dictionaries(yaml_text, kids, max_size=4), max_leaves=12))
def test_yaml_round_trips_plain_data(value):
    codec = get("yaml")
    assert codec.decode(codec.encode(value)) == value


@SETTINGS
@given(value=tree(json_leaf | st.binary(max_size=20) | aware))
def test_msgpack_round_trips_bytes_and_aware_datetimes(value):
    codec = get("msgpack")
    assert codec.decode(codec.encode(value)) == value


@SETTINGS
@given(value=tree(json_leaf | st.binary(max_size=20) | aware | money |
                  st.integers(2**64, 2**200)))
def test_cbor_round_trips_bytes_datetimes_decimals_and_bigints(value):
    codec = get("cbor")
    assert codec.decode(codec.encode(value)) == value


@SETTINGS
@given(value=order)
def test_avro_round_trips_an_order_with_its_types(value):
    codec = get("avro")
    assert codec.decode(codec.encode(value)) == value


@SETTINGS
@given(value=order)
def test_protobuf_round_trips_an_order_in_its_json_form(value):
    back = get("protobuf").decode(get("protobuf").encode(value))
    assert back["customer_id"] == str(value["customer_id"])        # int64 -> string
    assert dt.datetime.fromisoformat(back["created_at"].replace("Z", "+00:00")) == \
        value["created_at"]
    assert [decimal.Decimal(i["unit_price"]) for i in back["items"]] == \
        [i["unit_price"] for i in value["items"]]
    assert [i["quantity"] for i in back["items"]] == [i["quantity"] for i in value["items"]]
    assert back["tags"] == value["tags"] and back["note"] == value["note"]
    import base64
    assert [base64.b64decode(a["data"]) for a in back["attachments"]] == \
        [a["data"] for a in value["attachments"]]


def test_protobuf_takes_a_message_and_decode_message_gives_one():
    codec = ProtobufCodec("Record")
    msg = codec.message_class(id=7, sku="A", qty=2, price="1.50")
    data = codec.encode(msg)
    assert codec.decode_message(data) == msg
    assert codec.decode(data)["sku"] == "A"
    with pytest.raises(ValueError, match="message must be"):
        ProtobufCodec("no such")


# -- what each format changes or refuses -----------------------------------------------------
def test_text_default_writes_datetime_decimal_bytes_as_strings():
    value = {"at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "price": decimal.Decimal("0.10"),
             "blob": b"\x00\xff"}
    back = get("json").decode(get("json").encode(value))
    assert back == {"at": "2024-01-02T03:04:05+00:00", "price": "0.10", "blob": "AP8="}
    assert text_default(decimal.Decimal("1E+2")) == "1E+2"


def test_json_set_is_an_encode_error_naming_format_and_type():
    with pytest.raises(EncodeError) as info:
        get("json").encode({"tags": {"a", "b"}})
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.format, err.type_name) == ("json", "set")
    assert "json" in str(err) and "set" in str(err)


def test_json_without_default_refuses_datetime():
    with pytest.raises(EncodeError) as info:
        JsonCodec(default=None).encode([dt.datetime(2024, 1, 1)])
    assert info.value.type_name == "datetime"


def test_custom_default_and_object_hook_round_trip_a_decimal():
    def default(v):
        if isinstance(v, decimal.Decimal):
            return {"$decimal": str(v)}
        raise TypeError("not mine")

    def hook(d):
        return decimal.Decimal(d["$decimal"]) if set(d) == {"$decimal"} else d
    codec = JsonCodec(default=default, object_hook=hook)
    assert codec.decode(codec.encode([decimal.Decimal("0.1")])) == [decimal.Decimal("0.1")]
    with pytest.raises(EncodeError, match="not mine"):
        codec.encode(b"x")


@pytest.mark.parametrize("name, value, type_name", [
    ("orjson", {1, 2}, "set"),
    ("msgpack", decimal.Decimal("1.5"), "Decimal"),
    ("msgpack", dt.datetime(2024, 1, 1), "datetime"),           # naive
    ("yaml", decimal.Decimal("1.5"), "Decimal"),
    ("cbor", object(), "object"),
    ("protobuf", [1, 2], "list"),
])
def test_unsupported_values_are_encode_errors_with_the_type(name, value, type_name):
    with pytest.raises(EncodeError) as info:
        get(name).encode(value)
    assert info.value.format == name and info.value.type_name == type_name


@pytest.mark.parametrize("name, value, words", [
    ("orjson", [2**64], "64-bit"),
    ("protobuf", {"no_such_field": 1}, "no_such_field"),
    ("avro", {"id": "x"}, "customer_id"),
])
def test_library_refusals_become_encode_errors(name, value, words):
    with pytest.raises(EncodeError, match=words) as info:
        get(name).encode(value)
    assert info.value.format == name


def test_avro_refuses_fields_the_schema_does_not_name():
    from labkit.codecs import fixtures
    value = fixtures.load("order")
    value["extra"] = 1
    with pytest.raises(EncodeError, match="extra"):
        get("avro").encode(value)


def test_avro_reader_schema_resolves_an_added_field_with_its_default():
    import json
    from labkit.codecs.formats_binary import avro_dir
    schema = json.loads((avro_dir() / "order.avsc").read_text())
    newer = dict(schema, fields=schema["fields"] + [
        {"name": "coupon", "type": "string", "default": "none"}])
    from labkit.codecs import fixtures
    data = get("avro").encode(fixtures.load("order"))
    assert AvroCodec(schema, reader_schema=newer).decode(data)["coupon"] == "none"
    with pytest.raises(ValueError, match="reader_schema"):
        AvroCodec(reader_schema=123)
    with pytest.raises(ValueError, match="no such file"):
        AvroCodec("nope.avsc")


def test_msgpack_gives_datetimes_back_in_utc():
    east = dt.timezone(dt.timedelta(hours=8))
    when = dt.datetime(2024, 1, 1, 8, tzinfo=east)
    back = MsgpackCodec().decode(MsgpackCodec().encode(when))
    assert back == when and back.tzinfo == UTC


def test_decode_takes_bytes_like_and_refuses_text():
    assert get("json").decode(bytearray(b"[1]")) == [1]
    assert get("json").decode(memoryview(b"[1]")) == [1]
    with pytest.raises(DecodeError, match="must be bytes, got str"):
        get("json").decode("[1]")
