"""Chapter 04 exercises (notebooks/04_serialization.ipynb), checked on inputs that vary per run.

Exercise 1 · to_json_default(value)
    Used as ``json.dumps(obj, default=to_json_default)``: json calls it with each value it
    cannot write itself and writes what it returns instead. Return exactly:
      datetime with a tzinfo -> value.isoformat()                  "2024-05-01T12:30:00+02:00"
      datetime without one   -> raise ValueError (nobody can tell which instant it means)
      date                   -> value.isoformat()                  "2024-05-01"
      Decimal                -> str(value)                         "19.90" (every digit)
      bytes                  -> base64.b64encode(value).decode("ascii")          "+/8="
      set or frozenset       -> sorted(value) (a list, ascending)  [1, 5, 12]
      uuid.UUID              -> str(value)         "12345678-1234-5678-1234-567812345678"
      anything else          -> raise TypeError, as json itself does

Exercise 2 · migration_path(migrations, start, target) -> list[str]
    `migrations` is a list of registered migrations, (from_version, to_version) pairs; each
    one migrates a payload one way only, from its first version to its second. Return the
    shortest list of versions leading from `start` to `target`, both included, where each step
    is a registered migration ([start] when start == target). If there is no such path, raise
    ValueError. Do not change `migrations`. (The source tutorial takes the first migration
    registered from the current version: a dead end, a detour, or a loop that never ends.)

Exercise 3 · choose_format(needs) -> str
    `needs` maps some of these keys to True or False; a missing key means False:
      "browser_readable"  JavaScript in a browser reads the payload directly
      "human_edited"      people write and edit it by hand (a config file)
      "untrusted_input"   it comes from senders you do not control
      "schema_required"   both sides must agree on a declared schema
      "stored_files"      records are kept in files and read years later by other programs
      "smallest"          bytes on the wire matter most
    Return the format of the first rule that applies:
      1. browser_readable                     -> "json"
      2. human_edited and untrusted_input     -> "json"
      3. human_edited                         -> "yaml"
      4. schema_required and stored_files     -> "avro"
      5. schema_required                      -> "protobuf"
      6. smallest                             -> "msgpack"
      7. otherwise                            -> "json"
    Never "pickle".
Exercise 3's check is in `labkit.checks.serialization_format`, imported at the end (third).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from decimal import Decimal

from . import Wrong, exercise, plain, raised, run_rng

# ---------------------------------------------------------------------------------------------
# Exercise 1: what json.dumps writes for the types it does not know


def to_json_default(value):
    """What json.dumps(obj, default=to_json_default) writes for a value json cannot encode:
    the table of exercise 1; TypeError for other types, ValueError for a naive datetime."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give it a tzinfo")
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_HINT_JSON = ("One `if isinstance(value, ...)` per row of the table, datetime before date (a "
           "datetime is a date too), and `raise TypeError(...)` at the end, never `return`.")


def _json_values(rng) -> list:
    """Values in a fixed order of types (so a wrong answer always meets its mistake first)."""
    big = Decimal(f"{rng.randint(10**9, 10**12)}.{rng.randint(1, 10**8 - 1):08d}1")  # 20 digits
    price = Decimal(f"{rng.randint(1, 999)}.{rng.randint(1, 9)}0")
    tz = dt.timezone(dt.timedelta(minutes=rng.choice([-300, -180, 60, 120, 330, 545])))
    moment = dt.datetime(rng.randint(2000, 2030), rng.randint(1, 12), rng.randint(1, 28),
                         rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                         rng.choice([0, rng.randint(1, 999_999)]), tzinfo=tz)
    ints, strs = frozenset(), set()
    while list(ints) == sorted(ints) or list(strs) == sorted(strs):   # list(s) is not sorted
        ints = frozenset(rng.sample(range(1000), 6))
        strs = set(rng.sample(["kiwi", "plum", "fig", "pear", "lime", "date", "yuzu"], 4))
    return [big, price, moment, moment.astimezone(dt.timezone.utc),
            moment.replace(tzinfo=None), moment.date(),
            b"\xfb\xff\xbf" + rng.randbytes(rng.randint(3, 9)), strs, ints,
            uuid.UUID(int=rng.getrandbits(128), version=4),
            complex(rng.randint(1, 9), rng.randint(1, 9)), object(), range(3)]


