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
"""
from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import uuid
from decimal import Decimal

from . import Wrong, exercise, plain, raised, run_rng

# ---------------------------------------------------------------------------------------------
# Exercise 1: what json.dumps writes for the types it does not know


def to_json_default(value):
    """What json.dumps(obj, default=to_json_default) writes for a value json cannot encode:
    the table of exercise 2; TypeError for other types, ValueError for a naive datetime."""
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


_HINT_2 = ("One `if isinstance(value, ...)` per row of the table, datetime before date (a "
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
          hint=_HINT_2, timeout_s=10.0)
def check_to_json_default(impl) -> None:
    values = _json_values(run_rng("04.to_json_default"))
    for value in values:
        _judge_default(impl, value)
    doc = {"order": values[:4] + values[5:10]}
    if (got := json.dumps(doc, default=impl)) != (want := json.dumps(doc, default=to_json_default)):
        raise Wrong(f"json.dumps(doc, default=to_json_default) wrote {got} for doc={doc!r}; "
                    f"expected {want}.", _HINT_2)


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
                    "and in Tokyo. Raise ValueError for it.", _HINT_2)
    if want is None:
        fate = ("json.dumps then writes null: the value is lost without a word" if got is None
                else "json.dumps then writes that, and the reader gets something other than "
                     f"a {kind} back, failing later and far away")
        raise Wrong(f"{said} for a {kind}, a type not in the table: {fate}. Raise TypeError for "
                    f"it (\"Object of type {kind} is not JSON serializable\"), as json does.",
                    _HINT_2)
    said += f"; expected {want!r}"
    if isinstance(value, Decimal) and isinstance(got, float):
        raise Wrong(f"{said}. {got!r} is a float: the reader gets {got!r} back instead of "
                    f"{value}, the digits a float cannot hold are gone. Return str(value), the "
                    "exact digits.", _HINT_2)
    elif isinstance(value, dt.datetime) and isinstance(got, str):
        if got == str(value):
            raise Wrong(f"{said}: str() separates date and time with a space; ISO 8601 (and "
                        "value.isoformat()) puts a 'T' there.", _HINT_2)
        try:
            parsed = dt.datetime.fromisoformat(got)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            raise Wrong(f"{said}: the UTC offset is missing, so a reader cannot tell which "
                        "instant it is. Use value.isoformat().", _HINT_2)
        if parsed == value:
            raise Wrong(f"{said}: the same instant, written with another offset; keep the "
                        "offset the value has (value.isoformat()).", _HINT_2)
    elif isinstance(value, bytes):
        if got == str(value):
            raise Wrong(f"{said}: str(value) is the Python literal \"b'...'\", which no other "
                        "language reads. Encode the bytes with base64: base64.b64encode(value)"
                        ".decode('ascii').", _HINT_2)
        if isinstance(got, bytes):
            raise Wrong(f"{said}: that is bytes, which json cannot write either (it would call "
                        "to_json_default with them again). b64encode returns bytes: add "
                        ".decode('ascii').", _HINT_2)
        if got == base64.urlsafe_b64encode(value).decode("ascii"):
            raise Wrong(f"{said}: that is base64's URL-safe alphabet ('-' and '_'); the table "
                        "asks for the standard one (base64.b64encode).", _HINT_2)
    elif isinstance(value, (set, frozenset)):
        if isinstance(got, list) and got == list(value):
            raise Wrong(f"{said}: the set in its iteration order, which depends on hashing (for "
                        "strings it changes with every Python process), so the same set is "
                        "written differently each time. Return sorted(value).", _HINT_2)
        if isinstance(got, (set, frozenset)):
            raise Wrong(f"{said}: json cannot write a set (it would call to_json_default with "
                        "it again); return a list: sorted(value).", _HINT_2)
    elif isinstance(value, uuid.UUID) and got == value.hex:
        raise Wrong(f"{said}: value.hex has no hyphens; the table asks for str(value), the "
                    "canonical 8-4-4-4-12 form every library parses.", _HINT_2)
    raise Wrong(f"{said}.", _HINT_2)


def _explain_raise(call, value, err, naive, kind, want) -> None:
    said = f"{call} raised {raised(err)}"
    if naive:
        raise Wrong(f"{said}; for a naive datetime raise ValueError: the type is one you "
                    "support, the value is what is wrong.", _HINT_2)
    if want is None:
        raise Wrong(f"{said} for a {kind}, a type not in the table: raise TypeError, which "
                    "json.dumps expects (and its callers catch).", _HINT_2)
    if isinstance(err, UnicodeDecodeError):
        raise Wrong(f"{said}: bytes are not text, and these are not valid UTF-8. base64 turns "
                    "any bytes into ASCII text: base64.b64encode(value).decode('ascii').",
                    _HINT_2)
    if isinstance(err, AttributeError) and type(value) is dt.date:
        raise Wrong(f"{said}: a date has no time and no tzinfo; only datetime has. datetime is "
                    "a subclass of date, so test isinstance(value, datetime) first.", _HINT_2)
    raise Wrong(f"{said}; expected {want!r}.", _HINT_2)


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


_HINT_1 = ("Search breadth-first: from `start`, visit every version one migration away, then "
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
          hint=_HINT_1, timeout_s=10.0)
def check_migration_path(impl) -> None:
    for migrations, start, target in _path_cases(run_rng("04.migration_path")):
        _judge_path(impl, migrations, start, target)


def _judge_path(impl, migrations: list, start: str, target: str) -> None:
    before = list(migrations)
    want = _shortest(before, start, target)
    where = f"for migrations={before!r}, start={start!r}, target={target!r}"
    def said(what) -> str:
        return f"migration_path returned {what} {where}"
    err = got = None
    try:
        got = impl(migrations, start, target)
    except NotImplementedError:
        raise
    except ValueError as e:
        err = e
    except RecursionError:
        raise Wrong(f"migration_path raised RecursionError {where}: a recursive search that does "
                    "not remember the versions it has already visited goes round a cycle of "
                    "migrations for ever; keep a set of visited versions.", _HINT_1) from None
    except Exception as e:
        fix = "raise ValueError when there is no path" if want is None else f"the path is {want!r}"
        if isinstance(e, KeyError) and e.args and e.args[0] in {v for m in before for v in m}:
            fix += (f" ({e.args[0]!r} has no migration registered from it, so it is no key of "
                    "your dict: use .get(version, []))")
        raise Wrong(f"migration_path raised {raised(e)} {where}; {fix}.", _HINT_1) from None
    got = plain(got, "`migration_path` computes a list and waits for nothing: make it a plain "
                     "`def`, not `async def`.")
    if migrations != before:
        raise Wrong(f"migration_path changed the list of migrations it was given {where} "
                    f"(afterwards: {migrations!r}): read it, do not modify it; the serializer "
                    "keeps using its registered migrations.", _HINT_1)
    if err is not None:
        if want is None:
            return
        told = f"migration_path raised ValueError ({err}) {where}, but there is a path: {want!r}."
        if start == target:
            raise Wrong(f"{told} start and target are the same version: nothing to migrate, "
                        f"so the path is [{start!r}].", _HINT_1)
        kind, walked = _tutorial_walk(before, start, target)
        if kind == "dead end":
            raise Wrong(f"{told} Taking the first migration registered from each version (the "
                        f"source tutorial's loop) goes {' -> '.join(walked)} and stops at a dead "
                        "end; try every migration registered from a version, not only the "
                        "first.", _HINT_1)
        raise Wrong(f"{told} Try every migration registered from each version.", _HINT_1)
    if want is None:
        if got is None:
            raise Wrong(f"{said('None')} instead of raising ValueError: there is no path, "
                        "and a caller that gets None carries on with a payload it never "
                        "migrated. Raise ValueError saying there is no path.", _HINT_1)
        if isinstance(got, list):
            _judge_steps(got, before, said(repr(got)))
        raise Wrong(f"{said(repr(got))}, but no chain of migrations leads there: raise "
                    "ValueError.", _HINT_1)
    said = said(repr(got))
    if not isinstance(got, list):
        raise Wrong(f"{said}; return a list of versions: {want!r}.", _HINT_1)
    if got and all(isinstance(x, tuple) for x in got):
        raise Wrong(f"{said}: those are migrations; return the versions, {want!r}.", _HINT_1)
    if start == target and got != [start]:
        raise Wrong(f"{said}: start and target are the same version, so the path is "
                    f"[{start!r}] (nothing to migrate).", _HINT_1)
    if not got or got[0] != start or got[-1] != target:
        end = f"start with start {start!r}" if not got or got[0] != start else \
            f"end with target {target!r}"
        raise Wrong(f"{said}: the path does not {end}; it includes both ends: {want!r}.", _HINT_1)
    _judge_steps(got, before, said)
    if len(got) > len(want):
        kind, walked = _tutorial_walk(before, start, target)
        why = ("You took the first migration registered from each version, as the source "
               "tutorial does, so a shorter chain registered later is never tried."
               if kind == "path" and walked == got else
               "A depth-first search returns the first path it finds, not the shortest.")
        raise Wrong(f"{said}: {len(got)} versions, but {want!r} is shorter ({len(want)}). {why} "
                    "Search breadth-first, one migration further at a time.", _HINT_1)


def _judge_steps(got, registered: list, said: str) -> None:
    for old, new in zip(got, got[1:]):
        if (old, new) in registered:
            continue
        if (new, old) in registered:
            raise Wrong(f"{said}: it steps {old!r} -> {new!r}, but only {new!r} -> {old!r} is "
                        "registered. A migration only goes from its first version to its "
                        "second, never back.", _HINT_1)
        raise Wrong(f"{said}: {old!r} -> {new!r} is not a registered migration.", _HINT_1)


# ---------------------------------------------------------------------------------------------
# Exercise 3: a format from stated needs


def choose_format(needs):
    """The format for `needs` (a dict of the six keys, True/False, missing = False): the first
    rule of exercise 3's table that applies."""
    def want(key):
        return needs.get(key) is True
    if want("browser_readable"):
        return "json"
    if want("human_edited"):
        return "json" if want("untrusted_input") else "yaml"
    if want("schema_required"):
        return "avro" if want("stored_files") else "protobuf"
    if want("smallest"):
        return "msgpack"
    return "json"


