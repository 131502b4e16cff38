"""The binary codecs of chapter 04: MessagePack, CBOR, Protobuf and Avro.

Thin wrappers over msgpack, cbor2, protobuf (``data/order.proto`` compiled at runtime by
labkit.protocols.proto, as in chapter 03) and fastavro (``data/avro/order.avsc``). Each library
is imported on first use. What each does to hostile bytes:

- MessagePack: every length limit is set from the payload's size, so a 5-byte header that
  claims 10^9 elements is refused before anything is allocated.
- CBOR: cbor2 reads long strings in chunks (a header claiming 2^40 bytes fails at the end of
  the data) and stops at ``limits.max_depth``; trailing bytes are refused.
- Protobuf / Avro: the schema says what comes next; truncated or garbage bytes fail to parse;
  Avro's trailing bytes are refused.
"""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import io
import json
import os
import pathlib

from labkit.codecs.base import Codec, DecodeError, EncodeError, Limits, _Unsupported, describe

__all__ = ["MsgpackCodec", "CborCodec", "ProtobufCodec", "AvroCodec", "avro_dir"]


def _refuse(value):
    raise _Unsupported(value)


class MsgpackCodec(Codec):
    """MessagePack with bin/str kept apart and the timestamp extension (-1) for datetimes.

    Datetimes must be timezone-aware (they come back in UTC); Decimal, set and other types
    are refused unless you pass a ``default=`` hook. Map keys must be str or bytes on decode
    (msgpack's ``strict_map_key``: other keys invite hash-collision attacks).
    """

    name = "msgpack"
    content_type = "application/msgpack"
    aliases = ("application/x-msgpack", "application/vnd.msgpack")

    def __init__(self, *, default=None, limits: Limits | None = None):
        super().__init__(limits=limits)
        if default is not None and not callable(default):
            raise ValueError(f"default must be a function or None, got {default!r}")
        self._user_default = default

    def _default(self, value):
        if self._user_default is None:
            _refuse(value)
        try:
            return self._user_default(value)
        except TypeError as e:
            raise _Unsupported(value, str(e)) from None

    def _encode(self, obj) -> bytes:
        import msgpack
        try:
            return msgpack.packb(obj, use_bin_type=True, datetime=True, default=self._default)
        except ValueError as e:
            if "tzinfo=None" in str(e):
                raise EncodeError(self.name, "a naive datetime (no tzinfo): the timestamp "
                                             "extension needs an aware one, e.g. "
                                             "datetime.now(timezone.utc)", "datetime") from e
            raise

    def _decode(self, data: bytes):
        import msgpack
        n = len(data)   # no container or string can hold more than the payload has bytes
        try:
            return self._unpack(msgpack, data, n)
        except msgpack.StackError as e:      # raised with an empty message
            raise DecodeError(self.name, "the document is nested too deeply (MessagePack "
                                         "stops at 1024 levels)") from e

    @staticmethod
    def _unpack(msgpack, data: bytes, n: int):
        return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=True,
                               max_str_len=n, max_bin_len=n, max_array_len=n,
                               max_map_len=n // 2, max_ext_len=n)


def _cbor_bytes(encoder, value: memoryview) -> None:
    encoder.encode(bytes(value))


def _cbor_decimal(encoder, value: decimal.Decimal) -> None:
    if not value.is_finite():
        raise _Unsupported(value, f"Decimal({str(value)!r}) has no CBOR decimal form (tag 4 "
                                  f"holds finite values only); send None or a string instead")
    encoder.encode_decimal(value)


class CborCodec(Codec):
    """CBOR (RFC 8949) with cbor2: datetimes (aware only), Decimal, bytes, sets and big
    integers come back as themselves; nesting stops at ``limits.max_depth``.

    bytes, bytearray and memoryview all encode as a byte string (cbor2 alone would write a
    memoryview as an array of ints). A finite Decimal travels as a decimal fraction (tag 4);
    Decimal NaN and Infinity are refused with EncodeError: tag 4 cannot hold them and cbor2
    would silently write a float, so they would come back as float, not Decimal."""

    name = "cbor"
    content_type = "application/cbor"

    def _encode(self, obj) -> bytes:
        import cbor2
        fp = io.BytesIO()
        cbor2.CBOREncoder(fp, encoders={memoryview: _cbor_bytes, decimal.Decimal: _cbor_decimal},
                          default=lambda _encoder, value: _refuse(value)).encode(obj)
        return fp.getvalue()

    def _decode(self, data: bytes):
        import cbor2
        fp = io.BytesIO(data)
        value = cbor2.CBORDecoder(fp, max_depth=self.limits.max_depth).decode()
        if fp.tell() != len(data):
            raise DecodeError(self.name, f"{len(data) - fp.tell()} trailing bytes after the "
                                         f"first item")
        return value


