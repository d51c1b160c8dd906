"""A toy ONNX student for the runtime tests (numpy + onnx only; no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["toy_onnx"]


def toy_onnx(
    path: Path, channels=(0, 1), *, names=None, precision=None, extra_ops: int = 0, model: str = "toy"
) -> Path:
    """A ``len(channels)``-class 1×1 conv: logit_k = x[channels[k]] (input x/1, RGB order).

    ``extra_ops`` chains that many ``Add`` nodes after it, each adding the same small constant
    to every logit (a slower model, same labels; ONNX Runtime cannot fold them away)."""
    from onnx import TensorProto, helper, numpy_helper

    k = len(channels)
    names = list(names or [f"c{i}" for i in range(k)])
    w = np.zeros((k, 3, 1, 1), np.float32)
    for i, c in enumerate(channels):
        w[i, c] = 1.0
    nodes = [helper.make_node("Conv", ["image", "w"], ["l0"])]
    for i in range(extra_ops):
        nodes.append(helper.make_node("Add", [f"l{i}", "bias"], [f"l{i + 1}"]))
    nodes.append(helper.make_node("Identity", [f"l{extra_ops}"], ["logits"]))
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k, "H", "W"])
    bias = np.full((1,), 1e-3, np.float32)
    g = helper.make_graph(
        nodes,
        "toy",
        [x],
        [y],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    meta = {
        "format": "rdd-edge/1",
        "model": model,
        "input_name": "image",
        "input_layout": "NCHW",
        "input_dtype": "float32",
        "output_name": "logits",
        "output_kind": "logits",
        "normalization": {"mean": [0, 0, 0], "std": [1, 1, 1], "color": "RGB"},
        "classes": {
            "names": names,
            "palette": [[(37 * i) % 256, (91 * i) % 256, (173 * i) % 256] for i in range(k)],
            "ignore_index": 255,
        },
        "input_size": [8, 8],
        "dynamic_batch": True,
        "dynamic_spatial": True,
    }
    props = {"rdd_meta": json.dumps(meta)}
    if precision:
        props["rdd_precision"] = precision
    helper.set_model_props(m, props)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(m.SerializeToString())
    return path
