"""Accuracy gates: does the exported graph predict what the PyTorch model predicts?

:func:`compare_parity` runs the PyTorch model and the ONNX graph on the same validation frames
and reports

* ``max_abs_logit_diff`` / ``mean_abs_logit_diff`` — ``max |z_onnx − z_torch|`` over all
  logits the graph outputs (``N×K×H×W``, or the head's ``N×K×h×w`` for a ``lowres`` graph,
  against the model's own head logits; ``None`` for a graph that outputs labels);
* ``argmax_agreement`` — fraction of pixels whose class ``argmax_k z`` is the same;
* ``miou_torch``, ``miou_onnx`` and ``miou_delta = miou_onnx − miou_torch`` against the ground
  truth masks (when the frames have masks).

**Units**: every mIoU value here is a *fraction* in ``[0, 1]`` (as in :mod:`rdd.metrics`); the
default gate ``max_miou_delta = 0.0005`` is **0.05 mIoU points** (percentage points) and the INT8
gate ``max_miou_drop = 0.01`` is **1.0 mIoU point**.

:func:`check_parity` raises :class:`ParityError` (with the readable report) when a threshold is
violated.

The ONNX side runs through the edge runtime itself: the build is opened with
:func:`rdd.runtime.backends.open_build` (its ``rdd_meta`` checked against the graph) and scored
by :mod:`rdd.runtime.measure.score` (:func:`~rdd.runtime.stream.transforms.preprocess` per
frame, then the backend), the calls ``rdd-infer`` makes per frame. A gate that passes certifies
that code path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from rdd.config.export import Parity
from rdd.contract import ModelMeta
from rdd.metrics import ConfusionMatrix
from rdd.runtime.backends import Backend, open_build
from rdd.runtime.measure.frames import Frames, iter_batches, load_frames
from rdd.runtime.measure.score import Agreement, compare_predictions, predict, score
from rdd.spec import Normalization

if TYPE_CHECKING:  # torch only where a PyTorch model is compared (rdd-export's ONNX path: none)
    import torch
    from torch import nn

__all__ = [
    "DEFAULT_THRESHOLDS",
    "compare_parity",
    "check_parity",
    "parity_failures",
    "evaluate_onnx",
    "evaluate_torch",
    "ParityError",
    "miou_gate",
    "agreement",
]

#: Parity gate defaults (the ``export.parity`` section's): mIoU values are fractions,
#: 0.0005 = 0.05 mIoU points.
DEFAULT_THRESHOLDS = {
    k: getattr(Parity(), k) for k in ("max_abs_logit_diff", "min_argmax_agreement", "max_miou_delta")
}


class ParityError(RuntimeError):
    """An accuracy gate failed. ``.report`` holds the full report dict; ``.block`` the metrics
    block of the step that failed (``None`` unless the step attached one)."""

    def __init__(self, title: str, report: dict[str, Any], block: dict[str, Any] | None = None) -> None:
        self.report, self.block = report, block
        lines = [title]
        for f in report.get("failures", []):
            lines.append(f"  FAILED: {f}")
        shown = {
            k: v
            for k, v in report.items()
            if k not in ("failures", "iou_torch", "iou_onnx", "iou_fp32", "iou_int8")
        }
        lines.append("  report: " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))
        super().__init__("\n".join(lines))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


def _torch_logits(model: nn.Module, x: np.ndarray, head: str = "full") -> torch.Tensor:
    """``x``: float32 N×3×H×W → main logits N×K×H×W on CPU (``head="lowres"``: the head's
    logits before the final upsampling, N×K×h×w, what a lowres graph outputs)."""
    import torch

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with torch.inference_mode():
        if head == "lowres":
            from rdd.models import export_wrapper

            return export_wrapper(model, "lowres")(torch.from_numpy(x).to(device)).float().cpu()
        out = model(torch.from_numpy(x).to(device))
    out = out["out"] if isinstance(out, dict) else out
    return out.float().cpu()


def _as_frames(frames: Any, meta: ModelMeta, limit: int | None) -> Frames:
    """Raw frames; resized to the graph's ``input_size`` when its spatial axes are static."""
    fr = load_frames(frames, limit=limit)
    return fr.resized(meta.fixed_size)