@exercise("04.to_json_default", reference=to_json_default, title="Exercise 1 · to_json_default",
          hint=_HINT_JSON, timeout_s=10.0)
def check_to_json_default(impl) -> None:
    values = _json_values(run_rng("04.to_json_default"))
    for value in values:
        _judge_default(impl, value)
    doc = {"order": values[:4] + values[5:10]}
    if (got := json.dumps(doc, default=impl)) != (want := json.dumps(doc, default=to_json_default)):
        raise Wrong(f"json.dumps(doc, default=to_json_default) wrote {got} for doc={doc!r}; "
                    f"expected {want}.", _HINT_JSON)


def _written(x):
    try:
        return json.dumps(x)
    except (TypeError, ValueError):     # bytes, a set, ...: json cannot write what was returned
        return None


def _judge_default(impl, value) -> None:
    kind = type(value).__name__
    naive = isinstance(value, dt.datetime) and value.tzinfo is None
    call = f"to_json_default({value!r})"
    try:
        want = to_json_default(value)
    except (TypeError, ValueError) as e:
        want, expected = None, type(e)
    try:
        got = impl(value)
    except NotImplementedError:
        raise
    except Exception as e:
        if want is None and isinstance(e, expected):
            return
        _explain_raise(call, value, e, naive, kind, want)
    got = plain(got, "`to_json_default` converts a value and waits for nothing: make it a plain "
                     "`def`, not `async def`.")
    if want is not None and _written(got) is not None and _written(got) == _written(want):
        return
    said = f"{call} returned {got!r}"
    if naive:
        raise Wrong(f"{said} for a naive datetime (no tzinfo): a reader cannot know which time "
                    "zone it was meant in, so the same string is a different instant in Berlin "
                    "and in Tokyo. Raise ValueError for it.", _HINT_JSON)
    if want is None:
        fate = ("json.dumps then writes null: the value is lost without a word" if got is None
                else "json.dumps then writes that, and the reader gets something other than "
                     f"a {kind} back, failing later and far away")
        raise Wrong(f"{said} for a {kind}, a type not in the table: {fate}. Raise TypeError for "
                    f"it (\"Object of type {kind} is not JSON serializable\"), as json does.",
                    _HINT_JSON)
    said += f"; expected {want!r}"
    if isinstance(value, Decimal) and isinstance(got, float):
        raise Wrong(f"{said}. {got!r} is a float: the reader gets {got!r} back instead of "
                    f"{value}, the digits a float cannot hold are gone. Return str(value), the "
                    "exact digits.", _HINT_JSON)
    elif isinstance(value, dt.datetime) and isinstance(got, str):
        if got == str(value):
            raise Wrong(f"{said}: str() separates date and time with a space; ISO 8601 (and "
                        "value.isoformat()) puts a 'T' there.", _HINT_JSON)
        try:
            parsed = dt.datetime.fromisoformat(got)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            raise Wrong(f"{said}: the UTC offset is missing, so a reader cannot tell which "
                        "instant it is. Use value.isoformat().", _HINT_JSON)
        if parsed == value:
            raise Wrong(f"{said}: the same instant, written with another offset; keep the "
                        "offset the value has (value.isoformat()).", _HINT_JSON)
    elif isinstance(value, bytes):
        if got == str(value):
            raise Wrong(f"{said}: str(value) is the Python literal \"b'...'\", which no other "
                        "language reads. Encode the bytes with base64: base64.b64encode(value)"
                        ".decode('ascii').", _HINT_JSON)
        if isinstance(got, bytes):
            raise Wrong(f"{said}: that is bytes, which json cannot write either (it would call "
                        "to_json_default with them again). b64encode returns bytes: add "
                        ".decode('ascii').", _HINT_JSON)
        if got == base64.urlsafe_b64encode(value).decode("ascii"):
            raise Wrong(f"{said}: that is base64's URL-safe alphabet ('-' and '_'); the table "
                        "asks for the standard one (base64.b64encode).", _HINT_JSON)
    elif isinstance(value, (set, frozenset)):
        if isinstance(got, list) and got == list(value):
            raise Wrong(f"{said}: the set in its iteration order, which depends on hashing (for "
                        "strings it changes with every Python process), so the same set is "
                        "written differently each time. Return sorted(value).", _HINT_JSON)
        if isinstance(got, (set, frozenset)):
            raise Wrong(f"{said}: json cannot write a set (it would call to_json_default with "
                        "it again); return a list: sorted(value).", _HINT_JSON)
    elif isinstance(value, uuid.UUID) and got == value.hex:
        raise Wrong(f"{said}: value.hex has no hyphens; the table asks for str(value), the "
                    "canonical 8-4-4-4-12 form every library parses.", _HINT_JSON)
    raise Wrong(f"{said}.", _HINT_JSON)