KEYS = ("browser_readable", "human_edited", "untrusted_input", "schema_required",
        "stored_files", "smallest")
FORMATS = ("json", "msgpack", "protobuf", "yaml", "avro")
#: (keys that must all be True, format, rule as the exercise states it, why)
RULES = (
    (("browser_readable",), "json", "browser_readable",
     "a browser parses JSON natively (response.json()); every other format needs a library in "
     "the page"),
    (("human_edited", "untrusted_input"), "json", "human_edited and untrusted_input",
     "YAML from senders you do not control is a risk even with yaml.safe_load (aliases expand "
     "a few hundred bytes into gigabytes, 'billion laughs'; 'no' becomes False), and JSON is "
     "still easy to edit by hand"),
    (("human_edited",), "yaml", "human_edited",
     "YAML is made for people: comments, no braces, few quotes"),
    (("schema_required", "stored_files"), "avro", "schema_required and stored_files",
     "an Avro file carries the writer's schema, so a program reading it years later can still "
     "decode it"),
    (("schema_required",), "protobuf", "schema_required",
     "both sides compile the same .proto, and its field numbers keep old and new versions "
     "compatible"),
    (("smallest",), "msgpack", "smallest",
     "MessagePack is binary JSON: compact numbers, no quotes, no schema needed"),
    ((), "json", "otherwise", "nothing special is needed, and JSON is readable everywhere"),
)
_HINT_3 = ("Test the rules in their order with needs.get(key, False) (a key may be missing, or "
           "present with False) and return at the first one that applies.")


