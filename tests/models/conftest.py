from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/models is not a package; make its helper module importable however pytest is invoked.
sys.path.insert(0, str(Path(__file__).parent))

from models_testlib import ADD, WEATHER

from tether.models import ToolDefinition


@pytest.fixture(autouse=True)
def _no_model_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach for a model hub; weights come from the cache or the part packages."""
    monkeypatch.setenv("TETHER_MODEL_DOWNLOAD", "0")
    monkeypatch.delenv("TETHER_MODEL_PATH", raising=False)


@pytest.fixture
def tools() -> list[ToolDefinition]:
    return [WEATHER, ADD]
