"""Versioned payloads (chapter 04): an envelope {"version", "data"} and migrations between versions.

Two serializers, side by side:

- `TutorialSerializer`: the source tutorial's `BackwardCompatibleSerializer`, kept as the lesson.
  Its `deserialize` takes ``next(iter(self.migration_rules[current]))``, the FIRST migration
  registered from the current version, whatever the target: with 1.0->1.1 registered before
  1.0->2.0 a 1.0 payload stops at 1.1 (dead end), and with a downgrade 2.0->1.0 it loops 1.0,
  2.0, 1.0, ... for ever. Run it through `run_tutorial`, which bounds the loop by counting
  migration calls (the lesson class itself is left as written).
- `VersionedSerializer`: migrates along the SHORTEST chain of registered migrations (breadth-
  first search) and raises `NoMigrationPath` (a ValueError) naming both versions and what is
  reachable when there is no chain.

Versions are plain strings compared as given ("1.0" and "1" are different versions): no
semantic-version parsing. Pure: json and copy only, no clock, no I/O.
"""
from __future__ import annotations

import copy
import json
from collections import deque
from typing import Any, Callable

from labkit._core.validate import boolean, integer, text

__all__ = ["TutorialSerializer", "run_tutorial", "MigrationStepLimit", "VersionedSerializer",
           "NoMigrationPath", "MigrationFailed", "MAX_MIGRATIONS"]

#: At most this many migrations per serializer (a registry is a store: it has a limit).
MAX_MIGRATIONS = 256


def _version(name: str, value: Any) -> str:
    text(name, value)
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty version string such as \"2\", got {value!r}")
    if value != value.strip():
        raise ValueError(f"{name} must not start or end with whitespace (\" 3.0\" and \"3.0\" "
                         f"would be different versions), got {value!r}")
    return value


