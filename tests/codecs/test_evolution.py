"""labkit.codecs.evolution (chapter 04): compatibility verdicts come from running the cases."""
import subprocess
import sys

import pytest

from labkit.codecs import evolution as ev
from labkit.codecs.evolution import NEW_TO_OLD, OLD_TO_NEW
from labkit.codecs.versioning import VersionedSerializer

EXPECTED = {
    "versioned JSON": ("ok", "fails: NoMigrationPath"),
    "versioned JSON (new writer downgrades)": ("ok", "ok"),
    "protobuf": ("ok", "ok"),
    "protobuf (field number changed)": ("fails: silent misread", "fails: silent misread"),
    "avro": ("ok", "ok"),
    "avro (added field without default)": ("fails: SchemaResolutionError", "ok"),
    "avro (removed field without default)": ("ok", "fails: SchemaResolutionError"),
}


@pytest.fixture(scope="module")
def protos():
    return ev.proto_versions()


def cells(matrix):
    return {fmt: tuple(c[:c.index(":")] if c.startswith("fails") else c
                       for c in (row[OLD_TO_NEW], row[NEW_TO_OLD])) for fmt, row in matrix.items()}


def test_default_matrix(protos):
    m = ev.compatibility_matrix()
    assert list(m) == list(EXPECTED)
    for fmt, (a, b) in EXPECTED.items():
        assert m[fmt][OLD_TO_NEW].startswith(a), (fmt, m[fmt])
        assert m[fmt][NEW_TO_OLD].startswith(b), (fmt, m[fmt])
    assert "from version '2' to '1'" in m["versioned JSON"][NEW_TO_OLD]
    assert "quantity written 3, read 1999" in m["protobuf (field number changed)"][OLD_TO_NEW]
    assert "field currency" in m["avro (added field without default)"][OLD_TO_NEW]
    assert "field note" in m["avro (removed field without default)"][NEW_TO_OLD]


def test_mutating_a_schema_flips_its_cells(protos):
    base = cells(ev.compatibility_matrix())
    no_default = ev.avro_schema(2)
    next(f for f in no_default["fields"] if f["name"] == "currency").pop("default")
    m = cells(ev.compatibility_matrix(avro_new=no_default))
    assert m["avro"] == ("fails", "ok") and base["avro"] == ("ok", "ok")
    old_no_default = ev.avro_schema(1)
    next(f for f in old_no_default["fields"] if f["name"] == "note").pop("default")
    assert cells(ev.compatibility_matrix(avro_old=old_no_default))["avro"] == ("ok", "fails")
    swapped = cells(ev.compatibility_matrix(proto_new=protos[1].OrderRenumbered))
    assert swapped["protobuf"] == ("fails", "fails") and base["protobuf"] == ("ok", "ok")
    up_only = VersionedSerializer("2")
    up_only.register("1", "2", ev._up)
    m = cells(ev.compatibility_matrix(json_new=up_only))
    assert m["versioned JSON (new writer downgrades)"] == ("ok", "fails")
    m = cells(ev.compatibility_matrix(json_new=VersionedSerializer("2")))
    assert m["versioned JSON"] == ("fails", "fails")
    changed = {fmt: row for fmt, row in m.items() if row != base[fmt]}
    assert set(changed) == {"versioned JSON", "versioned JSON (new writer downgrades)"}


def test_protobuf_old_writer_new_reader(protos):
    v1, v2 = protos
    r = ev.proto_case(v1.Order, v2.Order)
    assert r["verdict"] == "ok"
    assert r["read"]["currency"] == ""                          # new field: the default
    assert r["read"]["customer_name"] == ev.SAMPLE["customer"]  # renamed, same number
    assert r["unknown_fields"] == [{"number": 5, "wire_type": 2, "data": b"gift wrap"}]
    assert r["round_trip_same_bytes"] and r["round_trip_kept"]


