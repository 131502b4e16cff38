"""Serialization (chapter 04): one thin interface over JSON, MessagePack, Protobuf, YAML, CBOR
and Avro, a `DecodeError` for bytes that are truncated, oversized or hostile, versioned
payloads with migrations, and the schema-evolution experiments. Pure: no I/O; each codec
imports its library only when used, so `import labkit.codecs` stays light.
"""
from __future__ import annotations

import importlib

# name -> module; loaded on first use (PEP 562). `danger` is not exported on purpose: it is
# imported by name, in the one demo that needs it.
_LAZY = {
    "Codec": "base", "DecodeError": "base", "EncodeError": "base", "Limits": "base",
    "CODECS": "formats", "get": "formats", "names": "formats", "text_default": "formats",
    "VersionedSerializer": "versioning", "NoMigrationPath": "versioning",
    "TutorialSerializer": "versioning", "run_tutorial": "versioning",
    "MigrationStepLimit": "versioning", "MigrationFailed": "versioning",
    "compatibility_matrix": "evolution", "matrix_table": "evolution",
}
_SUBMODULES = {"base", "formats", "fixtures", "versioning", "evolution"}
__all__ = sorted([*_LAZY, "fixtures"])


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"labkit.codecs.{_LAZY[name]}")
        globals().update({n: getattr(module, n) for n, m in _LAZY.items() if m == _LAZY[name]})
        return globals()[name]
    if name in _SUBMODULES:
        return importlib.import_module(f"labkit.codecs.{name}")
    raise AttributeError(f"module 'labkit.codecs' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY, *_SUBMODULES})
