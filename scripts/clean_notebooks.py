"""Strip outputs, execution counts and volatile metadata from notebooks, in place.

Idempotent: running it twice changes nothing the second time. `--check` changes nothing and
exits 1 naming each notebook that would change (tests use it).

    python scripts/clean_notebooks.py notebooks            # clean
    python scripts/clean_notebooks.py --check notebooks    # verify
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

KEEP_CELL_METADATA = ("tags",)
KEEP_NB_METADATA = ("kernelspec", "language_info", "labkit")


def clean(nb: dict) -> dict:
    """A cleaned copy of a notebook's JSON."""
    nb = json.loads(json.dumps(nb))
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in KEEP_NB_METADATA}
    if "language_info" in nb["metadata"]:
        nb["metadata"]["language_info"] = {"name": "python"}
    for cell in nb.get("cells", []):
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items()
                            if k in KEEP_CELL_METADATA}
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=pathlib.Path)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    files = [f for p in args.paths for f in (sorted(p.rglob("*.ipynb")) if p.is_dir() else [p])
             if ".ipynb_checkpoints" not in f.parts]
    dirty = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        new = dump(clean(json.loads(text)))
        if new != text:
            dirty.append(f)
            if not args.check:
                f.write_text(new, encoding="utf-8")
    verb = "would change" if args.check else "cleaned"
    for f in dirty:
        print(f"{verb}: {f}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
