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

from collections.abc import Iterator, Mapping

from labkit._core.validate import choice
from labkit.codecs.base import Codec
from labkit.codecs.formats_binary import AvroCodec, CborCodec, MsgpackCodec, ProtobufCodec
from labkit.codecs.formats_text import JsonCodec, OrjsonCodec, YamlCodec, text_default

__all__ = ["CODECS", "UnknownCodec", "get", "names", "JsonCodec", "OrjsonCodec", "YamlCodec", "MsgpackCodec",
           "CborCodec", "ProtobufCodec", "AvroCodec", "text_default"]

class UnknownCodec(KeyError):
    """``CODECS[name]`` for a name not registered: a KeyError whose text lists the names."""

    def __init__(self, name, known: list[str]):
        super().__init__(name)
        self.name, self.known = name, known
        hint = (f" (did you mean {name.lower()!r}?)"
                if isinstance(name, str) and name.lower() in known else "")
        self.message = (f"no codec named {name!r}{hint}; registered (exact, lower case): "
                        f"{', '.join(known)}; get(name) raises a ValueError instead")

    def __str__(self) -> str:        # KeyError would show the message in quotes
        return self.message


class _Registry(Mapping):
    """A read-only name -> codec mapping (no item assignment); names are exact and lower
    case, and a missing name raises `UnknownCodec` listing the registered ones."""

    def __init__(self, codecs):
        self._codecs = {c.name: c for c in codecs}

    def __getitem__(self, name) -> Codec:
        try:
            return self._codecs[name]
        except (KeyError, TypeError):
            raise UnknownCodec(name, list(self._codecs)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._codecs)

    def __len__(self) -> int:
        return len(self._codecs)

    def __repr__(self) -> str:
        return f"CODECS({', '.join(self._codecs)})"


#: name -> codec instance (read-only). Libraries load when a codec is first used.
CODECS: Mapping[str, Codec] = _Registry((JsonCodec(), OrjsonCodec(), MsgpackCodec(),
                                         ProtobufCodec(), YamlCodec(), CborCodec(), AvroCodec()))


def names() -> list[str]:
    """The registered codec names, in registry order."""
    return list(CODECS)


def get(name: str) -> Codec:
    """The registered codec called `name` (ValueError listing the names otherwise)."""
    return CODECS[choice("name", name, CODECS)]
