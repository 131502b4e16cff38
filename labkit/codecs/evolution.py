"""Schema evolution, run (chapter 04): old and new readers and writers for three formats.

Every verdict here comes from running a case, never from a table typed in:

- Versioned JSON (`labkit.codecs.versioning.VersionedSerializer`): an old reader that knows
  only version "1", a new one at "2" with migrations both ways.
- Protobuf (data/evolution/order_v1.proto, order_v2.proto, compiled at runtime by
  `labkit.protocols.proto.load`; each has its own package so both load in one process): v2
  adds `currency`, removes `note` (number 5 `reserved`), renames `customer` to
  `customer_name` keeping number 2. An old reader keeps v2's field 6 as an unknown field and
  writes it back out; `OrderRenumbered` swaps two numbers and is misread without any error.
- Avro (data/evolution/order_v*.avsc, fastavro reader/writer schema resolution): an added
  field needs a default for an old writer -> new reader; a removed one needs a default in the
  old reader for new writer -> old reader.

`compatibility_matrix()` -> {format: {OLD_TO_NEW: "ok" | "fails: <why>", NEW_TO_OLD: ...}};
`matrix_table` prints it. Reads its schemas from data/; fastavro and protobuf are imported
inside the functions that need them, so `import labkit.codecs` stays light.
"""
from __future__ import annotations

import copy
import io
import json
import pathlib
from typing import Any

from labkit._core.validate import integer
from labkit.codecs.versioning import NoMigrationPath, VersionedSerializer

__all__ = ["OLD_TO_NEW", "NEW_TO_OLD", "SAMPLE", "RENAMED", "evolution_dir", "proto_versions",
           "avro_schema", "json_versions", "unknown_fields", "proto_case", "avro_case",
           "json_case", "compatibility_matrix", "matrix_table"]

OLD_TO_NEW = "old writer -> new reader"
NEW_TO_OLD = "new writer -> old reader"
#: The value each writer puts in a field of that name (distinct, so a misread shows).
SAMPLE = {"id": "o-17", "customer": "Zoë Ōkubo", "customer_name": "Zoë Ōkubo", "quantity": 3,
          "price_cents": 1999, "note": "gift wrap", "currency": "CHF"}
#: Fields that mean the same thing under another name (v1 name -> v2 name).
RENAMED = {"customer": "customer_name"}


def evolution_dir() -> pathlib.Path:
    """data/evolution/ in the repository (the .proto and .avsc files of this chapter)."""
    from labkit.protocols import proto
    return proto.data_dir() / "evolution"


def proto_versions():
    """(v1, v2): the namespaces `proto.load` makes of order_v1.proto and order_v2.proto."""
    from labkit.protocols import proto
    return (proto.load("order_v1.proto", data_dir=evolution_dir()),
            proto.load("order_v2.proto", data_dir=evolution_dir()))


def avro_schema(version: int) -> dict:
    """The Avro schema data/evolution/order_v<version>.avsc (1 or 2) as a dict (a fresh copy)."""
    integer("version", version, 1, 2)
    return json.loads((evolution_dir() / f"order_v{version}.avsc").read_text(encoding="utf-8"))


def _up(data: dict) -> dict:
    """v1 -> v2: customer renamed, note dropped, currency added (default EUR)."""
    data["customer_name"] = data.pop("customer")
    data.pop("note", None)
    data.setdefault("currency", "EUR")
    return data


def _down(data: dict) -> dict:
    """v2 -> v1: the reverse (currency is lost, note comes back empty)."""
    data["customer"] = data.pop("customer_name")
    data.pop("currency", None)
    data.setdefault("note", "")
    return data


def json_versions() -> tuple[VersionedSerializer, VersionedSerializer]:
    """(old, new): an old reader/writer that knows only "1"; a new one at "2" with 1<->2."""
    old, new = VersionedSerializer("1"), VersionedSerializer("2")
    new.register("1", "2", _up)
    new.register("2", "1", _down)
    return old, new


def _renames(renamed: dict | None) -> dict:
    renamed = RENAMED if renamed is None else renamed
    if not isinstance(renamed, dict):
        raise ValueError(f"renamed must be a dict old name -> new name, got {renamed!r}")
    return {**renamed, **{v: k for k, v in renamed.items()}}


