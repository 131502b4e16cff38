"""Compile a `.proto` file from data/ at runtime and import what protoc generates.

Chapter 03. The course commits only the schema (data/shop.proto), never generated code:
`load("shop.proto")` runs grpcio-tools' protoc once into a cache directory and imports the
generated ``<name>_pb2`` (messages) and ``<name>_pb2_grpc`` (stubs and servicers) modules.

- Cache: ``$LABKIT_CACHE/proto/<key>/`` (default ``~/.cache/labkit/proto/<key>/``), where the
  key is a SHA-256 of the file's bytes, its name and the grpcio-tools version: editing the
  .proto or upgrading grpcio-tools compiles again, anything else reuses the cached modules.
  A second `load` in the same process returns the same namespace without touching the disk.
- Safe when two processes compile at once: each writes into its own temporary directory and
  renames it into place; the loser of the race throws its copy away.
- sys.path is never changed: the modules are imported from their files, under the names the
  generated code expects (``shop_pb2``), which is what ``shop_pb2_grpc`` imports.
- A syntax error gives a ValueError carrying protoc's own message (file:line:column).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import types

__all__ = ["load", "data_dir", "cache_root", "compiles"]

#: How many times this process ran protoc (tests check that a cached load does not).
compiles = 0
_loaded: dict[tuple[str, str], types.SimpleNamespace] = {}   # (path, key) -> namespace
_lock = threading.Lock()
PROTOC_TIMEOUT_S = 120.0


def data_dir() -> pathlib.Path:
    """The repository's data/ directory (next to the labkit package)."""
    return pathlib.Path(__file__).resolve().parent.parent.parent / "data"


def cache_root() -> pathlib.Path:
    """Where compiled protos are kept: $LABKIT_CACHE/proto, else ~/.cache/labkit/proto."""
    base = os.environ.get("LABKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "labkit")
    return pathlib.Path(base) / "proto"


def _tools_version() -> str:
    try:
        return importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _source(proto_name, folder) -> pathlib.Path:
    if not isinstance(proto_name, str) or not proto_name.endswith(".proto") or \
            os.sep in proto_name or "/" in proto_name or proto_name.startswith("."):
        raise ValueError(f"proto_name must be a file name in data/ ending in .proto, such as "
                         f"\"shop.proto\", got {proto_name!r}")
    stem = proto_name[:-len(".proto")]
    if not stem.isidentifier():
        raise ValueError(f"proto_name must be a valid Python module name plus .proto (protoc "
                         f"names the modules {stem}_pb2), got {proto_name!r}")
    if folder is None:
        folder = data_dir()
    elif not isinstance(folder, (str, os.PathLike)):
        raise ValueError(f"data_dir must be a directory path or None, got {folder!r}")
    path = pathlib.Path(folder) / proto_name
    if not path.is_file():
        raise ValueError(f"proto_name {proto_name!r}: no such file {path}")
    return path.resolve()


def _compile(path: pathlib.Path, target: pathlib.Path) -> None:
    """Run protoc on `path`, writing into a fresh directory renamed to `target`."""
    global compiles
    import grpc_tools  # here: `import labkit` never loads grpc
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"   # google/protobuf/*.proto
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        compiles += 1
        done = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{path.parent}", f"-I{include}",
             f"--python_out={tmp}", f"--grpc_python_out={tmp}", path.name],
            capture_output=True, text=True, timeout=PROTOC_TIMEOUT_S, cwd=path.parent)
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip()
            raise ValueError(f"proto_name {path.name!r} does not compile; protoc says:\n{message}")
        try:
            os.rename(tmp, target)            # atomic; fails if another process got there first
        except OSError:
            if not (target / f"{path.stem}_pb2_grpc.py").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _import(name: str, file: pathlib.Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                # the generated _pb2_grpc does `import shop_pb2`
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load(proto_name: str = "shop.proto", *, data_dir: str | os.PathLike | None = None
         ) -> types.SimpleNamespace:
    """Compile (once, cached) and import `proto_name` from data/; returns a namespace.

    The namespace has ``pb2`` and ``pb2_grpc`` (the two generated modules), every message
    class and every ``<Service>Stub`` / ``<Service>Servicer`` / ``add_<Service>Servicer_to_server``
    as attributes (``shop.User``, ``shop.ShopStub``), plus ``path`` and ``cache_dir``.
    `data_dir` overrides where the file is looked for (default: the repository's data/).
    """
    path = _source(proto_name, data_dir)
    raw = path.read_bytes()
    key = hashlib.sha256(b"%s\0%s\0%s" % (path.name.encode(), _tools_version().encode(), raw)
                         ).hexdigest()[:24]
    with _lock:
        known = _loaded.get((str(path), key))
        if known is not None:
            return known
        target = cache_root() / key
        stem = path.stem
        if not (target / f"{stem}_pb2_grpc.py").is_file():
            _compile(path, target)
        clash = sys.modules.get(f"{stem}_pb2")
        if clash is not None and getattr(clash, "__file__", None) != str(target / f"{stem}_pb2.py"):
            if any(k[0] == str(path) for k in _loaded):
                raise ValueError(f"proto_name {proto_name!r} changed since it was loaded in this "
                                 f"process; protobuf keeps one version per process: restart "
                                 f"the kernel (Kernel > Restart Kernel) to load the new one")
        pb2 = _import(f"{stem}_pb2", target / f"{stem}_pb2.py")
        pb2_grpc = _import(f"{stem}_pb2_grpc", target / f"{stem}_pb2_grpc.py")
        ns = types.SimpleNamespace(pb2=pb2, pb2_grpc=pb2_grpc, path=path, cache_dir=target)
        for name in pb2.DESCRIPTOR.message_types_by_name:
            setattr(ns, name, getattr(pb2, name))
        for name in dir(pb2_grpc):
            if name.endswith(("Stub", "Servicer")) or (name.startswith("add_") and
                                                       name.endswith("_to_server")):
                setattr(ns, name, getattr(pb2_grpc, name))
        _loaded[(str(path), key)] = ns
        return ns