def test_protobuf_new_writer_old_reader_keeps_the_unknown_field(protos):
    v1, v2 = protos
    r = ev.proto_case(v2.Order, v1.Order)
    assert r["verdict"] == "ok" and r["read"]["note"] == ""
    assert r["unknown_fields"] == [{"number": 6, "wire_type": 2, "data": b"CHF"}]
    old = v1.Order.FromString(v2.Order(currency="CHF", quantity=3).SerializeToString())
    assert "currency" not in str(old)                            # the old reader cannot see it
    assert v2.Order.FromString(old.SerializeToString()).currency == "CHF"   # but passes it on


def test_protobuf_changed_number_is_a_silent_misread(protos):
    v1, v2 = protos
    r = ev.proto_case(v1.Order, v2.OrderRenumbered)
    assert r["read"]["quantity"] == 1999 and r["read"]["price_cents"] == 3
    assert r["unknown_fields"] == []                             # nothing looked wrong
    assert r["verdict"].startswith("fails: silent misread")


def test_protobuf_versions_are_distinct_modules(protos):
    v1, v2 = protos
    assert v1.pb2 is not v2.pb2
    assert v1.Order.DESCRIPTOR.full_name == "labkit.evolution.v1.Order"
    assert v2.Order.DESCRIPTOR.full_name == "labkit.evolution.v2.Order"
    assert 5 not in [f.number for f in v2.Order.DESCRIPTOR.fields]


def test_avro_resolution():
    old, new = ev.avro_schema(1), ev.avro_schema(2)
    r = ev.avro_case(old, new)
    assert r["verdict"] == "ok" and r["read"]["currency"] == "EUR"
    assert r["filled_by_default"] == ["currency"] and "note" not in r["read"]
    r = ev.avro_case(new, old)
    assert r["verdict"] == "ok" and r["read"]["note"] == "" and "currency" not in r["read"]


def test_versioned_json_cases():
    old, new = ev.json_versions()
    v1 = {"id": "o-1", "customer": "Ada", "quantity": 2, "price_cents": 5, "note": "n"}
    r = ev.json_case(old, new, v1)
    assert r["verdict"] == "ok"
    assert r["read"] == {"id": "o-1", "customer_name": "Ada", "quantity": 2, "price_cents": 5,
                         "currency": "EUR"}
    v2 = r["read"]
    r = ev.json_case(new, old, v2, downgrade=True)
    assert r["verdict"] == "ok" and r["read"]["customer"] == "Ada"
    assert '"version": "1"' in r["text"]


def test_misreads_compare_by_meaning():
    assert ev._misreads({"customer": "A", "q": 1}, {"customer_name": "A", "q": 1},
                        ev._renames(None)) == []
    assert ev._misreads({"customer": "A"}, {"customer_name": "B"}, ev._renames(None)) == \
        ["customer written 'A', read 'B'"]


def test_matrix_table():
    m = {"fmt": {OLD_TO_NEW: "ok", NEW_TO_OLD: "fails: " + "x" * 100}}
    lines = ev.matrix_table(m, width=20).splitlines()
    assert lines[0].split() == ["format", *OLD_TO_NEW.split(), *NEW_TO_OLD.split()]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].endswith("fails: xxxxxxxxxxxx…") and len(lines) == 3


@pytest.mark.parametrize("call, match", [
    (lambda: ev.matrix_table({"a": 1}), "matrix must be"),
    (lambda: ev.matrix_table({}, width=3), "width must be"),
    (lambda: ev.avro_schema(3), "version must be"),
    (lambda: ev.avro_case({"type": "nope"}, ev.avro_schema(1)), "writer_schema is not a valid"),
    (lambda: ev.avro_case(ev.avro_schema(1), "x"), "reader_schema must be"),
    (lambda: ev.proto_case(dict, dict), "writer_cls must be a generated protobuf"),
    (lambda: ev.json_case(None, VersionedSerializer("1"), {}), "writer must be"),
    (lambda: ev.json_case(VersionedSerializer("1"), VersionedSerializer("1"), {}, renamed=1),
     "renamed must be"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_importing_stays_light():
    code = ("import sys, labkit.codecs.evolution, labkit.codecs.versioning; print(sorted(m for m "
            "in sys.modules if m.split('.')[0] in ('fastavro', 'google', 'grpc', 'grpc_tools')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
