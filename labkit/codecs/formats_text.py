"""The text codecs of chapter 04: JSON (stdlib and orjson) and YAML (safe loader only).

Thin wrappers: the libraries do the work; labkit.codecs.base turns their errors into
`DecodeError` / `EncodeError`. Each library is imported when the codec is first used, so
`import labkit.codecs` stays light.

JSON has no datetime, Decimal or bytes. `text_default` is the explicit ``default=`` hook both
JSON codecs use: it writes datetimes as ISO 8601 strings, Decimals as strings and bytes as
base64, so they *encode*, but they come back as plain strings: JSON does not say what a string
was (chapter 04's fidelity table shows it). Anything else it cannot write (a set, an object)
is an `EncodeError` naming the type. Pass ``default=None`` for a codec that refuses them all,
or your own hook (and ``object_hook=`` to read them back).
"""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import uuid

from labkit.codecs.base import Codec, DecodeError, Limits, _Unsupported

__all__ = ["JsonCodec", "OrjsonCodec", "YamlCodec", "text_default"]


def text_default(value):
    """The JSON codecs' ``default=`` hook: datetime/date/time -> ISO 8601 string, Decimal ->
    string (exact, unlike a float), bytes -> base64 string, UUID -> string; anything else
    raises TypeError (a set has no JSON form: send ``sorted(s)`` if order does not matter)."""
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        raise TypeError("JSON has no set type (send a sorted list instead)")
    raise TypeError("JSON has no representation for it")


def _hook(user_default):
    """Wrap `user_default` so that what it refuses carries the type into EncodeError."""
    def default(value):
        if user_default is None:
            raise _Unsupported(value, "the codec has no default= hook for it")
        try:
            return user_default(value)
        except TypeError as e:
            raise _Unsupported(value, str(e)) from None
    return default


class JsonCodec(Codec):
    """JSON with the standard library: compact UTF-8, ``default=`` hook (see `text_default`).

    `object_hook` (optional) is passed to ``json.loads``: it sees every decoded dict. Nesting
    is limited by Python's recursion limit (~1000 levels), refused as DecodeError.
    """

    name = "json"
    content_type = "application/json"
    binary = False

    def __init__(self, *, default=text_default, object_hook=None, sort_keys: bool = False,
                 limits: Limits | None = None):
        super().__init__(limits=limits)
        for arg, value in (("default", default), ("object_hook", object_hook)):
            if value is not None and not callable(value):
                raise ValueError(f"{arg} must be a function or None, got {value!r}")
        self._default, self._object_hook, self._sort_keys = _hook(default), object_hook, sort_keys

    def _encode(self, obj) -> bytes:
        import json
        return json.dumps(obj, default=self._default, ensure_ascii=False, sort_keys=self._sort_keys,
                          separators=(",", ":")).encode("utf-8")

    def _decode(self, data: bytes):
        import json
        try:
            return json.loads(data.decode("utf-8"), object_hook=self._object_hook)
        except ValueError as e:
            if "integer string conversion" not in str(e):
                raise
            # Python's own advice (sys.set_int_max_str_digits) would lift a safety limit.
            raise DecodeError(self.name, f"an integer with more than {_int_digits()} digits "
                                         f"(a denial-of-service guard); refused") from e


def _int_digits() -> int:
    import sys
    return sys.get_int_max_str_digits() or 4300


class OrjsonCodec(Codec):
    """JSON with orjson (Rust, several times faster). Same bytes on the wire as `JsonCodec`
    where both can write a value; orjson writes datetimes itself, refuses integers beyond
    64 bits, writes NaN as null and stops at 1024 levels of nesting."""

    name = "orjson"
    content_type = "application/json"
    binary = False

    def __init__(self, *, default=text_default, limits: Limits | None = None):
        super().__init__(limits=limits)
        if default is not None and not callable(default):
            raise ValueError(f"default must be a function or None, got {default!r}")
        self._default = _hook(default)

    def _encode(self, obj) -> bytes:
        import orjson
        try:
            return orjson.dumps(obj, default=self._default)
        except TypeError as e:     # orjson wraps what the hook raised; unwrap it for the type
            if isinstance(e.__cause__, _Unsupported):
                raise e.__cause__ from None
            raise

    def _decode(self, data: bytes):
        import orjson
        return orjson.loads(data)