def _loads_envelope(name: str, value: Any) -> dict:
    """Parse `value` (str or bytes) as a JSON envelope with "version" and "data"."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{name} must be UTF-8 JSON text: {e}") from None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be the JSON text made by serialize(), got "
                         f"{type(value).__name__}")
    try:
        env = json.loads(value)
    except json.JSONDecodeError as e:
        raise ValueError(f"{name} is not JSON: {e}") from None
    if not isinstance(env, dict) or "version" not in env or "data" not in env:
        raise ValueError(f"{name} must be an envelope {{\"version\": ..., \"data\": ...}}, got "
                         f"{value[:80]!r}")
    _version(f"{name}'s \"version\"", env["version"])
    return env


# --- the lesson: the tutorial's serializer, as written ---------------------------------------

class TutorialSerializer:
    """The tutorial's BackwardCompatibleSerializer (chapter 04), kept to show its bug.

    Unchanged except that the envelope carries no wall-clock timestamp (labkit's pure modules
    read no clock). `deserialize` follows the first registered migration from each version;
    call it through `run_tutorial` so a cycle cannot hang.
    """

    def __init__(self):
        self.migration_rules: dict[str, dict[str, Callable]] = {}
        self.current_version = '1.0'

    def register_migration(self, from_version: str, to_version: str, migration_func: Callable):
        """Register a migration (the tutorial's code)."""
        if from_version not in self.migration_rules:
            self.migration_rules[from_version] = {}
        self.migration_rules[from_version][to_version] = migration_func

    def serialize(self, obj: Any, version: str = None) -> str:
        """Wrap `obj` in {"version", "data", "metadata"} (the tutorial's code, no timestamp)."""
        return json.dumps({'version': version or self.current_version, 'data': obj,
                           'metadata': {}})

    def deserialize(self, serialized_data: str, target_version: str = None) -> Any:
        """The tutorial's loop: takes the FIRST registered migration each step (the bug)."""
        versioned_data = json.loads(serialized_data)
        current_version = versioned_data['version']
        target = target_version or self.current_version
        if current_version == target:
            return versioned_data['data']
        migrated_data = versioned_data['data']
        while current_version != target:
            if current_version not in self.migration_rules:
                raise ValueError(f"No migration rule from version {current_version}")
            next_versions = self.migration_rules[current_version].keys()
            if not next_versions:
                raise ValueError(f"No migration path from version {current_version}")
            next_version = next(iter(next_versions))
            migration_func = self.migration_rules[current_version][next_version]
            migrated_data = migration_func(migrated_data)
            current_version = next_version
        return migrated_data


class MigrationStepLimit(RuntimeError):
    """`run_tutorial` stopped the tutorial's loop after `max_steps` migrations (a cycle)."""


def run_tutorial(serializer: TutorialSerializer, serialized: str,
                 target_version: str | None = None, *, max_steps: int = 20) -> dict:
    """Run the tutorial's `deserialize` with at most `max_steps` migrations (chapter 04).

    Works on a copy whose migration functions are wrapped to record each step and to raise
    `MigrationStepLimit` past `max_steps`, so the lesson class runs unchanged and cannot hang.
    Returns {"outcome": "reached" | "dead end" | "step limit", "path": [versions visited],
    "data": the result or None, "error": message or None}.
    """
    if not isinstance(serializer, TutorialSerializer):
        raise ValueError(f"serializer must be a TutorialSerializer, got {type(serializer).__name__}")
    integer("max_steps", max_steps, 1, 10_000)
    start = _loads_envelope("serialized", serialized)["version"]
    path = [start]

    def counted(to_v, fn):
        def step(data):
            if len(path) > max_steps:
                raise MigrationStepLimit(f"stopped after {max_steps} migrations: "
                                         f"{' -> '.join(path)} -> ...")
            out = fn(data)
            path.append(to_v)
            return out
        return step

    lab = copy.copy(serializer)
    lab.migration_rules = {f: {t: counted(t, fn) for t, fn in rules.items()}
                           for f, rules in serializer.migration_rules.items()}
    try:
        data = lab.deserialize(serialized, target_version)
    except MigrationStepLimit as e:
        return {"outcome": "step limit", "path": path, "data": None, "error": str(e)}
    except ValueError as e:
        return {"outcome": "dead end", "path": path, "data": None, "error": str(e)}
    return {"outcome": "reached", "path": path, "data": data, "error": None}


# --- the redo: shortest chain, clear error ----------------------------------------------------

class NoMigrationPath(ValueError):
    """No chain of registered migrations leads from `from_version` to `to_version`."""

    def __init__(self, from_version: str, to_version: str, reachable: list[str]):
        self.from_version, self.to_version, self.reachable = from_version, to_version, reachable
        reach = ", ".join(repr(v) for v in reachable) if reachable else "nothing"
        super().__init__(f"no migration path from version {from_version!r} to {to_version!r}; "
                         f"from {from_version!r} the registered migrations reach: {reach}")


class MigrationFailed(ValueError):
    """A registered migration raised: names the step; the migration's error is ``__cause__``."""

    def __init__(self, from_version: str, to_version: str, err: BaseException):
        self.from_version, self.to_version = from_version, to_version
        what = str(err).strip().splitlines()
        super().__init__(f"migration {from_version} -> {to_version} raised "
                         f"{type(err).__name__}" + (f": {what[0]}" if what else ""))


class VersionedSerializer:
    """JSON envelope {"version", "data"} plus migrations along the shortest chain (chapter 04).

    `register(from_v, to_v, fn)` adds a migration; `fn(data) -> data` gets a private deep copy
    (the caller's data is never mutated) and must return the migrated data. `path` is a
    breadth-first search, so it uses the fewest migrations. Tie-break (deterministic): among
    equally short chains the one whose migrations were registered first wins (edges are
    explored in registration order). Registering the same (from, to) again is a ValueError
    unless ``replace=True``, which replaces the function and keeps its place in that order.
    A migration that raises surfaces as `MigrationFailed` naming the step. Versions may not
    have leading or trailing whitespace.
    """

    def __init__(self, current_version: str):
        self.current_version = _version("current_version", current_version)
        self._edges: dict[str, dict[str, Callable]] = {}   # insertion order = registration order

    def register(self, from_v: str, to_v: str, fn: Callable[[Any], Any], *,
                 replace: bool = False) -> None:
        """Register `fn` migrating data shaped as version `from_v` to version `to_v`;
        `replace=True` to swap the function of a pair already registered."""
        _version("from_v", from_v)
        _version("to_v", to_v)
        if from_v == to_v:
            raise ValueError(f"to_v must differ from from_v, got {from_v!r} for both")
        if not callable(fn):
            raise ValueError(f"fn must be a function data -> data, got {fn!r}")
        boolean("replace", replace)
        known = from_v in self._edges and to_v in self._edges[from_v]
        if known and not replace:
            raise ValueError(f"from_v/to_v: a migration {from_v!r} -> {to_v!r} is already "
                             f"registered; pass replace=True to replace it")
        if not known and len(self.migrations()) >= MAX_MIGRATIONS:
            raise ValueError(f"from_v/to_v: at most {MAX_MIGRATIONS} migrations per serializer")
        self._edges.setdefault(from_v, {})[to_v] = fn

    def migrations(self) -> list[tuple[str, str]]:
        """Every registered (from, to), in registration order (grouped by `from`)."""
        return [(f, t) for f, tos in self._edges.items() for t in tos]

    def reachable(self, from_v: str) -> list[str]:
        """Versions reachable from `from_v` (not itself), in breadth-first order."""
        _version("from_v", from_v)
        return [v for v in self._bfs(from_v) if v != from_v]

    def _bfs(self, start: str) -> dict[str, str | None]:
        parent: dict[str, str | None] = {start: None}
        todo = deque([start])
        while todo:
            v = todo.popleft()
            for w in self._edges.get(v, {}):
                if w not in parent:
                    parent[w] = v
                    todo.append(w)
        return parent

    def path(self, from_v: str, to_v: str) -> list[str]:
        """The shortest chain of versions from `from_v` to `to_v`, both included.

        ``[from_v]`` when they are equal; `NoMigrationPath` when no chain exists.
        """
        _version("from_v", from_v)
        _version("to_v", to_v)
        parent = self._bfs(from_v)
        if to_v not in parent:
            raise NoMigrationPath(from_v, to_v, [v for v in parent if v != from_v])
        chain = [to_v]
        while parent[chain[-1]] is not None:
            chain.append(parent[chain[-1]])
        return chain[::-1]

    def migrate(self, data: Any, from_v: str, to_v: str) -> Any:
        """Migrate `data` (shaped as `from_v`) to `to_v` along `path`; `data` is not mutated."""
        chain = self.path(from_v, to_v)
        out = copy.deepcopy(data)
        for a, b in zip(chain, chain[1:]):
            try:
                out = self._edges[a][b](out)
            except Exception as err:  # noqa: BLE001 - any migration bug, named by its step
                raise MigrationFailed(a, b, err) from err
            if out is None:
                raise ValueError(f"migration {a!r} -> {b!r} returned None; a migration must "
                                 f"return the migrated data (did it only change it in place?)")
        return out

    def serialize(self, obj: Any, version: str | None = None) -> str:
        """The envelope {"version": version or current_version, "data": obj} as JSON text.

        `obj` must already be shaped as that version (the label is not a migration; to write
        for an older reader, ``serialize(s.migrate(obj, s.current_version, "1"), "1")``).
        """
        version = self.current_version if version is None else _version("version", version)
        try:
            return json.dumps({"version": version, "data": obj}, ensure_ascii=False,
                              allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"obj must be JSON-serializable (dict, list, str, finite numbers, "
                             f"bool, None): {e}") from None

    def deserialize(self, text: str | bytes, target: str | None = None) -> Any:
        """Read an envelope and migrate its data to `target` (default: current_version)."""
        env = _loads_envelope("text", text)
        target = self.current_version if target is None else _version("target", target)
        return self.migrate(env["data"], env["version"], target)

    def summary(self) -> dict:
        """current_version and the registered migrations as "from -> to" strings."""
        return {"current_version": self.current_version,
                "migrations": [f"{f} -> {t}" for f, t in self.migrations()]}

    def __repr__(self) -> str:
        return f"VersionedSerializer({self.current_version!r}, {len(self.migrations())} migrations)"
