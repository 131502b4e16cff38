"""Chapter 04's payload fixtures (data/fixtures/*.json), with their real types restored.

The files are written by ``scripts/make_fixtures.py`` (seeded: the same bytes every run).
JSON has no datetime, Decimal or bytes, so the files hold ISO 8601 strings, decimal strings
and base64; `load(name)` turns them back by field name (the fixtures' convention, below), so
each codec can be measured on the values a service really holds:

- keys ``created_at``, ``at`` -> datetime (timezone-aware)
- keys ``unit_price``, ``total``, ``price`` -> Decimal
- key ``data`` -> bytes (from base64)

``load(name, typed=False)`` gives what plain JSON gives (strings), which every codec accepts.
"""
from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
import pathlib

from labkit._core.validate import boolean, choice

__all__ = ["NAMES", "load", "raw", "path", "fixtures_dir", "revive"]

#: The fixtures, by name: an order, a large list of small records, a deeply nested document.
NAMES = ("order", "large_list", "nested")
DATETIME_KEYS = frozenset({"created_at", "at"})
DECIMAL_KEYS = frozenset({"unit_price", "total", "price"})
BYTES_KEYS = frozenset({"data"})


def fixtures_dir() -> pathlib.Path:
    """data/fixtures/ in the repository."""
    return pathlib.Path(__file__).resolve().parent.parent.parent / "data" / "fixtures"


def path(name: str) -> pathlib.Path:
    """The file of fixture `name` (one of `NAMES`)."""
    name = choice("name", name, NAMES)
    file = fixtures_dir() / f"{name}.json"
    if not file.is_file():
        raise ValueError(f"fixture {name!r} is missing ({file}); run "
                         f"`python scripts/make_fixtures.py` in the course folder")
    return file


def raw(name: str) -> bytes:
    """The stored bytes of fixture `name` (UTF-8 JSON)."""
    return path(name).read_bytes()


def _convert(key, value):
    if not isinstance(value, str):
        return revive(value)
    if key in DATETIME_KEYS:
        return _dt.datetime.fromisoformat(value)
    if key in DECIMAL_KEYS:
        return decimal.Decimal(value)
    if key in BYTES_KEYS:
        return base64.b64decode(value, validate=True)
    return value


def revive(obj):
    """A copy of `obj` with the fixtures' typed fields (see module doc) turned into
    datetime, Decimal and bytes, at any depth."""
    if isinstance(obj, dict):
        return {k: _convert(k, v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [revive(v) for v in obj]
    return obj


def load(name: str, *, typed: bool = True):
    """Fixture `name` as Python objects: with datetime, Decimal and bytes restored when
    `typed` (default), else exactly what ``json.loads`` gives. A fresh copy on every call."""
    typed = boolean("typed", typed)
    obj = json.loads(raw(name).decode("utf-8"))
    return revive(obj) if typed else obj
