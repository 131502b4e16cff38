"""Write chapter 04's payload fixtures to data/fixtures/, deterministically.

The same seed gives the same bytes on every machine and every run (tests check it), so the
fixtures can be committed and regenerated without noise in git. `--check` writes nothing and
exits 1 naming each fixture that differs from what the script would write.

    python scripts/make_fixtures.py            # (re)write data/fixtures/*.json
    python scripts/make_fixtures.py --check    # verify the committed files

Fixtures (JSON has no datetime, Decimal or bytes, so they are stored as ISO 8601 strings,
decimal strings and base64; `labkit.codecs.fixtures.load(name)` gives the real types back):

- order.json: one order with line items, timestamps, decimal prices, unicode text, an
  integer above 2^53 and a small binary attachment (matches data/order.proto and
  data/avro/order.avsc).
- large_list.json: {"records": [...]} with many small records (id, sku, qty, price, at).
- nested.json: a document nested `NESTED_DEPTH` levels deep.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import pathlib
import random
import sys
from decimal import Decimal

from labkit._core.seeding import rng

SEED = 2024
LARGE_LIST_RECORDS = 2500
NESTED_DEPTH = 50
OUT = pathlib.Path(__file__).resolve().parent.parent / "data" / "fixtures"
EPOCH = dt.datetime(2024, 5, 17, 9, 30, tzinfo=dt.timezone.utc)

_NAMES = ["Café crème", "Brötchen mit Käse", "寿司セット", "Пельмени", "🚀 rocket fuel",
          "Crème brûlée", "Ωmega-3 capsules", "naïve façade paint", "Smörgåsbord", "ça va ✓"]


def _rng(name: str) -> random.Random:
    # The course's seeding with a fixed seed: independent of set_seed(), stable everywhere.
    return rng(f"fixtures:{name}", seed=SEED)


def _price(r: random.Random) -> Decimal:
    return Decimal(r.randint(99, 49_999)) / 100


def _when(r: random.Random, max_s: int) -> str:
    return (EPOCH + dt.timedelta(seconds=r.randint(0, max_s),
                                 microseconds=r.randint(0, 999_999))).isoformat()


def order() -> dict:
    """One order: line items, timestamps, decimals as strings, unicode, base64 attachment."""
    r = _rng("order")
    items = []
    for _ in range(6):
        items.append({"sku": f"SKU-{r.randint(0, 99_999):05d}",
                      "name": _NAMES[r.randrange(len(_NAMES))],
                      "quantity": r.randint(1, 5), "unit_price": str(_price(r))})
    total = sum(Decimal(it["unit_price"]) * it["quantity"] for it in items)
    return {
        "id": f"ORD-2024-{r.randint(0, 999_999):06d}",
        "customer_id": 2**53 + 1,     # a JavaScript client would read 9007199254740992
        "created_at": _when(r, 86_400),
        "currency": "EUR",
        "items": items,
        "total": str(total),
        "note": "Livraison après 18h — merci ! 谢谢 🎉 \"quoted\" \\ backslash",
        "attachments": [{"filename": "receipt.png", "content_type": "image/png",
                         "data": base64.b64encode(r.randbytes(384)).decode("ascii")}],
        "tags": {"channel": "web", "priority": "high", "région": "Île-de-France"},
    }


def large_list(n: int = LARGE_LIST_RECORDS) -> dict:
    """{"records": [...]}: `n` small records, the shape of a list endpoint's reply."""
    r = _rng("large_list")
    return {"records": [{"id": i, "sku": f"SKU-{r.randint(0, 99_999):05d}",
                         "qty": r.randint(1, 20), "price": str(_price(r)),
                         "at": _when(r, 30 * 86_400)} for i in range(1, n + 1)]}


def nested(depth: int = NESTED_DEPTH) -> dict:
    """A document `depth` levels deep: each level has a few fields and one child."""
    r = _rng("nested")
    doc = None
    for level in reversed(range(depth)):
        doc = {"level": level, "name": f"node-{level}-{_NAMES[level % len(_NAMES)]}",
               "weight": round(r.random(), 6), "flags": [r.random() < 0.5, None],
               "child": doc}
    return doc


def _dump_order(obj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _dump_list(obj) -> bytes:
    # One record per line: compact, yet a regenerated file diffs line by line.
    lines = ",\n".join(json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
                       for rec in obj["records"])
    return ('{"records":[\n' + lines + "\n]}\n").encode("utf-8")


def _dump_compact(obj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def build() -> dict[str, bytes]:
    """file name -> the exact bytes the script writes."""
    return {"order.json": _dump_order(order()),
            "large_list.json": _dump_list(large_list()),
            "nested.json": _dump_compact(nested())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="target directory")
    args = parser.parse_args(argv)
    stale = []
    for name, data in build().items():
        path = args.out / name
        if path.is_file() and path.read_bytes() == data:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    verb = "would change" if args.check else "wrote"
    for name in stale:
        print(f"{verb} {args.out / name}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
