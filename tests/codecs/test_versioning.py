"""labkit.codecs.versioning (chapter 04): shortest-chain migration vs the tutorial's first pick."""
import json

import pytest

from labkit.codecs import versioning as v
from labkit.codecs.versioning import (NoMigrationPath, TutorialSerializer, VersionedSerializer,
                                      run_tutorial)


def tag(name, calls):
    """A migration that records its name and appends it to data["steps"]."""
    def fn(data):
        calls.append(name)
        data["steps"].append(name)
        return data
    return fn


def test_bfs_takes_the_shortest_chain_not_the_first_registered():
    calls = []
    s = VersionedSerializer("3")
    for a, b in [("1", "1.1"), ("1.1", "1.2"), ("1.2", "3"), ("1", "2"), ("2", "3")]:
        s.register(a, b, tag(f"{a}>{b}", calls))
    assert s.path("1", "3") == ["1", "2", "3"]
    out = s.deserialize(s.serialize({"steps": []}, version="1"))
    assert out == {"steps": ["1>2", "2>3"]} and calls == ["1>2", "2>3"]
    s.register("1", "3", tag("1>3", calls))               # a direct migration, registered last
    assert s.path("1", "3") == ["1", "3"]
    assert s.path("1.1", "3") == ["1.1", "1.2", "3"]
    assert s.path("2", "2") == ["2"]


@pytest.mark.parametrize("order, expected", [(["b", "a"], ["1", "b", "3"]),
                                             (["a", "b"], ["1", "a", "3"])])
def test_tie_break_is_registration_order(order, expected):
    s = VersionedSerializer("3")
    for mid in order:
        s.register("1", mid, lambda d: d)
    for mid in ("a", "b"):
        s.register(mid, "3", lambda d: d)
    assert s.path("1", "3") == expected


def test_no_path_names_both_versions_and_what_is_reachable():
    s = VersionedSerializer("3")
    s.register("1", "2", lambda d: d)
    s.register("2", "1", lambda d: d)
    s.register("4", "3", lambda d: d)
    with pytest.raises(NoMigrationPath) as e:
        s.deserialize(s.serialize({}, version="1"))
    assert isinstance(e.value, ValueError)
    assert (e.value.from_version, e.value.to_version, e.value.reachable) == ("1", "3", ["2"])
    assert str(e.value) == ("no migration path from version '1' to '3'; from '1' the registered "
                            "migrations reach: '2'")
    with pytest.raises(NoMigrationPath, match="reach: nothing"):
        s.path("9", "3")
    assert s.reachable("4") == ["3"]


def test_versions_are_strings_compared_as_given():
    s = VersionedSerializer("1")
    s.register("1.0", "1", lambda d: {**d, "up": True})
    with pytest.raises(NoMigrationPath):
        s.path("1.00", "1")
    assert s.deserialize(s.serialize({"x": 1}, version="1.0")) == {"x": 1, "up": True}


def test_migrations_never_mutate_the_callers_data():
    def in_place(d):
        d["items"].append("added")
        d["name"] = d.pop("nm")
        return d
    s = VersionedSerializer("2")
    s.register("1", "2", in_place)
    mine = {"nm": "Ada", "items": ["a"]}
    assert s.migrate(mine, "1", "2") == {"name": "Ada", "items": ["a", "added"]}
    assert mine == {"nm": "Ada", "items": ["a"]}


def test_a_migration_that_returns_none_is_named():
    s = VersionedSerializer("2")
    s.register("1", "2", lambda d: d.update(x=1))
    with pytest.raises(ValueError, match="migration '1' -> '2' returned None"):
        s.migrate({}, "1", "2")


def test_envelope_and_target():
    s = VersionedSerializer("2")
    s.register("1", "2", lambda d: {"v": 2})
    s.register("2", "1", lambda d: {"v": 1})
    text = s.serialize({"v": 2})
    assert json.loads(text) == {"version": "2", "data": {"v": 2}}
    assert s.deserialize(text) == {"v": 2}
    assert s.deserialize(text.encode(), target="1") == {"v": 1}
    with pytest.raises(ValueError, match="'1' -> '2' is already registered; pass replace=True"):
        s.register("1", "2", lambda d: {"v": "two"})      # a second registration by mistake
    assert s.deserialize(s.serialize({}, "1")) == {"v": 2}    # ... left the first in place
    s.register("1", "2", lambda d: {"v": "two"}, replace=True)   # replaced, same place
    assert s.migrations() == [("1", "2"), ("2", "1")]
    assert s.deserialize(s.serialize({}, "1")) == {"v": "two"}
    assert s.summary() == {"current_version": "2", "migrations": ["1 -> 2", "2 -> 1"]}


