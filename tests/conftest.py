from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from periface.evaluation.datasets import datasets_root

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).resolve().parents[1] / "src" / "periface" / "samples"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def script_module():
    """Imports a script of scripts/ by name as it runs: with its helpers, which sit beside it, importable."""

    def load(name: str):
        scripts = Path(__file__).resolve().parents[1] / "scripts"
        if str(scripts) not in sys.path:
            sys.path.insert(0, str(scripts))
        return importlib.import_module(name)

    return load


@pytest.fixture(scope="session")
def datasets() -> Path:
    root = datasets_root()
    if root is None:
        pytest.skip("needs the real data in ../shared/datasets (not present in this checkout)")
    return root


@pytest.fixture(scope="session")
def engine():
    from periface import Engine

    return Engine()


@pytest.fixture()
def key_env(monkeypatch, tmp_path):
    """Keep template keys of test galleries in the test's own temp folder."""
    from periface.privacy.crypto import encode_key, generate_key

    monkeypatch.setenv("PERIFACE_KEY", encode_key(generate_key()))
    return tmp_path
