from __future__ import annotations

import pytest

from tether.guards.embedding import MiniLMEmbedder, default_embedder


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    """The real all-MiniLM-L6-v2 (numpy forward pass); loaded once per test session."""
    return default_embedder()
