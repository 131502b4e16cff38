"""labkit.protocols exports its names lazily: importing it loads neither grpc nor aiohttp."""
import subprocess
import sys

import pytest

import labkit.protocols as protocols


def test_importing_the_package_is_light():
    code = ("import sys, labkit.protocols; print(','.join(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('grpc', 'google', 'aiohttp'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", protocols.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(protocols, name) is not None


def test_an_unknown_name_says_so():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        protocols.nope  # noqa: B018


def test_a_function_named_like_its_module_is_the_function():
    """`from labkit.protocols import TutorialProtocolComparison, recommend`: loading the
    module `recommend` first must not leave the module where the function should be."""
    code = ("from labkit.protocols import TutorialProtocolComparison, recommend; "
            "print(callable(recommend) and recommend({'low_latency': True}).protocol)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "grpc"
