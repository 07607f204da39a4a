from __future__ import annotations

import pytest

from tests.models.models_testlib import ADD, WEATHER
from tether.models import ToolDefinition


@pytest.fixture(autouse=True)
def _no_model_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach for a model hub; weights come from the cache or the part packages."""
    monkeypatch.setenv("TETHER_MODEL_DOWNLOAD", "0")
    monkeypatch.delenv("TETHER_MODEL_PATH", raising=False)


@pytest.fixture
def tools() -> list[ToolDefinition]:
    return [WEATHER, ADD]