def _runtime(backend: Backend, images: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """uint8 ``N×H×W×3`` frames through the runtime (:func:`rdd.runtime.measure.score.predict`,
    each at its own size) → ``(logits | None, labels N×H×W)``: the graph's own logits (``N×K×h×w``
    for a ``lowres`` head), ``None`` for a labels graph."""
    labels, logits = predict(backend, Frames.from_arrays(list(images)), "native", keep_logits=True)
    return (np.stack(logits) if logits is not None else None), np.stack(labels)


def compare_parity(
    model: nn.Module,
    onnx_path: str | os.PathLike,
    frames: Any,
    *,
    thresholds: dict[str, float] | None = None,
    limit: int | None = None,
    batch_size: int = 1,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """Run ``model`` (PyTorch) and ``onnx_path`` (the runtime) on ``frames``; report the parity.

    Args:
        model: the PyTorch model that was exported (eval mode is set here).
        onnx_path: the exported graph (any variant: logits/labels, folded preprocessing or not).
        frames: anything :func:`rdd.runtime.measure.frames.load_frames` accepts (dataset,
            images, pairs).
        thresholds: overrides of :data:`DEFAULT_THRESHOLDS`.
        limit: use at most this many frames (evenly spaced).
        batch_size: frames per PyTorch forward pass (same-size frames only); the runtime runs
            frame by frame, as ``rdd-infer`` does.
        backend: an open backend of ``onnx_path`` (default: ONNX Runtime on the CPU).

    Returns:
        report dict with the figures listed in the module docstring, ``frames``, ``pixels``,
        ``thresholds``, ``failures`` (list of readable strings) and ``passed``.
    """
    th = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    unknown = set(th) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ValueError(
            f"compare_parity: unknown threshold key(s) {sorted(unknown)}; expected "
            f"{sorted(DEFAULT_THRESHOLDS)}"
        )
    be = backend or open_build(onnx_path, backend="ort")
    meta = be.meta
    norm, k, ignore = meta.normalization, meta.num_classes, meta.classes.ignore_index
    fr = _as_frames(frames, meta, limit)
    was_training = model.training
    model.eval()
    cm_t, cm_o = ConfusionMatrix(k, ignore), ConfusionMatrix(k, ignore)
    agreement, has_masks = Agreement(), True  # the runtime's agreement and |Δlogit|
    try:
        for batch in iter_batches(fr, batch_size):
            imgs = np.stack([f.image for f in batch])  # N×H×W×3 uint8
            x_t = norm.apply(imgs)
            z_t = _torch_logits(model, x_t).numpy()  # N×K×H×W
            lab_t = z_t.argmax(1)
            if meta.head == "lowres":  # the graph's logits
                z_t = _torch_logits(model, x_t, "lowres").numpy()  # N×K×h×w
            z_o, lab_o = _runtime(be, imgs)  # N×K×…  | None, N×H×W
            if z_o is not None and z_o.shape != z_t.shape:
                raise ValueError(f"{onnx_path}: ONNX logits {z_o.shape} vs torch {z_t.shape}")
            for i in range(len(batch)):
                agreement.update(lab_o[i], lab_t[i], *((z_o[i], z_t[i]) if z_o is not None else ()))
            for f, lt, lo in zip(batch, lab_t, lab_o):
                if f.mask is None:
                    has_masks = False
                    continue
                cm_t.update(lt, f.mask)
                cm_o.update(lo.astype(np.int64), f.mask)
    finally:
        model.train(was_training)

    rep: dict[str, Any] = {
        "onnx": str(onnx_path),
        "frames": len(fr),
        "pixels": agreement.total,
        "max_abs_logit_diff": agreement.max_logit,
        "mean_abs_logit_diff": agreement.mean_logit,
        "argmax_agreement": agreement.same / agreement.total,
    }
    if has_masks:
        mt, mo = cm_t.compute(), cm_o.compute()
        rep.update(miou_torch=mt["miou"], miou_onnx=mo["miou"], miou_delta=mo["miou"] - mt["miou"])
    else:
        rep.update(miou_torch=None, miou_onnx=None, miou_delta=None)
    rep["thresholds"] = th
    rep["failures"] = parity_failures(rep, th)
    rep["passed"] = not rep["failures"]
    return rep


def parity_failures(rep: Mapping[str, Any], th: Mapping[str, float]) -> list[str]:
    """The FP32 gate's verdict on a comparison of two builds (``max_abs_logit_diff``,
    ``argmax_agreement``, ``miou_delta``: fractions, None where not measured) against the
    thresholds :data:`DEFAULT_THRESHOLDS` names: one line per threshold crossed."""
    failures = []
    if rep["max_abs_logit_diff"] is not None and rep["max_abs_logit_diff"] > th["max_abs_logit_diff"]:
        failures.append(f"max |logit diff| {rep['max_abs_logit_diff']:.3g} > {th['max_abs_logit_diff']:.3g}")
    if rep["argmax_agreement"] < th["min_argmax_agreement"]:
        failures.append(
            f"argmax agreement {100 * rep['argmax_agreement']:.4f}% < {100 * th['min_argmax_agreement']:.4f}%"
        )
    if rep["miou_delta"] is not None and abs(rep["miou_delta"]) > th["max_miou_delta"]:
        failures.append(
            f"|mIoU delta| {100 * abs(rep['miou_delta']):.4f} points > "
            f"{100 * th['max_miou_delta']:.4f} points"
        )
    return failures


def check_parity(
    model: nn.Module, onnx_path: str | os.PathLike, frames: Any, **kwargs: Any
) -> dict[str, Any]:
    """:func:`compare_parity`, raising :class:`ParityError` when the gate fails."""
    rep = compare_parity(model, onnx_path, frames, **kwargs)
    if not rep["passed"]:
        raise ParityError(f"ONNX parity gate failed for {onnx_path}", rep)
    return rep


def evaluate_onnx(
    onnx_path: str | os.PathLike,
    frames: Any,
    *,
    limit: int | None = None,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """``miou``, ``pixel_acc``, ``iou`` (:func:`rdd.runtime.measure.score.score`) and ``frames``
    of an exported graph on frames with masks, run through the runtime frame by frame, as
    ``rdd-infer`` does."""
    be = backend or open_build(onnx_path, backend="ort")
    meta = be.meta
    fr = _as_frames(frames, meta, limit)
    if fr.labels is None:
        raise ValueError(f"evaluate_onnx({onnx_path}): every frame needs a mask")
    preds, _ = predict(be, fr, "native")  # the runtime's predict and score: one of each
    return {**score(preds, fr, meta.num_classes), "frames": len(fr)}


def evaluate_torch(
    model: nn.Module,
    frames: Any,
    *,
    normalization: Normalization,
    num_classes: int,
    ignore_index: int = 255,
    limit: int | None = None,
    batch_size: int = 1,
) -> dict[str, Any]:
    """mIoU etc. of the PyTorch model on the same raw frames (same preprocessing as ONNX)."""
    fr = load_frames(frames, limit=limit)
    cm = ConfusionMatrix(num_classes, ignore_index)
    was_training = model.training
    model.eval()
    try:
        for batch in iter_batches(fr, batch_size):
            z = _torch_logits(model, normalization.apply(np.stack([f.image for f in batch])))
            for f, lab in zip(batch, z.argmax(1).numpy()):
                if f.mask is None:
                    raise ValueError("evaluate_torch: every frame needs a mask")
                cm.update(lab, f.mask)
    finally:
        model.train(was_training)
    return {**cm.compute(), "frames": len(fr)}


def agreement(a: Backend, b: Backend, frames: Frames) -> float:
    """Fraction of pixels where builds ``a`` and ``b`` predict the same class (each frame at its
    own size, through the runtime)."""
    from rdd.runtime.measure.score import predict

    return compare_predictions(predict(a, frames, "native")[0], predict(b, frames, "native")[0])[
        "argmax_agreement"
    ]


def miou_gate(
    reference: float,
    candidate: float,
    *,
    max_drop: float,
    what: str,
    extra: dict[str, Any] | None = None,
    block: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Gate on the mIoU drop ``reference − candidate`` (fractions); raises :class:`ParityError`.

    ``max_drop`` is a fraction too: 0.01 = 1.0 mIoU point.
    """
    drop = reference - candidate
    rep = {
        "miou_reference": reference,
        "miou_candidate": candidate,
        "miou_drop": drop,
        "max_miou_drop": max_drop,
        **(extra or {}),
    }
    failures = []
    if not np.isfinite(drop) or drop > max_drop:
        failures.append(f"{what}: mIoU drop {100 * drop:.3f} points > {100 * max_drop:.3f} points")
    rep["failures"], rep["passed"] = failures, not failures
    if failures:
        raise ParityError(f"{what} accuracy gate failed", rep, block)
    return rep
