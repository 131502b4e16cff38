"""labkit.protocols.proto: compile a .proto from data/ at runtime, cached, safe to race."""
import os
import pathlib
import subprocess
import sys

import pytest

from labkit.protocols import proto

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache dir and no in-process memo, restored afterwards."""
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(proto, "_loaded", {})
    return tmp_path / "cache" / "proto"


def test_load_compiles_once_then_uses_the_disk_cache(fresh_cache, monkeypatch):
    before = proto.compiles
    shop = proto.load("shop.proto")
    assert proto.compiles == before + 1
    assert shop.cache_dir.parent == fresh_cache
    assert {"User", "Item", "OrderStatus", "StockChange", "ShopStub", "ShopServicer",
            "add_ShopServicer_to_server"} <= set(vars(shop))
    assert shop.User(id=3, name="Ada").SerializeToString()      # a working message class
    stamps = {p.name: p.stat().st_mtime_ns for p in shop.cache_dir.iterdir()}
    assert set(stamps) == {"shop_pb2.py", "shop_pb2_grpc.py"}
    assert proto.load("shop.proto") is shop                   # the in-process memo
    monkeypatch.setattr(proto, "_loaded", {})                 # a new kernel, same disk cache
    again = proto.load("shop.proto")
    assert proto.compiles == before + 1, "the cached load ran protoc again"
    assert {p.name: p.stat().st_mtime_ns for p in again.cache_dir.iterdir()} == stamps
    assert again.cache_dir == shop.cache_dir
    assert not [p for p in fresh_cache.iterdir() if p.name.startswith(".tmp")]


def test_sys_path_is_left_alone(fresh_cache):
    path = list(sys.path)
    proto.load("shop.proto")
    assert sys.path == path


def test_an_edited_proto_gets_a_new_cache_entry(fresh_cache, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tiny.proto").write_text('syntax = "proto3";\npackage tiny;\nmessage A { int32 x = 1; }\n')
    first = proto.load("tiny.proto", data_dir=src)
    assert first.A(x=2).x == 2
    assert first.cache_dir.parent == fresh_cache


def test_a_syntax_error_gives_protocs_message(fresh_cache, tmp_path):
    (tmp_path / "bad.proto").write_text('syntax = "proto3";\nmessage X {\n  int32 = 1;\n}\n')
    with pytest.raises(ValueError, match=r"proto_name 'bad.proto' does not compile") as err:
        proto.load("bad.proto", data_dir=tmp_path)
    assert "bad.proto:3:" in str(err.value)                  # protoc's file:line:column
    assert not [p for p in fresh_cache.iterdir()]             # nothing half-written is kept


@pytest.mark.parametrize("name", ["../shop.proto", "shop", "sub/shop.proto", 3, None,
                                  "no-such.proto", "missing.proto"])
def test_bad_names_are_refused(name, fresh_cache):
    with pytest.raises(ValueError, match="proto_name"):
        proto.load(name)


def test_bad_data_dir_is_refused(fresh_cache):
    with pytest.raises(ValueError, match="data_dir"):
        proto.load("shop.proto", data_dir=42)


def test_two_processes_compiling_at_once_both_succeed(fresh_cache):
    code = ("from labkit.protocols import proto; s = proto.load('shop.proto'); "
            "print(s.cache_dir, proto.compiles)")
    env = {**os.environ, "LABKIT_CACHE": str(fresh_cache.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    dirs = {o.split()[0] for o, _ in outs}
    assert len(dirs) == 1
    assert sorted(p.name for p in fresh_cache.iterdir()) == [pathlib.Path(dirs.pop()).name]


def test_importing_labkit_protocols_proto_does_not_load_grpc():
    code = ("import sys, labkit.protocols.proto; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'grpc_tools')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
