"""Edits of an exported ONNX graph that need no PyTorch (``onnx`` only): what ``rdd-export`` does
to a user's ``.onnx`` and what makes a ``lowres`` / uint8-input build of a graph whose weights
are gone.

* :func:`to_lowres` — cut the graph before its final bilinear ``Resize`` (the one whose result
  reaches the output through layout / element-wise ops only): the output becomes the head's
  logits, ``rdd_meta.head`` records the dropped op (``linear`` / ``half_pixel`` are checked, any
  other resize is refused) and the stride, measured on a probe input;
* :func:`fold_preprocess` — a new ``uint8 N×H×W×3`` RGB input (``Cast``, ``Transpose``, the
  model's channel order, ``(x − 255·mean) / (255·std)``) in front of the graph, the same ops
  ``rdd.export.onnx`` traces and the runtime's :meth:`rdd.spec.Normalization.apply` computes;
* :func:`with_input_size` — ``rdd_meta.input_size`` (the size the runtime feeds by default).

Each returns a new ``ModelProto`` with its ``rdd_meta`` rewritten; :func:`save` writes it
atomically after re-reading its contract (:func:`rdd.contract.read_onnx_meta`), recording the
file it was made from (``rdd_source_sha256``: builds of one model share their source).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdd.contract import META_KEY, InputError, ModelMeta, read_onnx_meta

__all__ = ["load", "save", "to_lowres", "fold_preprocess", "with_input_size", "meta_of"]

_PASS = {"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Transpose"}


def load(path: str | os.PathLike) -> Any:
    import onnx

    return onnx.load(str(path))


def meta_of(proto: Any, source: str = "model") -> ModelMeta:
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise InputError(
            f"{source}: no metadata_props[{META_KEY!r}]; export it with rdd.export "
            "(or write the rdd_meta JSON) first"
        )
    return ModelMeta.from_json(props[META_KEY], source=source)


def _set(proto: Any, meta: ModelMeta | None, source_sha: str | None = None) -> Any:
    props = {p.key: p.value for p in proto.metadata_props}
    if meta is not None:
        props[META_KEY] = meta.to_json()
    if source_sha:
        props["rdd_source_sha256"] = source_sha
    del proto.metadata_props[:]
    for k, v in props.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    return proto


def to_lowres(proto: Any, *, probe_size: Sequence[int] | None = None, source: str = "model") -> Any:
    """The graph cut before its final bilinear ``Resize`` (see the module docstring)."""
    meta = meta_of(proto, source)
    if meta.head == "lowres":
        return copy.deepcopy(proto)
    if meta.output_kind != "logits":
        raise InputError(f"{source}: outputs labels; a lowres head needs a logits graph")
    out = copy.deepcopy(proto)
    g = out.graph
    prod = {o: n for n in g.node for o in n.output}
    name = meta.output_name
    node = prod.get(name)
    while node is not None and node.op_type in _PASS:
        node = prod.get(node.input[0])
    if node is None or node.op_type != "Resize":
        raise InputError(
            f"{source}: the output {name!r} does not come from a Resize; the graph "
            "already ends at the head's logits, or its upsampling is another op"
        )
    attrs = {a.name: (a.s.decode() if a.type == 3 else a.i) for a in node.attribute}
    if (
        attrs.get("mode", "nearest") != "linear"
        or attrs.get("coordinate_transformation_mode", "half_pixel") != "half_pixel"
    ):
        raise InputError(
            f"{source}: the final Resize is mode={attrs.get('mode')!r} "
            f"coordinate_transformation_mode="
            f"{attrs.get('coordinate_transformation_mode')!r}; the runtime "
            "reproduces linear / half_pixel only"
        )
    logits = node.input[0]
    keep = _needed(g, logits)
    nodes = [n for n in g.node if id(n) in keep]
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    o = g.output[0]
    for n in g.node:  # the logits tensor keeps the output's name
        n.output[:] = [name if t == logits else t for t in n.output]
        n.input[:] = [name if t == logits else t for t in n.input]
    dims = o.type.tensor_type.shape.dim
    for d, label in ((dims[2], "logits_height"), (dims[3], "logits_width")):
        d.Clear()
        d.dim_param = label
    h, w = probe_size or meta.input_size or (64, 64)
    stride = _stride(out, meta, (h, w))
    return _set(out, meta.with_(head="lowres", output_stride=stride))


def _needed(g: Any, tensor: str) -> set[int]:
    """ids of the nodes ``tensor`` depends on."""
    prod = {o: n for n in g.node for o in n.output}
    keep, todo = set(), [tensor]
    while todo:
        n = prod.get(todo.pop())
        if n is None or id(n) in keep:
            continue
        keep.add(id(n))
        todo += [i for i in n.input if i]
    return keep


def _stride(proto: Any, meta: ModelMeta, hw: tuple[int, int]) -> int:
    """The logits' stride, measured by running the cut graph on a probe input of ``hw``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    shape = (1, 3, *hw) if meta.input_layout == "NCHW" else (1, *hw, 3)
    x = np.zeros(shape, np.dtype(meta.input_dtype))
    lh = sess.run(None, {meta.input_name: x})[0].shape[-2]
    return max(1, round(hw[0] / lh))