@pytest.mark.parametrize("call, match", [
    (lambda s: VersionedSerializer(2), "current_version must be a string"),
    (lambda s: VersionedSerializer("  "), "current_version must be a non-empty"),
    (lambda s: s.register("1", "1", lambda d: d), "to_v must differ from from_v"),
    (lambda s: s.register("1", "2", "not a function"), "fn must be a function"),
    (lambda s: s.register(None, "2", lambda d: d), "from_v must be a string"),
    (lambda s: s.deserialize("{not json"), "text is not JSON"),
    (lambda s: s.deserialize('{"data": 1}'), "text must be an envelope"),
    (lambda s: s.deserialize('{"version": 2, "data": 1}'), "\"version\" must be a string"),
    (lambda s: s.deserialize(b"\xff"), "text must be UTF-8"),
    (lambda s: s.deserialize(12), "text must be the JSON text"),
    (lambda s: s.deserialize('{"version": "1", "data": 1}', target=""), "target must be a non-"),
    (lambda s: s.serialize({"when": object()}), "obj must be JSON-serializable"),
    (lambda s: s.serialize({"x": float("nan")}), "obj must be JSON-serializable"),
    (lambda s: s.serialize({}, version=3), "version must be a string"),
    (lambda s: VersionedSerializer(" 3.0 "), "current_version must not start or end with white"),
    (lambda s: s.register("1", "2 ", lambda d: d), "to_v must not start or end with whitespace"),
    (lambda s: s.deserialize('{"version": "1\\n", "data": 1}'), "\"version\" must not start"),
    (lambda s: s.register("1", "2", lambda d: d, replace=1), "replace must be True or False"),
])
def test_bad_input_is_a_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(VersionedSerializer("1"))


def test_the_registry_is_bounded(monkeypatch):
    monkeypatch.setattr(v, "MAX_MIGRATIONS", 3)
    s = VersionedSerializer("1")
    for i in range(3):
        s.register(str(i), str(i + 1), lambda d: d)
    s.register("0", "1", lambda d: d, replace=True)         # replacing is not adding
    with pytest.raises(ValueError, match="at most 3 migrations"):
        s.register("9", "10", lambda d: d)


def test_a_migration_that_raises_is_named_by_its_step_and_chained():
    s = VersionedSerializer("3.0")
    s.register("1.0", "2.0", lambda d: {**d, "two": True})
    s.register("2.0", "3.0", lambda d: d["n"] / 0)
    with pytest.raises(v.MigrationFailed) as e:
        s.deserialize(s.serialize({"n": 1}, "1.0"))
    assert str(e.value) == "migration 2.0 -> 3.0 raised ZeroDivisionError: division by zero"
    assert isinstance(e.value, ValueError) and isinstance(e.value.__cause__, ZeroDivisionError)
    assert (e.value.from_version, e.value.to_version) == ("2.0", "3.0")
    s.register("1.0", "2.0", lambda d: d["missing"], replace=True)
    with pytest.raises(v.MigrationFailed, match=r"^migration 1.0 -> 2.0 raised KeyError: 'miss"):
        s.migrate({}, "1.0", "3.0")
    s.register("1.0", "2.0", lambda d: (_ for _ in ()).throw(RuntimeError()), replace=True)
    with pytest.raises(v.MigrationFailed, match=r"raised RuntimeError$"):   # no empty ": "
        s.migrate({}, "1.0", "2.0")


# --- the tutorial's serializer, run with a step bound -----------------------------------------

def tutorial(pairs, calls):
    t = TutorialSerializer()
    for a, b in pairs:
        t.register_migration(a, b, tag(f"{a}>{b}", calls))
    return t


def test_tutorial_takes_the_first_registration_and_reaches_a_dead_end():
    calls = []
    pairs = [("1.0", "1.1"), ("1.0", "2.0"), ("2.0", "3.0")]
    t = tutorial(pairs, calls)
    r = run_tutorial(t, t.serialize({"steps": []}, "1.0"), "3.0")
    assert r["outcome"] == "dead end" and r["path"] == ["1.0", "1.1"]
    assert r["error"] == "No migration rule from version 1.1" and calls == ["1.0>1.1"]
    s = VersionedSerializer("3.0")
    for a, b in pairs:
        s.register(a, b, tag(f"{a}>{b}", []))
    assert s.deserialize(t.serialize({"steps": []}, "1.0")) == {"steps": ["1.0>2.0", "2.0>3.0"]}


def test_tutorial_cycles_on_a_downgrade_and_the_runner_stops_it():
    calls = []
    t = tutorial([("1.0", "2.0"), ("2.0", "1.0"), ("2.0", "3.0")], calls)
    rules = {k: dict(d) for k, d in t.migration_rules.items()}
    r = run_tutorial(t, t.serialize({"steps": []}, "1.0"), "3.0", max_steps=5)
    assert r["outcome"] == "step limit" and r["data"] is None
    assert r["path"] == ["1.0", "2.0", "1.0", "2.0", "1.0", "2.0"]
    assert len(calls) == 5 and "stopped after 5 migrations" in r["error"]
    assert t.migration_rules == rules                      # the lesson object is untouched


def test_tutorial_works_when_each_version_has_one_way_out():
    t = tutorial([("1.0", "2.0"), ("2.0", "3.0")], [])
    r = run_tutorial(t, t.serialize({"steps": []}, "1.0"), "3.0")
    assert r == {"outcome": "reached", "path": ["1.0", "2.0", "3.0"],
                 "data": {"steps": ["1.0>2.0", "2.0>3.0"]}, "error": None}
    assert json.loads(t.serialize({"a": 1}))["version"] == "1.0"


def test_run_tutorial_checks_its_arguments():
    t = TutorialSerializer()
    with pytest.raises(ValueError, match="max_steps must be a whole number"):
        run_tutorial(t, t.serialize({}), max_steps=0)
    with pytest.raises(ValueError, match="serializer must be a TutorialSerializer"):
        run_tutorial(VersionedSerializer("1"), "{}")
    with pytest.raises(ValueError, match="serialized must be an envelope"):
        run_tutorial(t, "[]")
