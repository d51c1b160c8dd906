"""OpenVINO INT8 of the exported student: NNCF post-training quantisation (the ``[openvino]`` extra).

:func:`quantize_openvino` reads the FP32 ``model.onnx`` with OpenVINO, calibrates it with NNCF on
the *same* frames, resized and preprocessed the same way, as the onnxruntime INT8 build
(:class:`rdd.export.quantize.FrameCalibrationReader`), and writes an OpenVINO IR
(``model_int8_ov.xml`` + ``.bin``) whose runtime info carries the unchanged ``rdd_meta`` and
``rdd_precision = "int8"``, so ``rdd-infer --backend openvino`` / ``rdd-bench`` read the contract
from the file itself (:mod:`rdd.runtime.backends.openvino`).

As for onnxruntime, the stem convolution (3 input channels) and the final full-resolution logits
upsampling stay in float by default (``keep_float``): neither gains from INT8 and the second
would quantise the logits themselves.

Torch-free; ``openvino`` and ``nncf`` are imported inside the functions, through
:mod:`rdd.offline` (their usage telemetry off).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdd.contract import META_KEY, file_sha256, read_onnx_meta
from rdd.export.quantize import KEEP_FLOAT, FrameCalibrationReader
from rdd.offline import import_nncf, import_openvino, installed
from rdd.runtime.backends.openvino import read_rt_info
from rdd.runtime.measure.frames import load_frames

__all__ = ["quantize_openvino", "openvino_edge_names", "openvino_int8_stage", "save_ir", "PRESETS"]

PRESETS = ("performance", "mixed")
_OV_PASS_THROUGH = {
    "Convert",
    "Transpose",
    "Subtract",
    "Divide",
    "Multiply",
    "Add",
    "TopK",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
}


def save_ir(model: Any, xml_path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write ``model`` (an ``openvino.Model``) as IR ``xml_path`` (+ ``.bin``) with ``rdd_meta``
    in its runtime info, so the runtime's OpenVINO backend reads the contract from the file
    itself. Weights are kept as they are (no FP16 compression). Returns the ``.xml`` path."""
    ov = import_openvino()

    from rdd.spec import atomic_path

    xml_path = Path(xml_path)
    model.set_rt_info(json.dumps(meta), ["framework", META_KEY])
    bin_path = xml_path.with_suffix(".bin")
    with atomic_path(bin_path) as tmp_bin, atomic_path(xml_path) as tmp_xml:
        ov.serialize(model, str(tmp_xml), str(tmp_bin))
        # the xml names its .bin by the temporary name only through the call; it loads the
        # .bin next to it by stem, so nothing in the xml refers to tmp_bin
    return xml_path


def openvino_edge_names(model: Any, which: Sequence[str] = KEEP_FLOAT) -> list[str]:
    """Friendly names of the ``openvino.Model`` ops ``which`` selects (see
    :func:`rdd.export.quantize.float_edge_nodes`): the first Convolution in topological order,
    and the Interpolate whose result reaches a model output through layout/element-wise ops."""
    out: list[str] = []
    ops = model.get_ordered_ops()
    if "input_conv" in which:
        first = next((op for op in ops if op.get_type_name() == "Convolution"), None)
        if first is not None:
            out.append(first.get_friendly_name())
    if "output_resize" in which:
        frontier = [r.input_value(0).get_node() for r in model.get_results()]
        seen: set[str] = set()
        while frontier:
            node = frontier.pop()
            name = node.get_friendly_name()
            if name in seen:
                continue
            seen.add(name)
            if node.get_type_name() == "Interpolate":
                out.append(name)
            elif node.get_type_name() in _OV_PASS_THROUGH:
                frontier.extend(v.get_node() for v in node.input_values())
    return list(dict.fromkeys(out))


