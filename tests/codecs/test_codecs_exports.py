"""labkit.codecs exports its names lazily: importing it loads none of the codec libraries."""
import subprocess
import sys

import pytest

import labkit.codecs as codecs


def test_importing_the_package_is_light():
    code = ("import sys, labkit.codecs; print(','.join(sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('orjson', 'cbor2', 'fastavro', 'yaml', 'google', 'msgpack'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", codecs.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(codecs, name) is not None


def test_danger_is_not_exported():
    assert "danger" not in codecs.__all__
    with pytest.raises(AttributeError):
        codecs.danger_pickle  # noqa: B018
