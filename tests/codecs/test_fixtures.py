"""Chapter 04's fixtures: written deterministically by scripts/make_fixtures.py, small enough to
commit, and loaded back with their real types by labkit.codecs.fixtures."""
import datetime as dt
import decimal
import importlib.util
import pathlib
import subprocess
import sys

import pytest

from labkit.codecs import fixtures
from labkit.codecs.formats import ProtobufCodec, get

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_fixtures.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_running_the_script_twice_writes_identical_bytes(tmp_path):
    for run in ("a", "b"):
        out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / run)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["large_list.json", "nested.json", "order.json"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_committed_fixtures_are_what_the_script_writes():
    out = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"stale fixtures: {out.stdout}{out.stderr} (run the script)"


def test_check_reports_a_changed_file(tmp_path):
    script = _script()
    assert script.main(["--out", str(tmp_path)]) == 0
    (tmp_path / "nested.json").write_bytes(b"{}")
    assert script.main(["--out", str(tmp_path), "--check"]) == 1
    assert (tmp_path / "nested.json").read_bytes() == b"{}"      # --check writes nothing


def test_the_course_seed_does_not_change_the_fixtures():
    from labkit._core import seeding
    script = _script()
    before = script.build()
    try:
        seeding.set_seed(7)
        assert script.build() == before
    finally:
        seeding.set_seed(seeding.DEFAULT_SEED)


def test_fixtures_stay_commit_sized():
    total = sum(fixtures.path(n).stat().st_size for n in fixtures.NAMES)
    assert total < 300 * 1024


def test_order_comes_back_with_real_types():
    order = fixtures.load("order")
    assert isinstance(order["created_at"], dt.datetime) and order["created_at"].tzinfo
    assert order["total"] == sum(i["unit_price"] * i["quantity"] for i in order["items"])
    assert all(isinstance(i["unit_price"], decimal.Decimal) for i in order["items"])
    data = order["attachments"][0]["data"]
    assert isinstance(data, bytes) and len(data) == 384
    assert order["customer_id"] > 2**53
    assert any(ord(ch) > 0xFFFF for ch in order["note"])         # beyond the BMP (an emoji)


def test_untyped_load_is_plain_json():
    raw = fixtures.load("order", typed=False)
    assert isinstance(raw["created_at"], str) and isinstance(raw["total"], str)
    assert isinstance(raw["attachments"][0]["data"], str)
    assert fixtures.revive(raw) == fixtures.load("order")


def test_large_list_and_nested_have_their_shapes():
    records = fixtures.load("large_list")["records"]
    assert len(records) == 2500 and [r["id"] for r in records] == list(range(1, 2501))
    assert isinstance(records[0]["at"], dt.datetime)
    assert isinstance(records[0]["price"], decimal.Decimal)
    depth, node = 0, fixtures.load("nested")
    while node is not None:
        depth, node = depth + 1, node["child"]
    assert depth == 50


def test_load_gives_a_fresh_copy():
    first = fixtures.load("order")
    first["items"].clear()
    assert fixtures.load("order")["items"]


@pytest.mark.parametrize("bad", ["order.json", "pickle", None])
def test_unknown_fixture_names_the_choices(bad):
    with pytest.raises(ValueError, match=r"name must be one of \('order'|name must be one of"):
        fixtures.load(bad)


def test_typed_must_be_a_bool():
    with pytest.raises(ValueError, match="typed must be True or False"):
        fixtures.load("order", typed="yes")


def test_the_order_fits_the_protobuf_and_avro_schemas():
    order = fixtures.load("order")
    assert get("avro").decode(get("avro").encode(order)) == order
    back = get("protobuf").decode(get("protobuf").encode(order))
    assert back["id"] == order["id"] and back["customer_id"] == str(order["customer_id"])
    assert len(back["items"]) == len(order["items"])
    records = ProtobufCodec("RecordList")
    big = fixtures.load("large_list")
    assert len(records.decode(records.encode(big))["records"]) == 2500


@pytest.mark.parametrize("name", ["json", "orjson", "msgpack", "yaml", "cbor"])
@pytest.mark.parametrize("fixture", fixtures.NAMES)
def test_schemaless_codecs_round_trip_every_untyped_fixture(name, fixture):
    value = fixtures.load(fixture, typed=False)
    assert get(name).decode(get(name).encode(value)) == value
