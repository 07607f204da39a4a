from __future__ import annotations

from typing import Any

import pytest

from tether.guards import KeyRegistry, generate_keypair, load_private_key
from tether.guards.embedding import MiniLMEmbedder, default_embedder


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    """The real all-MiniLM-L6-v2 (numpy forward pass); loaded once per test session."""
    return default_embedder()


@pytest.fixture
def people() -> tuple[dict[str, Any], KeyRegistry]:
    keys, reg = {}, KeyRegistry()
    for name in ("alice", "bob", "mallory"):
        priv, pub = generate_keypair()
        keys[name] = load_private_key(priv)
        reg.register(name, pub)
    return keys, reg