def quantize_openvino(
    fp32_path: str | os.PathLike,
    out_xml: str | os.PathLike,
    *,
    calib_frames: Any,
    calib_limit: int | None = 64,
    preset: str = "performance",
    fast_bias_correction: bool = True,
    keep_float: Sequence[str] = KEEP_FLOAT,
) -> dict[str, Any]:
    """NNCF PTQ of the ONNX at ``fp32_path`` → OpenVINO IR ``out_xml`` (atomically, with ``.bin``).

    Args:
        calib_frames: the training frames the onnxruntime INT8 build calibrates on (anything
            :func:`rdd.runtime.measure.frames.load_frames` accepts); ``calib_limit`` evenly spaced ones.
        preset: ``"performance"`` (symmetric activations and weights: what VNNI/AMX kernels run)
            or ``"mixed"`` (asymmetric activations).
        fast_bias_correction: NNCF's bias correction after quantisation.
        keep_float: structural nodes left in float (see :func:`openvino_edge_names`).

    Returns:
        info dict: ``path, size_bytes, calib_frames, preset, keep_float, float_nodes, seconds``.
    """
    nncf = import_nncf()
    ov = import_openvino()

    if preset not in PRESETS:
        raise ValueError(f"quantize_openvino: preset must be one of {PRESETS}, got {preset!r}")
    fp32_path, out_xml = Path(fp32_path), Path(out_xml)
    if out_xml.suffix != ".xml":
        raise ValueError(f"quantize_openvino: out_xml must end in .xml, got {out_xml}")
    model = ov.Core().read_model(str(fp32_path))
    raw = read_rt_info(model, META_KEY)
    if raw is None:
        raise ValueError(f"{fp32_path}: no rdd_meta in the ONNX metadata; export it with rdd.export")
    meta = json.loads(raw)
    frames = load_frames(calib_frames, size=meta["input_size"], limit=calib_limit)
    reader = FrameCalibrationReader(frames, read_onnx_meta(fp32_path))
    inputs = [batch[meta["input_name"]] for batch in iter(reader.get_next, None)]
    t0 = time.perf_counter()
    names = openvino_edge_names(model, keep_float)
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    logging.getLogger("nncf").setLevel(logging.ERROR)
    q = nncf.quantize(
        model,
        nncf.Dataset(inputs),
        preset=presets[preset],
        subset_size=len(inputs),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=nncf.IgnoredScope(names=names, validate=False) if names else None,
    )
    q.set_rt_info("int8", ["framework", "rdd_precision"])
    q.set_rt_info(file_sha256(fp32_path), ["framework", "rdd_source_sha256"])
    save_ir(q, out_xml, meta)
    size = out_xml.stat().st_size + out_xml.with_suffix(".bin").stat().st_size
    return {
        "path": str(out_xml),
        "size_bytes": size,
        "calib_frames": len(inputs),
        "preset": preset,
        "fast_bias_correction": fast_bias_correction,
        "keep_float": list(keep_float),
        "float_nodes": names,
        "openvino": ov.__version__,
        "nncf": nncf.__version__,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def openvino_int8_stage(
    fp32_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    calib_frames: Any,
    calib_limit: int | None,
    eval_frames: Any,
    miou_fp32: float,
    max_miou_drop: float,
) -> dict[str, Any]:
    """The export stage's OpenVINO INT8 step: :func:`quantize_openvino` to
    ``out_dir/model_int8.xml``, then the same mIoU gate as the onnxruntime INT8 build, scored
    through the runtime's :class:`~rdd.runtime.backends.openvino.OpenVinoBackend` on ``eval_frames``.

    Returns the metrics block (``status`` ``"ok"`` or ``"skipped: ..."``). Raises
    :class:`~rdd.export.parity.ParityError` from :func:`rdd.export.parity.miou_gate` when the
    gate fails (its ``block`` is this step's metrics block).
    """

    from rdd.runtime.backends import available, open_build

    if available("openvino") is not None or not installed("nncf"):
        return {"status": "skipped: OpenVINO/NNCF unavailable (pip install 'rdd-edge[export]')"}
    from rdd.export.parity import evaluate_onnx, miou_gate

    info = quantize_openvino(
        fp32_path, Path(out_dir) / "model_int8.xml", calib_frames=calib_frames, calib_limit=calib_limit
    )
    ev = evaluate_onnx(info["path"], eval_frames, backend=open_build(info["path"], backend="openvino"))
    block = {
        "status": "ok",
        **{k: v for k, v in info.items() if k != "path"},
        "path": Path(info["path"]).name,
        "miou_fp32": miou_fp32,
        "miou_int8": ev["miou"],
        "miou_drop": miou_fp32 - ev["miou"],
    }
    block["gate"] = False  # until the gate passes; a failing gate raises with this block
    block["gate"] = miou_gate(
        miou_fp32, ev["miou"], max_drop=max_miou_drop, what=f"OpenVINO INT8 ({info['path']})", block=block
    )["passed"]
    return block