def _loader_class():
    """yaml.SafeLoader plus two budgets: nesting depth and expanded size (aliases counted
    each time they are used), so a billion-laughs document is refused after a few levels."""
    import yaml
    from yaml.nodes import MappingNode, SequenceNode

    class BudgetSafeLoader(yaml.SafeLoader):
        max_depth = 500
        max_nodes = 1_000_000

        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0
            self._weights: dict[int, int] = {}   # id(node) -> values it expands to

        def fetch_flow_collection_start(self, token_class):
            # Checked in the scanner: its cost grows with the square of the flow depth, so
            # 100 KB of "[[[[" would take many seconds before the composer ever saw it.
            super().fetch_flow_collection_start(token_class)
            if self.flow_level > self.max_depth:
                raise DecodeError("yaml", f"nesting deeper than max_depth={self.max_depth}")

        def compose_node(self, parent, index):
            alias = self.check_event(yaml.AliasEvent)
            self._depth += 1
            try:
                if self._depth > self.max_depth:
                    raise DecodeError("yaml", f"nesting deeper than max_depth={self.max_depth}")
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            if alias:                               # already weighed (or still being built)
                return node
            if isinstance(node, SequenceNode):
                weight = 1 + sum(self._weights.get(id(c), 1) for c in node.value)
            elif isinstance(node, MappingNode):
                weight = 1 + sum(self._weights.get(id(k), 1) + self._weights.get(id(v), 1)
                                 for k, v in node.value)
            else:
                weight = 1
            if weight > self.max_nodes:
                raise DecodeError("yaml", f"the document expands to more than max_nodes="
                                          f"{self.max_nodes:,} values (aliases counted each "
                                          f"time they are used: an alias bomb?)")
            self._weights[id(node)] = weight
            return node

    return BudgetSafeLoader


_LOADER = None


class YamlCodec(Codec):
    """YAML with PyYAML's safe loader and dumper only: plain data, never Python objects.

    `yaml.load` with the full loader can build arbitrary Python objects (chapter 04's danger
    demo); this codec cannot. Decoding is bounded by ``limits`` (size, depth, and the size the
    document expands to through aliases). YAML 1.1 quirks remain: ``no`` reads as False,
    ``2024-01-01`` as a date, U+0085/U+2028/U+2029 in plain text as spaces. A YAML document
    has no end marker, so a block-style document cut short is often still valid YAML: the
    truncation goes unnoticed (frame it, e.g. with Content-Length, or use another format).
    """

    name = "yaml"
    content_type = "application/yaml"
    aliases = ("application/x-yaml", "text/yaml")
    binary = False

    def _encode(self, obj) -> bytes:
        import yaml
        try:
            text = yaml.safe_dump(obj, allow_unicode=True, sort_keys=False)
        except yaml.representer.RepresenterError as e:
            culprit = e.args[1] if len(e.args) > 1 else None
            raise _Unsupported(culprit, "the safe dumper writes only plain data") from None
        return text.encode("utf-8")

    def _decode(self, data: bytes):
        import yaml
        global _LOADER
        if _LOADER is None:
            _LOADER = _loader_class()
        loader = _LOADER(data.decode("utf-8"))
        loader.max_depth, loader.max_nodes = self.limits.max_depth, self.limits.max_nodes
        try:
            return loader.get_single_data()
        except yaml.MarkedYAMLError as e:
            raise DecodeError(self.name, _one_line(e)) from e
        finally:
            loader.dispose()


def _one_line(err) -> str:
    """A PyYAML error (context, problem, each with a caret-marked excerpt) in one line:
    ``"<Type>: <context> (line L, column C): <problem> at line L, column C"``."""
    def at(mark):
        return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    parts = []
    if err.context:
        where = at(err.context_mark)
        parts.append(f"{err.context} ({where})" if where else err.context)
    problem = err.problem or "malformed document"
    where = at(err.problem_mark)
    parts.append(f"{problem} at {where}" if where else problem)
    return f"{type(err).__name__}: {': '.join(parts)}"
