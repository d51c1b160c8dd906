"""Static INT8 quantisation of an exported graph with onnxruntime (QDQ format).

Recipe (measured on this project's LR-ASPP MobileNetV2 student, see ``benchmarks/export.py``):

1. ``quant_pre_process`` — ONNX shape inference + ORT graph optimisations (Conv+BN fusion etc.),
   so that calibration sees the graph that will actually be quantised;
2. ``quantize_static(..., quant_format=QDQ, per_channel=True, weight_type=QInt8,
   activation_type=QUInt8)`` with a :class:`FrameCalibrationReader` over *training* frames
   preprocessed exactly like the runtime (``cv2`` resize → :meth:`Normalization.apply`, or raw
   uint8 for a graph with folded preprocessing).

Why these types: onnxruntime's CPU kernels for QDQ Conv/MatMul are U8S8 (uint8 activations ×
int8 weights), the combination its x86 (AVX2 / AVX-512 / VNNI) and ARM (dot-product) GEMMs are
written for; S8S8 activations are converted back to U8S8 internally on x86.

``reduce_range=True`` (7-bit weights) is the default: on x86 CPUs without VNNI (this project's
AVX2 EPYC) the U8S8 kernels multiply-add pairs into saturating 16-bit sums (``vpmaddubsw``), and
full-range weights overflow them. Measured on LR-ASPP MobileNetV2 ×0.5 at 360×480 (BN statistics
from 16 CamVid train frames, calibrated on those 16, scored on 8 CamVid val frames against the
FP32 graph; random-init head, so absolute agreement is low — compare the rows):

=============================  ===============  ==========  ===========
recipe (QDQ, per-channel)      argmax agreement  SQNR (dB)   quant time
=============================  ===============  ==========  ===========
MinMax, U8S8                       62.2 %           6.8        16 s
MinMax + CalibMovingAverage        60.0 %           6.2        12 s
MinMax + ActivationSymmetric       61.6 %           5.8        16 s
Entropy                            62.2 %           6.8        38 s
Percentile 99.999                  67.8 %           7.4        53 s
MinMax, reduce_range               74.1 %          11.8        19 s
MinMax, reduce_range, per-tensor   67.7 %           9.4        12 s
reduce_range + MovingAverage       75.4 %          12.3        19 s
reduce_range + Percentile          74.8 %          12.1        43 s
MinMax, U8U8 (uint8 weights)       75.6 %          12.4        13 s
=============================  ===============  ==========  ===========

So: avoiding saturation (``reduce_range`` or U8U8) matters most, per-channel scales next; the
histogram methods (Entropy / Percentile, which keep a 128–2048-bin histogram per tensor) cost
2–3× the time for ≤ 0.5 dB. The export stage uses MinMax + ``reduce_range`` +
``CalibMovingAverage``. On VNNI / ARM-dot-product CPUs set ``reduce_range=False``.

Float edges (``keep_float``, the export default): onnxruntime's profiler on the CamVid student
(360×480, AVX-512 VNNI) showed two nodes where INT8 costs time: the 3-input-channel stem conv
(its QLinearConv is slower than the float conv) and the final full-resolution logits Resize,
which QDQ turns into a uint8 Resize plus a DequantizeLinear of the whole logits tensor (and
quantises the logits themselves). With both in float (:func:`float_edge_nodes`) and full-range
weights (VNNI), ORT INT8 runs at 1.32× ORT FP32 (CPU time, 1 thread) against 1.11× for the
previous recipe (7-bit weights, everything quantised), at better argmax agreement (98.5 vs
97.4 %); the two changes were not timed apart. ``docs/BENCH.md`` has the measurement and the
op-by-op breakdown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdd.contract import META_KEY, PRECISION_KEY, ModelMeta, file_sha256, read_onnx_meta
from rdd.runtime.measure.frames import Frames, load_frames
from rdd.runtime.stream.transforms import preprocess
from rdd.spec import atomic_path

__all__ = ["FrameCalibrationReader", "quantize_int8", "CALIB_METHODS", "KEEP_FLOAT", "float_edge_nodes"]

CALIB_METHODS = ("minmax", "entropy", "percentile", "distribution")
# Nodes left in float by default (measured with onnxruntime's profiler, see the module docstring):
# the 3-input-channel stem conv and the final logits upsampling.
KEEP_FLOAT = ("input_conv", "output_resize")
_PASS_THROUGH = {
    "Cast",
    "Transpose",
    "Sub",
    "Div",
    "Mul",
    "Add",
    "Identity",
    "ArgMax",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
}


def float_edge_nodes(model: Any, which: Sequence[str] = KEEP_FLOAT) -> list[str]:
    """Names of the nodes of an ONNX ``ModelProto`` that ``which`` selects.

    * ``"input_conv"``: the first Conv reached from the graph input through element-wise or
      layout ops only (the stem: 3 input channels; folded preprocessing sits before it);
    * ``"output_resize"``: the Resize whose result reaches a graph output through such ops only
      (the full-resolution logits upsampling; an argmax/cast of the labels variant sits after it).
    """
    unknown = set(which) - set(KEEP_FLOAT)
    if unknown:
        raise ValueError(f"keep_float: unknown entries {sorted(unknown)}; expected some of {KEEP_FLOAT}")
    g = model.graph
    consumers: dict[str, list[Any]] = {}
    producer: dict[str, Any] = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
        for t in n.output:
            producer[t] = n
    inits = {i.name for i in g.initializer}
    out: list[str] = []
    if "input_conv" in which:
        frontier = [i.name for i in g.input if i.name not in inits]
        seen: set[int] = set()
        while frontier:
            t = frontier.pop()
            for n in consumers.get(t, []):
                if id(n) in seen:  # nodes may be unnamed: by identity
                    continue
                seen.add(id(n))
                if n.op_type == "Conv":
                    out.append(n.name)
                elif n.op_type in _PASS_THROUGH:
                    frontier.extend(n.output)
    if "output_resize" in which:
        frontier = [o.name for o in g.output]
        while frontier:
            n = producer.get(frontier.pop())
            if n is None:
                continue
            if n.op_type == "Resize":
                out.append(n.name)
            elif n.op_type in _PASS_THROUGH:
                frontier.extend(t for t in n.input if t and t not in inits)
    return list(dict.fromkeys(out))


def _calibration_reader_base() -> type:
    from onnxruntime.quantization import CalibrationDataReader

    return CalibrationDataReader


class FrameCalibrationReader(_calibration_reader_base()):  # type: ignore[misc]
    """onnxruntime ``CalibrationDataReader`` over raw frames, preprocessed by the runtime
    (:func:`rdd.runtime.stream.transforms.preprocess`).

    Args:
        frames: raw frames (anything :func:`rdd.runtime.measure.frames.load_frames` accepts).
        meta: the contract of the graph being calibrated (input name, layout, normalisation).
        size: resize frames to ``(H, W)`` first (default: the graph's ``input_size``).
        batch_size: frames per calibration batch.
    """

    def __init__(
        self, frames: Any, meta: ModelMeta, *, size: Sequence[int] | None = None, batch_size: int = 1
    ) -> None:
        self.meta = meta
        self.frames: Frames = load_frames(frames, size=size or meta.input_size)
        self.batch_size = int(batch_size)
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return -(-len(self.frames) // self.batch_size)

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.frames), self.batch_size):
            x = [preprocess(f.image, self.meta) for f in self.frames[i : i + self.batch_size]]
            yield {self.meta.input_name: np.concatenate(x)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


@contextlib.contextmanager
def _quiet_root_logger(level: int = logging.ERROR):
    """Temporarily raise the root logger's level (onnxruntime.quantization logs to root)."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(max(level, old))
    try:
        yield
    finally:
        root.setLevel(old)


def _qtype(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    table = {
        "quint8": QuantType.QUInt8,
        "qint8": QuantType.QInt8,
        "uint8": QuantType.QUInt8,
        "int8": QuantType.QInt8,
    }
    try:
        return table[name.lower()]
    except KeyError:
        raise ValueError(f"quantize_int8: quant type must be one of {sorted(table)}, got {name!r}") from None


def quantize_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    calib_frames: Any,
    calib_limit: int | None = 64,
    calib_batch_size: int = 1,
    method: str = "minmax",
    activation_type: str = "quint8",
    weight_type: str = "qint8",
    per_channel: bool = True,
    reduce_range: bool = True,
    quant_format: str = "qdq",
    op_types_to_quantize: Sequence[str] | None = None,
    preprocess: bool = True,
    extra_options: dict[str, Any] | None = None,
    nodes_to_exclude: Sequence[str] | None = None,
    keep_float: Sequence[str] = (),
) -> dict[str, Any]:
    """Quantise ``fp32_path`` (an ``rdd.export`` graph) to INT8 QDQ at ``out_path`` (atomically).

    The ``rdd_meta`` block is carried over unchanged (same input/output contract) and
    ``metadata_props["rdd_precision"]`` is set to ``"int8"``.

    Args:
        calib_frames: training frames (dataset, images, pairs...) for activation calibration.
        calib_limit: number of frames used (evenly spaced), ``None`` for all.
        method: ``"minmax" | "entropy" | "percentile" | "distribution"``.
        activation_type, weight_type: ``"quint8"`` / ``"qint8"``.
        per_channel: per-output-channel weight scales (recommended for depthwise convs).
        reduce_range: 7-bit weights (AVX2/AVX-512 without VNNI saturation workaround).
        quant_format: ``"qdq"`` (QuantizeLinear/DequantizeLinear pairs, portable, what TensorRT
            and other EPs consume) or ``"qoperator"`` (QLinearConv etc., ORT-CPU specific).
        op_types_to_quantize: restrict quantisation to these op types (default: all supported).
        preprocess: run ``quant_pre_process`` (shape inference + graph optimisation) first.
        extra_options: passed to ``quantize_static`` (e.g. ``{"CalibMovingAverage": True}``,
            ``{"ActivationSymmetric": True}``, ``{"CalibPercentile": 99.999}``).
        keep_float: structural nodes left in float (:func:`float_edge_nodes`, some of
            :data:`KEEP_FLOAT`), found in the graph that is quantised (after ``preprocess``).

    Returns:
        info dict: ``path, size_bytes, calib_frames, method, ..., seconds, preprocess_error``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "distribution": CalibrationMethod.Distribution,
    }
    if method not in methods:
        raise ValueError(f"quantize_int8: method must be one of {list(methods)}, got {method!r}")
    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    if quant_format not in formats:
        raise ValueError(f"quantize_int8: quant_format must be one of {list(formats)}, got {quant_format!r}")
    act_t, w_t = _qtype(activation_type), _qtype(weight_type)
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    meta = read_onnx_meta(fp32_path)
    frames = load_frames(calib_frames, size=meta.input_size, limit=calib_limit)
    reader = FrameCalibrationReader(frames, meta, batch_size=calib_batch_size)
    t0 = time.perf_counter()
    preprocess_error = None
    with tempfile.TemporaryDirectory(prefix="rdd_quant_") as tmpdir:
        src = fp32_path
        if preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = Path(tmpdir) / "pre.onnx"
            try:
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
                src = pre
            except Exception as e:  # noqa: BLE001 — fall back to the raw graph, but record it
                preprocess_error = f"{type(e).__name__}: {e}"
        q_tmp = Path(tmpdir) / "int8.onnx"
        excluded = list(nodes_to_exclude or [])
        if keep_float:
            excluded += float_edge_nodes(onnx.load(str(src), load_external_data=False), keep_float)
        with _quiet_root_logger():  # the quantizer logs one WARNING per int64 shape tensor
            quantize_static(
                str(src),
                str(q_tmp),
                reader,
                quant_format=formats[quant_format],
                op_types_to_quantize=list(op_types_to_quantize or []) or None,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=act_t,
                weight_type=w_t,
                calibrate_method=methods[method],
                nodes_to_exclude=excluded,
                extra_options=dict(extra_options or {}),
            )
        proto = onnx.load(str(q_tmp))
        props = {p.key: p.value for p in proto.metadata_props}
        src_props = {
            p.key: p.value for p in onnx.load(str(fp32_path), load_external_data=False).metadata_props
        }
        props.update(
            {
                META_KEY: src_props[META_KEY],
                PRECISION_KEY: "int8",
                "rdd_source_sha256": file_sha256(fp32_path),
            }
        )
        del proto.metadata_props[:]
        for k, v in props.items():
            e = proto.metadata_props.add()
            e.key, e.value = k, v
        proto.producer_name = "rdd-edge"
        with atomic_path(out_path) as tmp:
            onnx.save(proto, str(tmp))
            read_onnx_meta(tmp)
    return {
        "path": str(out_path),
        "size_bytes": out_path.stat().st_size,
        "calib_frames": len(frames),
        "method": method,
        "activation_type": activation_type,
        "weight_type": weight_type,
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "quant_format": quant_format,
        "keep_float": list(keep_float),
        "float_nodes": excluded,
        "extra_options": dict(extra_options or {}),
        "preprocess": preprocess,
        "preprocess_error": preprocess_error,
        "seconds": round(time.perf_counter() - t0, 3),
    }
