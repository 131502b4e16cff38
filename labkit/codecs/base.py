"""The codec interface, its two errors and the limits every decoder enforces (chapter 04).

A codec turns a Python object into bytes and back: ``codec.encode(obj) -> bytes`` and
``codec.decode(data) -> obj``, with ``codec.name`` and ``codec.content_type`` (for HTTP). The
concrete codecs (labkit.codecs.formats) are thin: the libraries do the work, this module only
makes their failures look alike, because a service that reads bytes from the network must
treat every failure the same way (reply 400, log it, move on):

- `DecodeError` (a ValueError) for bytes that are truncated, malformed, oversized or hostile,
  with ``.format`` (the codec's name) and ``.reason`` (what was wrong). Whatever the library
  raised is chained as ``__cause__``.
- `EncodeError` (a ValueError) for a value the format cannot carry (a set in JSON), with
  ``.format``, ``.reason`` and ``.type_name`` (the offending type, when known).
- `Limits`: what a decoder may be asked to do. ``max_bytes`` is checked *before* the library
  sees the bytes, so an oversized payload costs nothing; ``max_depth`` bounds nesting where the
  library lets us (CBOR, YAML; JSON and MessagePack stop at their own ~1000 levels);
  ``max_nodes`` bounds what a YAML document may expand to through aliases (billion laughs).
"""
from __future__ import annotations

from dataclasses import dataclass

from labkit._core.validate import integer

__all__ = ["Codec", "DecodeError", "EncodeError", "Limits", "DEFAULT_LIMITS", "MiB", "describe"]

MiB = 1024 * 1024


class DecodeError(ValueError):
    """Bytes that the format's decoder refused: names the format and what was wrong."""

    def __init__(self, format: str, reason: str):
        self.format = format
        self.reason = reason
        super().__init__(f"cannot decode {format}: {reason}")


class EncodeError(ValueError):
    """A value the format cannot carry: names the format, the type and why."""

    def __init__(self, format: str, reason: str, type_name: str | None = None):
        self.format = format
        self.reason = reason
        self.type_name = type_name
        what = f" a value of type {type_name}" if type_name else ""
        super().__init__(f"cannot encode{what} as {format}: {reason}")


@dataclass(frozen=True)
class Limits:
    """How much a decoder may be asked to do; the defaults suit a course service.

    max_bytes: the largest payload accepted, checked before decoding (default 16 MiB).
    max_depth: the deepest nesting accepted where the library can stop there (CBOR, YAML).
    max_nodes: the most values a YAML document may expand to, aliases counted each time they
    are used (the billion-laughs bomb is 9 short lines that expand to 10^9 strings).
    """

    max_bytes: int = 16 * MiB
    max_depth: int = 500
    max_nodes: int = 1_000_000

    def __post_init__(self):
        integer("max_bytes", self.max_bytes, 1)
        integer("max_depth", self.max_depth, 1, 10_000)
        integer("max_nodes", self.max_nodes, 1)


DEFAULT_LIMITS = Limits()


def describe(err: BaseException) -> str:
    """One line for a library's exception: ``"<Type>: <message>"``, or ``"<Type> (no
    message)"`` when its text is empty (msgpack's StackError has none), so an error body never
    ends in a bare colon. A multi-line message is joined into one line."""
    text = " ".join(ln.strip() for ln in str(err).splitlines() if ln.strip())
    name = type(err).__name__
    return f"{name}: {text}" if text else f"{name} (no message)"


class _Unsupported(TypeError):
    """Raised by the codecs' `default` hooks: carries the type the format cannot carry."""

    def __init__(self, value, why: str = "the format has no representation for it"):
        self.type_name = type(value).__name__
        super().__init__(why)


class Codec:
    """One format: ``encode(obj) -> bytes``, ``decode(data, max_bytes=None) -> obj``.

    Subclasses set ``name``, ``content_type`` and implement ``_encode`` / ``_decode`` with
    the library; this class checks the input and turns every library error into
    `EncodeError` / `DecodeError`. ``binary`` says whether the bytes are text a human can read.
    ``aliases`` lists other media types the same bytes are sent under.
    """

    name: str = "codec"
    content_type: str = "application/octet-stream"
    aliases: tuple[str, ...] = ()
    binary: bool = True

    def __init__(self, *, limits: Limits | None = None):
        if limits is not None and not isinstance(limits, Limits):
            raise ValueError(f"limits must be a labkit.codecs.Limits or None, got {limits!r}")
        self.limits = limits or DEFAULT_LIMITS

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.content_type}>"

    # -- the interface ---------------------------------------------------------------------
    def encode(self, obj) -> bytes:
        """`obj` as bytes in this format; EncodeError if the format cannot carry it."""
        try:
            out = self._encode(obj)
        except EncodeError:
            raise
        except _Unsupported as e:
            raise EncodeError(self.name, str(e), e.type_name) from e
        except RecursionError as e:
            raise EncodeError(self.name, "the value is nested too deeply (or refers to "
                                         "itself)", type(obj).__name__) from e
        except Exception as e:  # noqa: BLE001 - every library error becomes an EncodeError
            raise EncodeError(self.name, describe(e)) from e
        return bytes(out)

    def decode(self, data: bytes, *, max_bytes: int | None = None):
        """The object encoded in `data`; DecodeError for anything truncated, malformed,
        larger than `max_bytes` (default: this codec's ``limits.max_bytes``) or hostile."""
        data = self._check(data, max_bytes)
        try:
            return self._decode(data)
        except DecodeError:
            raise
        except RecursionError as e:
            raise DecodeError(self.name, "the document is nested too deeply") from e
        except MemoryError as e:
            raise DecodeError(self.name, "the document would not fit in memory") from e
        except Exception as e:  # noqa: BLE001 - every library error becomes a DecodeError
            raise DecodeError(self.name, describe(e)) from e

    # -- for subclasses --------------------------------------------------------------------
    def _check(self, data, max_bytes) -> bytes:
        limit = self.limits.max_bytes if max_bytes is None else integer("max_bytes", max_bytes, 1)
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise DecodeError(self.name, f"data must be bytes, got {type(data).__name__}"
                              + (" (encode text first, e.g. s.encode())"
                                 if isinstance(data, str) else ""))
        if len(data) > limit:
            raise DecodeError(self.name, f"payload is {len(data):,} bytes, over the limit "
                                         f"max_bytes={limit:,}")
        if not data:
            raise DecodeError(self.name, "payload is empty (0 bytes)")
        return data

    def _encode(self, obj) -> bytes:
        raise NotImplementedError

    def _decode(self, data: bytes):
        raise NotImplementedError
