"""The registry of chapter 04's codecs: `get(name)` and `CODECS` (name -> codec).

    from labkit.codecs.formats import get
    codec = get("msgpack")
    data = codec.encode({"id": 1})          # bytes
    codec.decode(data)                      # {"id": 1}; DecodeError for bad bytes

Registered: json (stdlib, `text_default` hook), orjson, msgpack (timestamp extension),
protobuf (``Order`` from data/order.proto), yaml (safe only), cbor, avro (``order.avsc``).
Pickle is deliberately absent: unpickling bytes from the network runs the sender's code
(the chapter's danger demo shows it). Build your own instance for other options, e.g.
``JsonCodec(default=None)`` or ``ProtobufCodec("RecordList")``.
"""
from __future__ import annotations

import types

from labkit._core.validate import choice
from labkit.codecs.base import Codec
from labkit.codecs.formats_binary import AvroCodec, CborCodec, MsgpackCodec, ProtobufCodec
from labkit.codecs.formats_text import JsonCodec, OrjsonCodec, YamlCodec, text_default

__all__ = ["CODECS", "get", "names", "JsonCodec", "OrjsonCodec", "YamlCodec", "MsgpackCodec",
           "CborCodec", "ProtobufCodec", "AvroCodec", "text_default"]

#: name -> codec instance (read-only). Libraries load when a codec is first used.
CODECS: "types.MappingProxyType[str, Codec]" = types.MappingProxyType({
    c.name: c for c in (JsonCodec(), OrjsonCodec(), MsgpackCodec(), ProtobufCodec(),
                        YamlCodec(), CborCodec(), AvroCodec())})


def names() -> list[str]:
    """The registered codec names, in registry order."""
    return list(CODECS)


def get(name: str) -> Codec:
    """The registered codec called `name` (ValueError listing the names otherwise)."""
    return CODECS[choice("name", name, CODECS)]
