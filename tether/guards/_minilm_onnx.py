"""The BERT encoder of all-MiniLM-L6-v2 as an ONNX Runtime graph, built in memory from the same
safetensors weights (no torch, no exported model file, nothing fetched).

Why: the numpy encoder needs ~9-11 ms for one ~20-token thought on one core (OpenBLAS sgemm on
16-row matrices plus ~40 small numpy calls per layer); ONNX Runtime's fused CPU kernels
(`Attention`, `SkipLayerNormalization`, `BiasGelu` from its `com.microsoft` domain) do the same
float32 arithmetic in about two thirds of the time (`make bench-guards` measures both), with
results within 1e-5 of the numpy reference (tests/guards/test_embedding_loops.py). Weights stay
float32: a one-off trial of dynamic int8 quantisation was faster but moved embeddings too far
from the exact ones for loop detection at a 0.95 threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tether.guards._minilm_numpy import Layer

# ONNX Runtime 1.2x accepts IR <= 10/13; 8 is what opset 17 needs and every supported build reads.
_IR_VERSION = 8
_OPSET = 17


def _build_model(layers: Sequence[Layer], heads: int, eps: float) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []
    nodes: list[Any] = []

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    h = "hidden"
    for i, (qkv_w, qkv_b, ao_w, ao_b, aln_w, aln_b, i_w, i_b, o_w, o_b, oln_w, oln_b
            ) in enumerate(layers):
        p = f"l{i}."
        out = "last_hidden" if i == len(layers) - 1 else p + "out"
        ms = "com.microsoft"
        nodes += [
            helper.make_node("Attention", [h, init(p + "qkv_w", qkv_w), init(p + "qkv_b", qkv_b),
                                           "mask"], [p + "ctx"], domain=ms, num_heads=heads),
            helper.make_node("MatMul", [p + "ctx", init(p + "ao_w", ao_w)], [p + "ao"]),
            helper.make_node("SkipLayerNormalization",
                             [p + "ao", h, init(p + "aln_w", aln_w), init(p + "aln_b", aln_b),
                              init(p + "ao_b", ao_b)], [p + "h1"], domain=ms, epsilon=eps),
            helper.make_node("MatMul", [p + "h1", init(p + "i_w", i_w)], [p + "i"]),
            helper.make_node("BiasGelu", [p + "i", init(p + "i_b", i_b)], [p + "g"], domain=ms),
            helper.make_node("MatMul", [p + "g", init(p + "o_w", o_w)], [p + "o"]),
            helper.make_node("SkipLayerNormalization",
                             [p + "o", p + "h1", init(p + "oln_w", oln_w),
                              init(p + "oln_b", oln_b), init(p + "o_b", o_b)], [out],
                             domain=ms, epsilon=eps),
        ]
        h = out
    width = int(layers[0][2].shape[0])
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2-encoder",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", width]),
         helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", "tokens"])],
        [helper.make_tensor_value_info("last_hidden", TensorProto.FLOAT,
                                       ["batch", "tokens", width])],
        inits)
    model = helper.make_model(graph, ir_version=_IR_VERSION, opset_imports=[
        helper.make_opsetid("", _OPSET), helper.make_opsetid("com.microsoft", 1)])
    return bytes(model.SerializeToString())


class OnnxEncoder:
    """Same contract as `NumpyEncoder`: hidden states after the embedding LayerNorm in, hidden
    states after the last layer out. Thread-safe (an ORT session may be run concurrently)."""

    name = "onnxruntime"
    # no padding beyond the batch's longest text: padded rows would be computed for nothing
    pad_multiple = 1

    def __init__(self, layers: Sequence[Layer], heads: int, eps: float) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # one thread, no spinning: tokens x 384 matrices gain nothing from a second thread, and
        # spinning threads on a busy worker starve the runs it is driving
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(_build_model(layers, heads, eps), opts,
                                             providers=["CPUExecutionProvider"])

    def __call__(self, h: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {"hidden": np.ascontiguousarray(h, dtype=np.float32),
                                       "mask": mask.astype(np.int32)})[0]
        return np.asarray(out)