def _misreads(written: dict, read: dict, renamed: dict) -> list[str]:
    """Fields the reader has (by meaning) whose value differs from what was written."""
    out = []
    for name, value in written.items():
        other = name if name in read else renamed.get(name)
        if other in read and read[other] != value:
            out.append(f"{name} written {value!r}, read {read[other]!r}")
    return out


def _verdict(misreads: list[str], extra: str | None = None) -> str:
    if misreads:
        return "fails: silent misread, " + "; ".join(misreads)
    return f"fails: {extra}" if extra else "ok"


# --- Protobuf ---------------------------------------------------------------------------------

def unknown_fields(message) -> list[dict]:
    """The fields a parsed message did not know: number, wire type and raw bytes."""
    from google.protobuf.unknown_fields import UnknownFieldSet
    return [{"number": f.field_number, "wire_type": f.wire_type, "data": f.data}
            for f in UnknownFieldSet(message)]


def proto_case(writer_cls, reader_cls, *, renamed: dict | None = None) -> dict:
    """Write SAMPLE with `writer_cls`, parse with `reader_cls`, write that back, re-read it.

    Returns {"verdict", "written", "read", "unknown_fields", "round_trip_same_bytes",
    "round_trip_kept"}: the verdict fails on a silent misread (compared by meaning, see
    RENAMED) or when re-serializing lost what the reader did not know.
    """
    from google.protobuf.message import DecodeError
    renamed = _renames(renamed)
    for name, cls in (("writer_cls", writer_cls), ("reader_cls", reader_cls)):
        if not hasattr(cls, "DESCRIPTOR") or not hasattr(cls, "FromString"):
            raise ValueError(f"{name} must be a generated protobuf message class, got {cls!r}")
    written = {f.name: SAMPLE[f.name] for f in writer_cls.DESCRIPTOR.fields if f.name in SAMPLE}
    data = writer_cls(**written).SerializeToString()
    try:
        msg = reader_cls.FromString(data)
    except DecodeError as e:
        return {"verdict": f"fails: DecodeError: {e}", "written": written, "read": None,
                "unknown_fields": [], "round_trip_same_bytes": False, "round_trip_kept": False}
    read = {f.name: getattr(msg, f.name) for f in reader_cls.DESCRIPTOR.fields}
    again = msg.SerializeToString()
    back = writer_cls.FromString(again)
    kept = all(getattr(back, k) == v for k, v in written.items())
    lost = None if kept else "re-serializing through the reader lost fields it did not know"
    return {"verdict": _verdict(_misreads(written, read, renamed), lost), "written": written,
            "read": read, "unknown_fields": unknown_fields(msg),
            "round_trip_same_bytes": again == data, "round_trip_kept": kept}


# --- Avro -------------------------------------------------------------------------------------

def _parse_avro(name: str, schema):
    import fastavro
    if not isinstance(schema, dict):
        raise ValueError(f"{name} must be an Avro record schema as a dict, got {schema!r}")
    try:
        return fastavro.parse_schema(copy.deepcopy(schema))
    except Exception as e:   # fastavro's SchemaParseException and friends
        raise ValueError(f"{name} is not a valid Avro schema: {e}") from None


def avro_case(writer_schema: dict, reader_schema: dict, *, renamed: dict | None = None) -> dict:
    """Write SAMPLE with `writer_schema`, read it with `reader_schema` (schema resolution).

    Returns {"verdict", "written", "read", "filled_by_default"}; the verdict carries
    fastavro's SchemaResolutionError when resolution refuses.
    """
    import fastavro
    renamed = _renames(renamed)
    w, r = _parse_avro("writer_schema", writer_schema), _parse_avro("reader_schema", reader_schema)
    written = {f["name"]: SAMPLE.get(f["name"], f.get("default")) for f in writer_schema["fields"]}
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(buf, w, written)
        read = fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), w, r)
    except Exception as e:   # SchemaResolutionError, or the writer refusing the sample
        return {"verdict": f"fails: {type(e).__name__}: {e}", "written": written, "read": None,
                "filled_by_default": []}
    filled = [f["name"] for f in reader_schema["fields"] if f["name"] not in written]
    return {"verdict": _verdict(_misreads(written, read, renamed)), "written": written,
            "read": read, "filled_by_default": filled}


def _without_defaults(schema: dict, keep: dict) -> dict:
    """`schema` with the default removed from every field that `keep` does not have."""
    names = {f["name"] for f in keep["fields"]}
    out = copy.deepcopy(schema)
    for f in out["fields"]:
        if f["name"] not in names:
            f.pop("default", None)
    return out


