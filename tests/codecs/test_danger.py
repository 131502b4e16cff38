"""The marked danger demo (chapter 04): loading a pickle, or YAML with Python tags, runs a
function the bytes name; safe_load refuses. The payload only appends to danger.TRIPPED."""
import pickle
import subprocess
import sys

import pytest
import yaml

from labkit.codecs import danger


def test_pickle_payload_runs_code_on_load_not_on_dump():
    r = danger.pickle_rce_demo()
    assert r["flag_set"] is True
    assert r["ran"] == ["pickle"]
    assert r["loaded"].startswith("code chosen by the sender ran")
    # The bytes name the function by module path and call it with REDUCE.
    assert b"labkit.codecs.danger" in r["payload_bytes"] and b"_trip" in r["payload_bytes"]
    ops = [o.split()[0] for o in r["opcodes"]]
    assert "STACK_GLOBAL" in ops and "REDUCE" in ops and ops[-1] == "STOP"
    # Loading the same bytes again (a receiver) runs it again; nothing else touched it.
    danger.reset()
    pickle.loads(r["payload_bytes"])
    assert danger.TRIPPED == ["pickle"]
    danger.reset()


def test_pickle_payload_runs_in_a_fresh_process_that_never_imported_labkit_codecs():
    """The receiver need not import the module: pickle imports it for the sender."""
    payload = danger.pickle_rce_demo()["payload_bytes"]
    code = ("import pickle, sys; v = pickle.loads(sys.stdin.buffer.read()); "
            "from labkit.codecs import danger; print(danger.TRIPPED)")
    out = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == "['pickle']"


def test_yaml_loaders_side_by_side():
    r = danger.yaml_full_loader_demo()
    assert set(r) == {"unsafe_load", "full_loader", "safe_load"}
    # unsafe_load calls the function while loading.
    assert r["unsafe_load"]["apply"]["flag_set"] is True
    assert "ran during load (yaml)" in r["unsafe_load"]["apply"]["value"]
    # PyYAML 6 FullLoader refuses the call but still hands back an arbitrary function.
    assert r["full_loader"]["apply"]["flag_set"] is False
    assert r["full_loader"]["apply"]["refused"].startswith("ConstructorError")
    assert r["full_loader"]["name"]["value"] is danger._trip
    # safe_load refuses both, and nothing ran.
    for attempt in ("apply", "name"):
        assert r["safe_load"][attempt]["flag_set"] is False
        assert r["safe_load"][attempt]["refused"].startswith("ConstructorError")
        assert "python/" in r["safe_load"][attempt]["refused"]
    assert danger.TRIPPED == []


def test_safe_load_raises_the_error_named_in_the_demo():
    with pytest.raises(yaml.constructor.ConstructorError, match="python/object/apply"):
        yaml.safe_load(danger.YAML_APPLY)


def test_tripped_log_is_bounded():
    danger.reset()
    for i in range(150):
        danger._trip(i)
    assert len(danger.TRIPPED) == 100
    danger.reset()
    assert danger.TRIPPED == []


def test_danger_pickle_round_trips_python_types():
    import datetime
    import decimal
    v = {1: {2, 3}, "t": (1, b"x"), "d": decimal.Decimal("0.1"),
         "when": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)}
    back = danger.danger_pickle.decode(danger.danger_pickle.encode(v))
    assert back == v and type(back["t"]) is tuple and type(back[1]) is set


def test_importing_the_demo_imports_no_yaml():
    code = "import sys, labkit.codecs.danger; print('yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
