"""DANGER DEMO (chapter 04): why unpickling bytes from the network runs someone else's code.

    !!!  Nothing here is a codec to use. Never call pickle.loads, yaml.unsafe_load or
    !!!  yaml.load(..., Loader=FullLoader) on bytes that came from outside the process.

Pickle is not a data format but a tiny program for a stack machine: its opcodes may name any
importable callable (GLOBAL / STACK_GLOBAL) and call it with arguments (REDUCE). An object
says which call recreates it through ``__reduce__``, and the *sender* writes that into the
bytes, so whoever controls the bytes chooses the function the receiver runs while loading,
before any of your code sees a value: remote code execution. Signing the bytes (HMAC) only
helps if the sender is as trusted as yourself; a restricted ``Unpickler.find_class`` is a
deny-list that keeps being bypassed. Use a data-only format (JSON, MessagePack, Protobuf, ...).

YAML's Python tags are the same hole: ``yaml.unsafe_load`` builds any Python object the text
names (``!!python/object/apply:`` calls a function). PyYAML 6's FullLoader refuses
``apply``/``new``/``object`` tags but still returns any function of an already-imported module
for ``!!python/name:`` (e.g. ``os.system``), so it is not for untrusted input either;
``yaml.safe_load`` builds only plain data and refuses every Python tag.

The payloads here are harmless: the function they name is `_trip`, which only records that it
ran in this module (no os.system, nothing outside the process).
"""
from __future__ import annotations

import pickle
import pickletools

__all__ = ["TRIPPED", "reset", "pickle_rce_demo", "pickle_opcodes", "yaml_full_loader_demo",
           "YAML_APPLY", "YAML_NAME", "danger_pickle"]

# Who ran `_trip` (bounded: the demos reset it; at most 100 entries kept).
TRIPPED: list[str] = []
_TRIP_PATH = f"{__name__}._trip"
YAML_APPLY = f"!!python/object/apply:{_TRIP_PATH} [yaml]\n"   # calls _trip("yaml") on load
YAML_NAME = f"!!python/name:{_TRIP_PATH}\n"                    # hands back the function itself


def _trip(who: str) -> str:
    """The 'attacker's' function: harmless, it only records that loading ran it."""
    if len(TRIPPED) < 100:
        TRIPPED.append(str(who))
    return f"code chosen by the sender ran during load ({who})"


def reset() -> None:
    """Clear the flag before a demo."""
    TRIPPED.clear()


class _Payload:
    """What an attacker pickles: ``__reduce__`` says 'to rebuild me, call _trip("pickle")'."""

    def __reduce__(self):
        return (_trip, ("pickle",))


def pickle_opcodes(data: bytes) -> list[str]:
    """The pickle program's opcodes, with arguments (pickletools.genops; nothing executed)."""
    out = []
    for op, arg, _pos in pickletools.genops(data):
        out.append(op.name if arg is None else f"{op.name} {arg!r}")
    return out


def pickle_rce_demo() -> dict:
    """Build a harmless malicious pickle, load it with pickle.loads, show that code ran.

    Returns {"flag_set": True, "payload_bytes": the bytes, "opcodes": [...], "loaded": what
    pickle.loads returned, "ran": ["pickle"]}. The payload names `_trip` by module path; any
    importable function (os.system, subprocess.Popen, ...) would be called the same way.
    """
    reset()
    payload = pickle.dumps(_Payload(), protocol=4)
    if TRIPPED:  # pragma: no cover - dumping never calls __reduce__'s function
        raise RuntimeError("dumping ran the payload")
    loaded = pickle.loads(payload)  # noqa: S301 - the point of the demo
    return {"flag_set": bool(TRIPPED), "payload_bytes": payload,
            "opcodes": pickle_opcodes(payload), "loaded": loaded, "ran": list(TRIPPED)}


def _attempt(load, text: str) -> dict:
    """Run one YAML loader on `text`: what came back, whether _trip ran, or the refusal."""
    reset()
    try:
        value = load(text)
    except Exception as e:  # noqa: BLE001 - the refusal is the result
        first = str(e).splitlines()[0] if str(e) else ""
        return {"refused": f"{type(e).__name__}: {first}", "flag_set": bool(TRIPPED)}
    return {"value": value, "flag_set": bool(TRIPPED)}


def yaml_full_loader_demo() -> dict:
    """The same harmless constructor under three PyYAML loaders (chapter 04).

    Returns {loader: {"apply": attempt, "name": attempt}} for "unsafe_load", "full_loader"
    and "safe_load"; an attempt is {"value", "flag_set"} or {"refused", "flag_set"}.
    "apply" is `YAML_APPLY` (calls `_trip` while loading), "name" is `YAML_NAME` (returns the
    function object). unsafe_load runs the call; FullLoader refuses it but returns the
    function; safe_load refuses both with a ConstructorError.
    """
    import yaml  # loaded here: `import labkit.codecs` stays light

    loaders = {
        "unsafe_load": yaml.unsafe_load,  # noqa: S506 - the point of the demo
        "full_loader": lambda s: yaml.load(s, Loader=yaml.FullLoader),  # noqa: S506
        "safe_load": yaml.safe_load,
    }
    out = {name: {"apply": _attempt(load, YAML_APPLY), "name": _attempt(load, YAML_NAME)}
           for name, load in loaders.items()}
    reset()
    return out


class _DangerPickle:
    """Pickle with the codec interface, for the type-fidelity contrast only: it returns every
    Python type unchanged *because* the bytes may call any function. Trusted bytes only."""

    name = "pickle (danger)"
    content_type = "application/x-python-pickle"

    def encode(self, obj) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, data: bytes):
        return pickle.loads(data)  # noqa: S301 - trusted, in-process bytes only


danger_pickle = _DangerPickle()