def fold_preprocess(proto: Any, *, source: str = "model") -> Any:
    """A ``uint8 N×H×W×3`` RGB input with the model's normalisation in the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    meta = meta_of(proto, source)
    if meta.input_layout == "NHWC":
        return copy.deepcopy(proto)
    out = copy.deepcopy(proto)
    g = out.graph
    old = meta.input_name
    inner = f"{old}__normalised"
    for n in g.node:
        n.input[:] = [inner if t == old else t for t in n.input]
    dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    n_, _, h_, w_ = dims
    new_in = helper.make_tensor_value_info(old, TensorProto.UINT8, [n_, h_, w_, 3])
    norm = meta.normalization
    order = [2, 1, 0] if norm.color == "BGR" else [0, 1, 2]
    offset = (np.asarray(norm.mean, np.float32) * np.float32(255.0)).reshape(1, 3, 1, 1)
    scale = (np.asarray(norm.std, np.float32) * np.float32(255.0)).reshape(1, 3, 1, 1)
    pre = [
        helper.make_node(
            "Transpose", [old], [f"{old}__nchw"], perm=[0, 3, 1, 2], name="preprocess/Transpose"
        ),
        helper.make_node(
            "Cast", [f"{old}__nchw"], [f"{old}__f32"], to=TensorProto.FLOAT, name="preprocess/Cast"
        ),
    ]
    x = f"{old}__f32"
    if order != [0, 1, 2]:
        pre.append(
            helper.make_node(
                "Gather", [x, f"{old}__order"], [f"{old}__bgr"], axis=1, name="preprocess/Gather"
            )
        )
        g.initializer.append(numpy_helper.from_array(np.asarray(order, np.int64), f"{old}__order"))
        x = f"{old}__bgr"
    pre += [
        helper.make_node("Sub", [x, f"{old}__offset"], [f"{old}__centred"], name="preprocess/Sub"),
        helper.make_node("Div", [f"{old}__centred", f"{old}__scale"], [inner], name="preprocess/Div"),
    ]
    g.initializer.extend(
        [numpy_helper.from_array(offset, f"{old}__offset"), numpy_helper.from_array(scale, f"{old}__scale")]
    )
    nodes = pre + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    g.input[0].CopyFrom(new_in)
    onnx.checker.check_model(out)
    return _set(out, meta.with_(input_layout="NHWC", input_dtype="uint8"))


def with_input_size(proto: Any, hw: Sequence[int], *, source: str = "model") -> Any:
    """``rdd_meta.input_size`` set to ``hw`` (a graph with static spatial axes is refused)."""
    meta = meta_of(proto, source)
    if not meta.dynamic_spatial:
        if tuple(hw) != tuple(meta.input_size):
            raise InputError(
                f"{source}: fixed at {list(meta.input_size)}; its input size cannot "
                f"be changed to {list(hw)} (export it with dynamic spatial axes)"
            )
        return copy.deepcopy(proto)
    return _set(copy.deepcopy(proto), meta.with_(input_size=tuple(int(v) for v in hw)))


def save(proto: Any, path: str | os.PathLike, *, source_sha256: str | None = None) -> Path:
    """Write ``proto`` atomically; its ``rdd_meta`` must describe its graph. ``source_sha256``:
    the SHA-256 of the file it was made from (``metadata_props["rdd_source_sha256"]``)."""
    import onnx

    from rdd.spec import atomic_path

    path = Path(path)
    if source_sha256:
        proto = _set(proto, None, source_sha256)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
        read_onnx_meta(tmp)
    return path