# --- Versioned JSON ---------------------------------------------------------------------------

def json_case(writer: VersionedSerializer, reader: VersionedSerializer, obj: dict, *,
              downgrade: bool = False, renamed: dict | None = None) -> dict:
    """`writer` serializes `obj` (shaped as its current version) and `reader` deserializes it.

    With `downgrade` the writer first migrates `obj` to the reader's version and labels it so
    (what a new service does for an old client). Returns {"verdict", "text", "read"}.
    """
    renamed = _renames(renamed)
    for name, s in (("writer", writer), ("reader", reader)):
        if not isinstance(s, VersionedSerializer):
            raise ValueError(f"{name} must be a VersionedSerializer, got {s!r}")
    try:
        if downgrade:
            text = writer.serialize(writer.migrate(obj, writer.current_version,
                                                   reader.current_version), reader.current_version)
        else:
            text = writer.serialize(obj)
        read = reader.deserialize(text)
    except NoMigrationPath as e:
        return {"verdict": f"fails: NoMigrationPath: {e}", "text": None, "read": None}
    return {"verdict": _verdict(_misreads(obj, read, renamed)), "text": text, "read": read}


# --- the matrix -------------------------------------------------------------------------------

def compatibility_matrix(*, json_old: VersionedSerializer | None = None,
                         json_new: VersionedSerializer | None = None, proto_old=None,
                         proto_new=None, avro_old: dict | None = None,
                         avro_new: dict | None = None) -> dict:
    """Run every case and return {format: {OLD_TO_NEW: verdict, NEW_TO_OLD: verdict}}.

    Each argument replaces one side of one format (default: the files in data/evolution and
    `json_versions()`), so changing a schema changes the cells it affects. The rows marked in
    parentheses are the same format with one rule broken, derived from those schemas.
    """
    jo, jn = json_versions()
    jo, jn = json_old or jo, json_new or jn
    if proto_old is None or proto_new is None:
        v1, v2 = proto_versions()
        proto_old, proto_new = proto_old or v1.Order, proto_new or v2.Order
    renumbered = proto_versions()[1].OrderRenumbered
    avro_old = avro_schema(1) if avro_old is None else avro_old
    avro_new = avro_schema(2) if avro_new is None else avro_new
    v1_obj = {k: SAMPLE[k] for k in ("id", "customer", "quantity", "price_cents", "note")}
    v2_obj = {k: SAMPLE[k] for k in ("id", "customer_name", "quantity", "price_cents", "currency")}
    pairs = {
        "versioned JSON": (json_case(jo, jn, v1_obj), json_case(jn, jo, v2_obj)),
        "versioned JSON (new writer downgrades)":
            (json_case(jo, jn, v1_obj), json_case(jn, jo, v2_obj, downgrade=True)),
        "protobuf": (proto_case(proto_old, proto_new), proto_case(proto_new, proto_old)),
        "protobuf (field number changed)":
            (proto_case(proto_old, renumbered), proto_case(renumbered, proto_old)),
        "avro": (avro_case(avro_old, avro_new), avro_case(avro_new, avro_old)),
        "avro (added field without default)":
            (avro_case(avro_old, _without_defaults(avro_new, avro_old)),
             avro_case(_without_defaults(avro_new, avro_old), avro_old)),
        "avro (removed field without default)":
            (avro_case(_without_defaults(avro_old, avro_new), avro_new),
             avro_case(avro_new, _without_defaults(avro_old, avro_new))),
    }
    return {fmt: {OLD_TO_NEW: a["verdict"], NEW_TO_OLD: b["verdict"]}
            for fmt, (a, b) in pairs.items()}


def matrix_table(matrix: dict, *, width: int = 60) -> str:
    """`matrix` as a fixed-width text table; each cell cut to `width` characters."""
    integer("width", width, 8, 1000)
    if not isinstance(matrix, dict) or not all(isinstance(v, dict) for v in matrix.values()):
        raise ValueError(f"matrix must be what compatibility_matrix() returns, got {matrix!r}")
    cols = [OLD_TO_NEW, NEW_TO_OLD]
    cut = lambda s: s if len(s) <= width else s[:width - 1] + "…"   # noqa: E731
    rows = [["format", *cols]] + [[fmt, *(cut(str(cells.get(c, ""))) for c in cols)]
                                  for fmt, cells in matrix.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
