"""Chapter 04, exercise 3 (notebooks/04_serialization.ipynb): `choose_format`, a format from
stated needs, checked on all 64 combinations of the six keys (False keys sometimes given,
sometimes left out; the order varies per run). The table is in `labkit.checks.serialization`'s
docstring. Imported at the end of `labkit.checks.serialization`, so it registers third."""
from __future__ import annotations

import itertools

from . import Wrong, exercise, plain, run_rng

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
    if falses and got == _by_rules(set(given))[1] and _without(impl, given, falses) == want:
        raise Wrong(f"{said}; expected {want!r}. You treated {', '.join(map(repr, falses))}, "
                    "set to False, as if it were True: `key in needs` is True for a key set to "
                    "False (chapter 3's bug again). Use needs.get(key, False).", _HINT_3)
    _, _, text, why = RULES[number - 1]
    msg = f"{said}; expected {want!r}: rule {number} ({text}) is the first that applies: {why}."
    for later, (keys, fmt, text2, _) in enumerate(RULES[number:], number + 1):
        if keys and fmt == got and all(k in true_keys for k in keys):   # rule 7 always applies
            msg += f" Rule {later} ({text2}) applies too, but the first rule that applies wins."
            break
    else:
        if got == "json" and "untrusted_input" in true_keys and "human_edited" not in true_keys:
            msg += (" untrusted_input alone decides nothing: rule 2 needs human_edited and "
                    "untrusted_input together (it keeps YAML away from strangers).")
    raise Wrong(msg, _HINT_3)


def _without(impl, given: dict, keys: list):
    """What the answer returns once `keys` (set to False) are left out, or None if it fails:
    the proof that those keys, and not another mistake, changed its answer."""
    try:
        return impl({k: v for k, v in given.items() if k not in keys})
    except Exception:
        return None