def _explain_raise(call, value, err, naive, kind, want) -> None:
    said = f"{call} raised {raised(err)}"
    if naive:
        raise Wrong(f"{said}; for a naive datetime raise ValueError: the type is one you "
                    "support, the value is what is wrong.", _HINT_JSON)
    if want is None:
        raise Wrong(f"{said} for a {kind}, a type not in the table: raise TypeError, which "
                    "json.dumps expects (and its callers catch).", _HINT_JSON)
    if isinstance(err, UnicodeDecodeError):
        raise Wrong(f"{said}: bytes are not text, and these are not valid UTF-8. base64 turns "
                    "any bytes into ASCII text: base64.b64encode(value).decode('ascii').",
                    _HINT_JSON)
    if isinstance(err, AttributeError) and type(value) is dt.date:
        raise Wrong(f"{said}: a date has no time and no tzinfo; only datetime has. datetime is "
                    "a subclass of date, so test isinstance(value, datetime) first.", _HINT_JSON)
    raise Wrong(f"{said}; expected {want!r}.", _HINT_JSON)


# ---------------------------------------------------------------------------------------------
# Exercise 2: the shortest chain of registered migrations


def migration_path(migrations, start, target):
    """The shortest list of versions from `start` to `target` (both included) along registered
    (from_version, to_version) migrations, found breadth-first; ValueError if there is none."""
    if start == target:
        return [start]
    onward = {}
    for old, new in migrations:
        onward.setdefault(old, []).append(new)
    came_from = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for version in frontier:
            for nxt in onward.get(version, []):
                if nxt in came_from:
                    continue
                came_from[nxt] = version
                if nxt == target:
                    path = [nxt]
                    while came_from[path[-1]] is not None:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                following.append(nxt)
        frontier = following
    raise ValueError(f"no chain of migrations leads from {start!r} to {target!r}")


_HINT_PATH = ("Search breadth-first: from `start`, visit every version one migration away, then "
           "every version two away, ..., remembering for each version where you came from "
           "(and skipping versions already seen); stop at `target`, then walk back. Raise "
           "ValueError when nothing is left to visit.")


def _shortest(migrations, start, target):
    try:
        return migration_path(migrations, start, target)
    except ValueError:
        return None


def _tutorial_walk(migrations, start, target):
    """What the source tutorial's loop does: ("path"|"dead end"|"loop", versions visited)."""
    path = [start]
    while path[-1] != target:
        onward = [new for old, new in migrations if old == path[-1]]
        if not onward:
            return "dead end", path
        path.append(onward[0])
        if len(path) > len(migrations) + 1:
            return "loop", path
    return "path", path


