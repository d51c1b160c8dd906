"""The ``export`` section of ``params.yaml``: :class:`ExportConfig` and its parts (graph variants,
the parity gate, INT8, TensorRT, the benchmark).

Declared with :func:`rdd.config.walker.param` like every section (:mod:`rdd.config.params`);
:func:`rdd.export.run_export` takes an :class:`ExportConfig`. This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdd.config.walker import invalid, param, short

__all__ = ["HEADS", "Variant", "Parity", "Int8", "TensorRT", "Benchmark", "ExportConfig"]

HEADS = ("full", "lowres")  # the contract's (rdd.contract.HEADS); this module imports no runtime


@dataclass(frozen=True)
class Variant:
    name: str = param(doc="file stem under variants/")
    argmax: bool = param(False, doc="output labels instead of logits (needs head: full)")
    fold_preprocess: bool = param(False, doc="uint8 NHWC input, normalisation in the graph")
    head: str = param(
        "full",
        choices=HEADS,
        doc="full: input-size logits | lowres: the head's logits, upsampled exactly by the runtime",
    )

    def _validate(self) -> None:
        if self.argmax and self.head != "full":
            raise invalid("argmax", "needs head: full (labels at the input size)")
        if "/" in self.name or "\\" in self.name or self.name in ("model", "model_int8"):
            raise invalid(
                "name", f"must be a unique file stem other than model / model_int8, got {short(self.name)}"
            )


@dataclass(frozen=True)
class Parity:
    """FP32 ONNX vs PyTorch on val frames (a gate)."""

    frames: int | None = param(32, ge=1, doc="evenly spaced val frames (null: all)")
    max_abs_logit_diff: float = param(2e-3, ge=0, doc="gate: largest logit difference")
    min_argmax_agreement: float = param(0.999, ge=0, doc="gate: share of equal labels")
    max_miou_delta: float = param(0.0005, ge=0, le=1, doc="gate: mIoU difference (fraction)")


@dataclass(frozen=True)
class Int8:
    """ONNX Runtime static INT8 (QDQ) and its mIoU gate."""

    enabled: bool = param(True, doc="build and gate the INT8 model")
    calib_frames: int | None = param(64, ge=1, doc="train frames for calibration (null: all)")
    method: str = param(
        "minmax", choices=("minmax", "entropy", "percentile", "distribution"), doc="calibration method"
    )
    activation_type: str = param("quint8", choices=("quint8", "qint8"), doc="activations")
    weight_type: str = param("qint8", choices=("quint8", "qint8"), doc="weights")
    per_channel: bool = param(True, doc="per-channel weight scales")
    reduce_range: bool = param(True, doc="7-bit weights (VNNI-safe)")
    extra_options: dict = param({"CalibMovingAverage": True}, doc="quantize_static extra_options")
    max_miou_drop: float = param(0.01, ge=0, le=1, doc="gate: mIoU drop vs FP32 (fraction)")
    eval_frames: int | None = param(None, ge=1, doc="val frames scored (null: parity.frames)")
    keep_float: list[str] = param(
        ["input_conv", "output_resize"],
        choices=("input_conv", "output_resize"),
        doc="nodes kept in float (stem conv, logits upsampling)",
    )
    openvino: bool = param(True, doc="also NNCF INT8 for OpenVINO where [export] (NNCF) is installed")


@dataclass(frozen=True)
class TensorRT:
    """TensorRT engines (recorded as skipped where TensorRT is unavailable)."""

    enabled: bool = param(True, doc="try to build engines")
    precisions: list[str] = param(
        ["fp16", "int8"], choices=("fp32", "fp16", "int8"), ge=1, doc="engines to build"
    )
    min_size: tuple[int, int] | None = param(None, doc="profile min (null: input_size)")
    opt_size: tuple[int, int] | None = param(None, doc="profile opt (null: input_size)")
    max_size: tuple[int, int] | None = param(None, doc="profile max (null: input_size)")
    calib_frames: int | None = param(64, ge=1, doc="INT8 calibration frames (null: all)")
    workspace_gb: float = param(2.0, gt=0, doc="builder workspace")


@dataclass(frozen=True)
class Benchmark:
    """Latency of every exported model, batch 1."""

    enabled: bool = param(True, doc="measure latencies")
    threads: int = param(2, gt=0, doc="threads for every backend")
    warmup: int = param(5, ge=0, doc="untimed runs first")
    runs: int = param(30, gt=0, doc="timed runs")


@dataclass(frozen=True)
class ExportConfig:
    """Stage ``export`` (:func:`rdd.export.run_export`): ONNX FP32 → gates → INT8 → TensorRT."""

    input_size: tuple[int, int] | None = param(None, doc="deployment [H, W] (null: the artifact's)")
    opset: int = param(17, ge=17, doc="ONNX opset (>= rdd.export.onnx.MIN_OPSET)")
    dynamic_batch: bool = param(True, doc="dynamic batch axis")
    dynamic_spatial: bool = param(True, doc="dynamic H, W axes")
    simplify: bool = param(True, doc="onnxsim the graph")
    head: str = param(
        "lowres",
        choices=HEADS,
        doc="model.onnx and its builds end at full: "
        "input-size logits | lowres: the head's logits before the final bilinear "
        "upsampling, which the runtime does exactly (rdd_meta.head)",
    )
    fold_preprocess: bool = param(
        False,
        doc="model.onnx and its builds take uint8 NHWC frames, "
        "normalisation in the graph (rdd_meta.input_dtype)",
    )
    variants: tuple[Variant, ...] = param((), doc="extra graphs [{name, argmax, fold_preprocess, head}]")
    parity: Parity = param(factory=Parity, doc="FP32 gate")
    int8: Int8 = param(factory=Int8, doc="INT8 model and gate")
    tensorrt: TensorRT = param(factory=TensorRT, doc="TensorRT engines")
    benchmark: Benchmark = param(factory=Benchmark, doc="latencies")

    def _validate(self) -> None:
        names = [v.name for v in self.variants]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise invalid(
                    f"variants[{i}].name",
                    f"must be a unique file stem other than model / model_int8, got {short(n)}",
                )
