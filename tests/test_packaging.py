"""Packaging metadata says what the project is and what it was tested with."""

import sys
from importlib.metadata import version
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_is_an_spdx_string_with_its_file():
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_metadata_is_complete():
    assert PROJECT["authors"] and PROJECT["classifiers"] and PROJECT["urls"]
    assert any(c.startswith("Programming Language :: Python :: 3") for c in PROJECT["classifiers"])


def _bounds(spec):
    low = spec.split(">=")[1].split(",")[0]
    high = spec.split("<")[1] if "<" in spec else None
    return tuple(map(int, low.split("."))), high and tuple(map(int, high.split(".")))


@pytest.mark.parametrize("name", ["jax", "jaxlib"])
def test_declared_jax_range_holds_the_tested_version(name):
    spec = next(d for d in PROJECT["dependencies"] if d.startswith(name + ">"))
    low, high = _bounds(spec)
    installed = tuple(int(p) for p in version(name).split(".")[:3])
    assert low <= installed and (high is None or installed[:len(high)] < high), (spec, installed)
    assert low >= (0, 10, 2)  # nothing older than what the suite has run on