def _path_cases(rng) -> list[tuple[list, str, str]]:
    """(migrations, start, target), each built so that one classic mistake shows."""
    pool = [f"{major}.{minor}" for major in range(1, 7) for minor in range(4)]
    v = sorted(rng.sample(pool, 7), key=lambda name: tuple(map(int, name.split("."))))
    chain = [(v[0], v[1]), (v[1], v[2]), (v[2], v[3])]
    rng.shuffle(chain)
    cases = [
        (chain, v[0], v[3]),                                               # a plain chain
        (list(chain), v[1], v[1]),                                         # nothing to do
        ([(v[0], v[1]), (v[0], v[2]), (v[2], v[3])], v[0], v[3]),          # dead end first
        ([(v[0], v[1]), (v[1], v[0]), (v[1], v[2])], v[0], v[2]),          # a downgrade first
        ([(v[0], v[1]), (v[0], v[2]), (v[2], v[3]), (v[3], v[4]), (v[0], v[4])], v[0], v[4]),
        ([(v[0], v[1]), (v[1], v[2]), (v[2], v[3]), (v[0], v[3])], v[0], v[3]),  # shortcut last
        ([(v[1], v[0]), (v[1], v[2])], v[0], v[2]),                        # only backwards
        ([(v[0], v[1]), (v[1], v[2]), (v[2], v[3]), (v[3], v[0])], v[0], v[3]),
        ([(v[0], v[1]), (v[1], v[2]), (v[2], v[0]), (v[3], v[4])], v[0], v[4]),  # cycle, no path
        ([(v[0], v[1]), (v[1], v[2])], v[0], v[5]),                        # target unknown
    ]
    for _ in range(4):                                                     # random graphs
        pairs = [(a, b) for a in v for b in v if a != b]
        start, target = rng.sample(v, 2)
        cases.append((rng.sample(pairs, rng.randint(5, 10)), start, target))
    return cases


@exercise("04.migration_path", reference=migration_path, title="Exercise 2 · migration_path",
          hint=_HINT_PATH, timeout_s=10.0)
def check_migration_path(impl) -> None:
    for migrations, start, target in _path_cases(run_rng("04.migration_path")):
        _judge_path(impl, migrations, start, target)


class _GoesRound(BaseException):
    """Raised inside the answer once it has read far more migrations than any search needs (a
    BaseException, so the answer's `except Exception` does not swallow it)."""


class _Counted(list):
    """The migrations, counting every one the answer reads: a search that forgets the versions
    it has visited reads them again and again round a cycle, and is stopped at once instead of
    hanging until the guard's time limit (chapter 04, exercise 2)."""
    LIMIT = 50_000      # a breadth-first search on these graphs reads fewer than 200

    reads = 0

    def _read(self, n: int = 1) -> None:
        self.reads += n
        if self.reads > self.LIMIT:
            raise _GoesRound

    def __iter__(self):
        for item in super().__iter__():
            self._read()
            yield item

    def __getitem__(self, index):
        self._read()
        return super().__getitem__(index)


def _cycle(migrations: list, start: str) -> list:
    """A cycle of migrations reachable from `start`, as versions (first == last), or []."""
    onward, path, on_path, done = {}, [], {}, set()
    for old, new in migrations:
        onward.setdefault(old, []).append(new)

    def visit(version):
        if version in on_path:
            return path[on_path[version]:] + [version]
        if version in done:
            return []
        on_path[version] = len(path)
        path.append(version)
        for nxt in onward.get(version, []):
            if found := visit(nxt):
                return found
        path.pop()
        del on_path[version]
        done.add(version)
        return []
    return visit(start)


def _explain_cycle(before: list, start: str, target: str, want, where: str) -> None:
    loop = " -> ".join(_cycle(before, start)) or "a loop"
    told = f"migration_path read the migrations over and over and did not stop {where}"
    if want is None:
        raise Wrong(f"{told}: a cycle of migrations ({loop}) with no path: remember the versions "
                    "you have visited, skip them, and raise ValueError when nothing new is "
                    "left to visit.", _HINT_PATH) from None
    raise Wrong(f"{told}, although the path is {want!r}: it went round the cycle of migrations "
                f"({loop}); remember the versions you have visited and never go back to one.",
                _HINT_PATH) from None


