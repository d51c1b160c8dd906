"""PyTorch → ONNX export of a segmentation model, with the ``rdd_meta`` block the runtime needs.

The exported graph computes the main logits only (no auxiliary head, no features): the model is
put in eval mode and wrapped with :func:`rdd.models.export_wrapper`. Two optional extras are
folded into the graph so that the edge runtime does less work in Python:

* ``fold_preprocess``: the input is the raw ``uint8 N×H×W×3`` RGB frame; the graph casts it,
  reorders channels when the model wants BGR, normalises with ``(x − 255·mean) / (255·std)`` and
  transposes to ``N×3×H×W``;
* ``argmax``: the output is the ``uint8 N×H×W`` class map ``labels`` instead of ``float32
  N×K×H×W`` logits (K ≤ 255).

And one thing left out: ``head="lowres"`` ends the graph at the head's logits before the final
bilinear upsampling (stride 8 for the LR-ASPP student: 45×60 logits for a 360×480 frame, 64×
fewer bytes out of the graph); ``rdd_meta.head`` records the dropped op (bilinear, half-pixel)
and the stride, and the runtime computes the argmax of the upsampled logits exactly without
upsampling them where it need not (:mod:`rdd.runtime.backends.lowres`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rdd.contract import META_KEY, PRECISION_KEY, ModelMeta, read_onnx_meta
from rdd.spec import ClassInfo, Normalization, as_hw, atomic_path

__all__ = ["export_onnx", "ExportModule"]

MIN_OPSET = 17


def _main_output(model: nn.Module, head: str = "full") -> nn.Module:
    """``model`` wrapped so that forward returns the main ``N×K×H×W`` logits tensor only (or,
    ``head="lowres"``, the head's logits before the final upsampling)."""
    try:
        from rdd.models import export_wrapper
    except ImportError:  # models package not importable: accept any module returning a tensor/dict
        export_wrapper = None
    if export_wrapper is not None and hasattr(model, "model_name"):
        return export_wrapper(model, head)
    if head != "full":
        raise ValueError("export_onnx: head='lowres' needs a rdd.models SegmentationModel")
    return _OutOnly(model)


class _OutOnly(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out["out"] if isinstance(out, dict) else out


class ExportModule(nn.Module):
    """What gets traced: optional folded preprocessing → model logits → optional argmax.

    Args:
        model: the segmentation model (``forward(x)`` → tensor or ``{"out": ...}``).
        normalization: the model's input normalisation (used only with ``fold_preprocess``).
        fold_preprocess: input ``uint8 N×H×W×3`` RGB instead of normalised ``float32 N×3×H×W``.
        argmax: output ``uint8 N×H×W`` labels instead of ``float32 N×K×H×W`` logits.
        head: ``"full"`` (input-size logits) or ``"lowres"`` (the head's stride-s logits).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        normalization: Normalization,
        fold_preprocess: bool = False,
        argmax: bool = False,
        head: str = "full",
    ) -> None:
        super().__init__()
        if argmax and head != "full":
            raise ValueError("export_onnx: argmax needs the full head (labels at the input size)")
        self.net = _main_output(model, head)
        self.fold_preprocess = fold_preprocess
        self.argmax = argmax
        self.bgr = normalization.color == "BGR"
        # Shapes 1×3×1×1, in the model's channel order.
        self.register_buffer(
            "offset", torch.tensor(normalization.mean).view(1, 3, 1, 1) * 255.0, persistent=False
        )
        self.register_buffer(
            "scale", torch.tensor(normalization.std).view(1, 3, 1, 1) * 255.0, persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold_preprocess:
            # x: uint8 N×H×W×3 RGB → float32 N×3×H×W normalised
            x = x.permute(0, 3, 1, 2).to(torch.float32)
            if self.bgr:
                x = x.flip(1)
            x = (x - self.offset) / self.scale
        logits = self.net(x)  # N×K×H×W
        if self.argmax:
            return logits.argmax(1).to(torch.uint8)  # N×H×W
        return logits


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    classes: ClassInfo,
    normalization: Normalization,
    input_size: int | Sequence[int],
    opset: int = 17,
    argmax: bool = False,
    fold_preprocess: bool = False,
    dynamic_batch: bool = True,
    dynamic_spatial: bool = True,
    simplify: bool = True,
    model_name: str | None = None,
    head: str = "full",
    source_sha256: str | None = None,
) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` (atomically) with ``metadata_props["rdd_meta"]``.

    Uses the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``), then simplifies the
    graph with onnxslim (on failure the unsimplified graph is kept and the error recorded), runs
    ``onnx.checker`` and finally re-reads the written file with
    :func:`rdd.contract.read_onnx_meta` to prove the metadata matches the graph.

    Args:
        model: segmentation model; exported in eval mode, main logits only.
        path: output ``.onnx`` file.
        classes, normalization: written into ``rdd_meta`` (normalisation is also folded in with
            ``fold_preprocess``).
        input_size: ``(H, W)`` of the dummy input and the runtime's default size.
        opset: ONNX opset, ≥ 17.
        argmax: output ``labels`` (``uint8 N×H×W``) instead of ``logits``.
        fold_preprocess: input ``uint8 N×H×W×3`` RGB instead of normalised ``float32 N×3×H×W``.
        dynamic_batch, dynamic_spatial: symbolic batch / height-width axes.
        simplify: run onnxslim.
        model_name: name stored in ``rdd_meta["model"]`` (default: ``model.model_name``).
        head: ``"full"`` or ``"lowres"`` (see the module docstring).
        source_sha256: SHA-256 of the artifact the model was loaded from, recorded as
            ``metadata_props["rdd_source_sha256"]`` (builds of one model share their source).

    Returns:
        info dict: ``path, size_bytes, opset, simplified, simplify_error, export_seconds,
        num_nodes, meta``.
    """
    if opset < MIN_OPSET:
        raise ValueError(f"export_onnx: opset must be >= {MIN_OPSET}, got {opset}")
    h, w = as_hw(input_size)
    if argmax and classes.num_classes > 255:
        raise ValueError(f"export_onnx: argmax output is uint8, cannot hold {classes.num_classes} classes")
    name = model_name or getattr(model, "model_name", None) or type(model).__name__
    num_classes = getattr(model, "num_classes", classes.num_classes)
    if num_classes != classes.num_classes:
        raise ValueError(
            f"export_onnx: model predicts {num_classes} classes but classes lists {classes.num_classes} names"
        )
    path = Path(path)
    was_training = model.training
    model.eval()
    module = ExportModule(
        model, normalization=normalization, fold_preprocess=fold_preprocess, argmax=argmax, head=head
    ).eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    module.to(device)
    stride = None
    if head == "lowres":  # the head's stride, from the logits of a dummy input of the size
        with torch.no_grad():
            probe = (
                torch.zeros(1, h, w, 3, dtype=torch.uint8, device=device)
                if fold_preprocess
                else torch.zeros(1, 3, h, w, device=device)
            )
            lh = module(probe).shape[-2]
        stride = max(1, round(h / lh))
    meta = ModelMeta.build(
        model=name,
        classes=classes,
        normalization=normalization,
        input_size=(h, w),
        argmax=argmax,
        fold_preprocess=fold_preprocess,
        dynamic_batch=dynamic_batch,
        dynamic_spatial=dynamic_spatial,
        head=head,
        output_stride=stride,
    )
    if fold_preprocess:
        dummy = torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8, device=device)
        in_axes = {0: "batch"} if dynamic_batch else {}
        in_axes.update({1: "height", 2: "width"} if dynamic_spatial else {})
    else:
        dummy = torch.randn(1, 3, h, w, device=device)
        in_axes = {0: "batch"} if dynamic_batch else {}
        in_axes.update({2: "height", 3: "width"} if dynamic_spatial else {})
    out_axes = {0: "batch"} if dynamic_batch else {}
    sp = (1, 2) if argmax else (2, 3)
    names = ("height", "width") if head == "full" else ("logits_height", "logits_width")
    out_axes.update({sp[0]: names[0], sp[1]: names[1]} if dynamic_spatial else {})
    in_name, out_name = meta.input_name, meta.output_name

    import onnx

    t0 = time.perf_counter()
    try:
        with atomic_path(path) as tmp:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # legacy exporter notice
                torch.onnx.export(
                    module,
                    (dummy,),
                    str(tmp),
                    dynamo=False,
                    opset_version=opset,
                    input_names=[in_name],
                    output_names=[out_name],
                    dynamic_axes={in_name: in_axes, out_name: out_axes} if (in_axes or out_axes) else None,
                    do_constant_folding=True,
                )
            proto = onnx.load(str(tmp))
            if not argmax:  # the exporter leaves K symbolic after Resize; pin it (N×K×H×W)
                dim = proto.graph.output[0].type.tensor_type.shape.dim[1]
                dim.Clear()
                dim.dim_value = classes.num_classes
            simplified, simplify_error = False, None
            if simplify:
                proto, simplify_error = _simplify(proto)
                simplified = simplify_error is None
            _set_props(
                proto,
                {
                    META_KEY: meta.to_json(),
                    PRECISION_KEY: "fp32",
                    **({"rdd_source_sha256": source_sha256} if source_sha256 else {}),
                },
            )
            proto.producer_name = "rdd-edge"
            proto.doc_string = f"{name} exported by rdd.export (TorchScript exporter, opset {opset})"
            onnx.checker.check_model(proto)
            onnx.save(proto, str(tmp))
            read_onnx_meta(tmp)  # the metadata must describe the graph we wrote
    finally:
        model.train(was_training)
    return {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "opset": opset,
        "simplified": simplified,
        "simplify_error": simplify_error,
        "export_seconds": round(time.perf_counter() - t0, 3),
        "num_nodes": len(proto.graph.node),
        "meta": meta,
    }


def _simplify(proto: Any) -> tuple[Any, str | None]:
    """onnxslim the graph; on any failure keep the original and return the reason."""
    try:
        import onnxslim

        slim = onnxslim.slim(proto)
        if slim is None:
            return proto, "onnxslim returned nothing"
        return slim, None
    except Exception as e:  # noqa: BLE001 — simplification is an optimisation, never fatal
        return proto, f"{type(e).__name__}: {e}"


def _set_props(proto: Any, props: dict[str, str]) -> None:
    """Replace (not duplicate) entries of ``proto.metadata_props``."""
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for k, v in [*keep, *props.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