def _proto_json(value, path="obj"):
    """Python values -> Protobuf's JSON form (RFC 3339 times, base64 bytes, decimal strings)."""
    if isinstance(value, dict):
        return {k: _proto_json(v, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_proto_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise EncodeError("protobuf", f"{path} is a naive datetime (no tzinfo): a "
                                          f"Timestamp is an instant, give it a timezone",
                              "datetime")
        return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


class ProtobufCodec(Codec):
    """One Protobuf message type (default ``Order`` from data/order.proto): a dict in, a dict out.

    Encode takes a dict (datetimes, Decimals and bytes are turned into Protobuf's JSON form
    first) or a message instance. Decode gives ``json_format.MessageToDict`` with the .proto's
    field names and every field present: int64 fields come back as *strings*, timestamps as
    RFC 3339 strings, bytes as base64 - Protobuf's JSON mapping, what other languages see.
    `decode_message` gives the message object itself (unknown fields kept).
    """

    name = "protobuf"
    content_type = "application/x-protobuf"
    aliases = ("application/protobuf", "application/vnd.google.protobuf")

    def __init__(self, message: str = "Order", *, proto_name: str = "order.proto",
                 limits: Limits | None = None):
        super().__init__(limits=limits)
        if not isinstance(message, str) or not message.isidentifier():
            raise ValueError(f"message must be a message name in {proto_name}, such as "
                             f"\"Order\", got {message!r}")
        self._message, self._proto_name, self._cls = message, proto_name, None

    @property
    def message_class(self):
        """The generated message class (compiles the .proto on first use)."""
        if self._cls is None:
            from labkit.protocols import proto
            ns = proto.load(self._proto_name)
            cls = getattr(ns, self._message, None)
            if cls is None or not hasattr(cls, "DESCRIPTOR"):
                raise ValueError(f"message must be a message name in {self._proto_name}, got "
                                 f"{self._message!r}")
            self._cls = cls
        return self._cls

    def _encode(self, obj) -> bytes:
        cls = self.message_class
        if isinstance(obj, cls):
            return obj.SerializeToString()
        if not isinstance(obj, dict):
            raise _Unsupported(obj, f"takes a dict (or a {cls.__name__} message)")
        from google.protobuf import json_format
        return json_format.ParseDict(_proto_json(obj), cls()).SerializeToString()

    def decode_message(self, data: bytes, *, max_bytes: int | None = None):
        """The message object in `data` (DecodeError as for `decode`)."""
        data = self._check(data, max_bytes)
        try:
            return self.message_class.FromString(data)
        except Exception as e:  # noqa: BLE001
            raise DecodeError(self.name, f"{type(e).__name__}: {e}") from e

    def _decode(self, data: bytes):
        from google.protobuf import json_format
        return json_format.MessageToDict(self.message_class.FromString(data),
                                         preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)


def avro_dir() -> pathlib.Path:
    """data/avro/, where the Avro schemas live."""
    return pathlib.Path(__file__).resolve().parent.parent.parent / "data" / "avro"


class AvroCodec(Codec):
    """Avro with fastavro, schemaless (no header: both sides hold the schema): dict in, dict out.

    `schema` is a file name in data/avro/ (default ``order.avsc``), a path, or a schema dict.
    `reader_schema` (same forms, optional) makes decode resolve writer -> reader, Avro's schema
    evolution. Decimals, datetimes (aware; micro-second precision) and bytes round-trip;
    fields the schema does not name are refused on encode.
    """

    name = "avro"
    content_type = "avro/binary"
    aliases = ("application/avro",)

    def __init__(self, schema="order.avsc", *, reader_schema=None, limits: Limits | None = None):
        super().__init__(limits=limits)
        self._raw = (self._read("schema", schema),
                     None if reader_schema is None else self._read("reader_schema", reader_schema))
        self._parsed = None

    @staticmethod
    def _read(arg, schema) -> dict:
        if isinstance(schema, (str, os.PathLike)):
            path = pathlib.Path(schema)
            if not path.is_absolute() and not path.exists():
                path = avro_dir() / path
            if not path.is_file():
                raise ValueError(f"{arg} must be an .avsc file in data/avro/, a path or a "
                                 f"schema dict; no such file {path}")
            schema = json.loads(path.read_text())
        if not isinstance(schema, dict):
            raise ValueError(f"{arg} must be an .avsc file name, a path or a schema dict, got "
                             f"{schema!r}")
        return schema

    @property
    def schemas(self):
        """(writer, reader) parsed by fastavro on first use; reader is None without one."""
        if self._parsed is None:
            import fastavro
            parsed = []
            for arg, raw in zip(("schema", "reader_schema"), self._raw):
                try:
                    parsed.append(None if raw is None else fastavro.parse_schema(raw))
                except Exception as e:  # noqa: BLE001
                    raise ValueError(f"{arg} is not a valid Avro schema: {e}") from None
            self._parsed = tuple(parsed)
        return self._parsed

    def _encode(self, obj) -> bytes:
        import fastavro
        if not isinstance(obj, dict):
            raise _Unsupported(obj, "takes a dict matching the schema")
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.schemas[0], obj, strict=True,
                                   strict_allow_default=True)
        return buf.getvalue()

    def _decode(self, data: bytes):
        import fastavro
        fp = io.BytesIO(data)
        try:
            value = fastavro.schemaless_reader(fp, *self.schemas)
        except EOFError as e:
            what = (f"a length field is negative ({e})" if "Expected -" in str(e) else
                    f"it needs more bytes than the {len(data)} given ({str(e) or 'end of data'})")
            raise DecodeError(self.name, f"truncated or not Avro for this schema: {what}") from e
        except (IndexError, ValueError, TypeError, KeyError, OverflowError) as e:
            raise DecodeError(self.name, f"truncated or not Avro for this schema: "
                                         f"{describe(e)}") from e
        if fp.tell() != len(data):
            raise DecodeError(self.name, f"{len(data) - fp.tell()} trailing bytes after the "
                                         f"record (wrong schema?)")
        return value