def _judge_path(impl, migrations: list, start: str, target: str) -> None:
    before = list(migrations)
    want = _shortest(before, start, target)
    where = f"for migrations={before!r}, start={start!r}, target={target!r}"
    def said(what) -> str:
        return f"migration_path returned {what} {where}"
    err = got = None
    counted = _Counted(migrations)      # the answer gets a copy that counts reads
    try:
        got = impl(counted, start, target)
    except NotImplementedError:
        raise
    except _GoesRound:
        _explain_cycle(before, start, target, want, where)
    except ValueError as e:
        err = e
    except RecursionError:
        raise Wrong(f"migration_path raised RecursionError {where}: a recursive search that does "
                    "not remember the versions it has already visited goes round a cycle of "
                    "migrations for ever; keep a set of visited versions.", _HINT_PATH) from None
    except Exception as e:
        fix = "raise ValueError when there is no path" if want is None else f"the path is {want!r}"
        if isinstance(e, KeyError) and e.args and e.args[0] in {v for m in before for v in m}:
            fix += (f" ({e.args[0]!r} has no migration registered from it, so it is no key of "
                    "your dict: use .get(version, []))")
        raise Wrong(f"migration_path raised {raised(e)} {where}; {fix}.", _HINT_PATH) from None
    got = plain(got, "`migration_path` computes a list and waits for nothing: make it a plain "
                     "`def`, not `async def`.")
    if counted != before:
        raise Wrong(f"migration_path changed the list of migrations it was given {where} "
                    f"(afterwards: {counted!r}): read it, do not modify it; the serializer "
                    "keeps using its registered migrations.", _HINT_PATH)
    if err is not None:
        if want is None:
            return
        told = f"migration_path raised ValueError ({err}) {where}, but there is a path: {want!r}."
        if start == target:
            raise Wrong(f"{told} start and target are the same version: nothing to migrate, "
                        f"so the path is [{start!r}].", _HINT_PATH)
        kind, walked = _tutorial_walk(before, start, target)
        if kind == "dead end":
            raise Wrong(f"{told} Taking the first migration registered from each version (the "
                        f"source tutorial's loop) goes {' -> '.join(walked)} and stops at a dead "
                        "end; try every migration registered from a version, not only the "
                        "first.", _HINT_PATH)
        raise Wrong(f"{told} Try every migration registered from each version.", _HINT_PATH)
    if want is None:
        if got is None:
            raise Wrong(f"{said('None')} instead of raising ValueError: there is no path, "
                        "and a caller that gets None carries on with a payload it never "
                        "migrated. Raise ValueError saying there is no path.", _HINT_PATH)
        if isinstance(got, list):
            _judge_steps(got, before, said(repr(got)))
        raise Wrong(f"{said(repr(got))}, but no chain of migrations leads there: raise "
                    "ValueError.", _HINT_PATH)
    said = said(repr(got))
    if not isinstance(got, list):
        raise Wrong(f"{said}; return a list of versions: {want!r}.", _HINT_PATH)
    if got and all(isinstance(x, tuple) for x in got):
        raise Wrong(f"{said}: those are migrations; return the versions, {want!r}.", _HINT_PATH)
    if start == target and got != [start]:
        raise Wrong(f"{said}: start and target are the same version, so the path is "
                    f"[{start!r}] (nothing to migrate).", _HINT_PATH)
    if not got or got[0] != start or got[-1] != target:
        end = f"start with start {start!r}" if not got or got[0] != start else \
            f"end with target {target!r}"
        raise Wrong(f"{said}: the path does not {end}; it includes both ends: {want!r}.", _HINT_PATH)
    _judge_steps(got, before, said)
    if len(got) > len(want):
        kind, walked = _tutorial_walk(before, start, target)
        why = ("You took the first migration registered from each version, as the source "
               "tutorial does, so a shorter chain registered later is never tried."
               if kind == "path" and walked == got else
               "A depth-first search returns the first path it finds, not the shortest.")
        raise Wrong(f"{said}: {len(got)} versions, but {want!r} is shorter ({len(want)}). {why} "
                    "Search breadth-first, one migration further at a time.", _HINT_PATH)


def _judge_steps(got, registered: list, said: str) -> None:
    for old, new in zip(got, got[1:]):
        if (old, new) in registered:
            continue
        if (new, old) in registered:
            raise Wrong(f"{said}: it steps {old!r} -> {new!r}, but only {new!r} -> {old!r} is "
                        "registered. A migration only goes from its first version to its "
                        "second, never back.", _HINT_PATH)
        raise Wrong(f"{said}: {old!r} -> {new!r} is not a registered migration.", _HINT_PATH)


from .serialization_format import FORMATS, KEYS, RULES, choose_format  # noqa: E402,F401