def _by_rules(true_keys) -> tuple[int, str]:
    """(number, format) of the first rule whose keys are all in `true_keys` (rule 7 has none)."""
    return next((n, fmt) for n, (keys, fmt, _, _) in enumerate(RULES, 1)
                if all(k in true_keys for k in keys))


def _needs_cases(rng) -> list[dict]:
    """All 64 combinations, fewest True keys and earliest deciding rule first (an answer meets
    the simplest case of its mistake first); False keys sometimes given, sometimes left out."""
    cases = []
    for values in itertools.product((False, True), repeat=len(KEYS)):
        combo, keys = dict(zip(KEYS, values)), list(KEYS)
        rng.shuffle(keys)
        explicit = rng.random() < 0.5
        cases.append({k: combo[k] for k in keys if combo[k] or explicit or rng.random() < 0.5})
    rng.shuffle(cases)
    return sorted(cases, key=lambda n: (sum(n.values()), _by_rules({k for k in n if n[k]})[0]))


@exercise("04.choose_format", reference=choose_format, title="Exercise 3 · choose_format",
          hint=_HINT_3, timeout_s=10.0)
def check_choose_format(impl) -> None:
    for needs in _needs_cases(run_rng("04.choose_format")):
        _judge_format(impl, needs)


def _judge_format(impl, needs: dict) -> None:
    given = dict(needs)
    where = f"for needs={given!r}"
    try:
        got = impl(needs)
    except KeyError as err:
        raise Wrong(f"choose_format raised KeyError {err} {where}: a missing key means False; "
                    "use needs.get(key, False).", _HINT_3) from None
    got = plain(got, "`choose_format` looks rules up and waits for nothing: make it a plain "
                     "`def`, not `async def`.")
    if needs != given:
        raise Wrong(f"choose_format changed its argument {where} (afterwards {needs!r}): read "
                    "it, do not modify it.", _HINT_3)
    true_keys = {k for k, v in given.items() if v is True}
    number, want = _by_rules(true_keys)
    if got == want:
        return
    said = f"choose_format returned {got!r} {where}"
    if isinstance(got, str) and got.strip().lower() == "pickle":
        raise Wrong(f"{said}: pickle is never the answer between services: unpickling runs "
                    "whatever code the sender put in the bytes (the chapter's demo sets a flag "
                    "on load). The rules give " f"{want!r}.", _HINT_3)
    if not isinstance(got, str) or got not in FORMATS:
        fix = "in lower case, " if isinstance(got, str) and got.strip().lower() in FORMATS else ""
        raise Wrong(f"{said}; return the format's name {fix}one of {', '.join(map(repr, FORMATS))}"
                    f": here {want!r}.", _HINT_3)
    falses = [k for k, v in given.items() if v is False]
    if falses and got == _by_rules(set(given))[1]:
        raise Wrong(f"{said}; expected {want!r}. You treated {', '.join(map(repr, falses))}, "
                    "set to False, as if it were True: `key in needs` is True for a key set to "
                    "False (chapter 3's bug again). Use needs.get(key, False).", _HINT_3)
    _, _, text, why = RULES[number - 1]
    msg = f"{said}; expected {want!r}: rule {number} ({text}) is the first that applies: {why}."
    for later, (keys, fmt, text2, _) in enumerate(RULES[number:], number + 1):
        if fmt == got and all(k in true_keys for k in keys):
            msg += f" Rule {later} ({text2}) applies too, but the first rule that applies wins."
            break
    raise Wrong(msg, _HINT_3)
