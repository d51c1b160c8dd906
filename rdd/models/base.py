"""The one segmentation model class, its export wrapper and cheap profiling helpers."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdd.spec import as_hw

__all__ = [
    "SegmentationModel",
    "export_wrapper",
    "ExportWrapper",
    "unwrap_model",
    "count_params",
    "count_flops",
]


class SegmentationModel(nn.Module):
    """``backbone`` → ``head`` (+ optional ``aux_head`` on the backbone's ``"aux"`` stage).

    ``forward(x, *, with_aux=None, with_feats=None)`` returns a dict (DESIGN.md, "Models"):

    * ``"out"``   – N×K×H×W logits, bilinearly resized (``align_corners=False``) to the input size;
    * ``"aux"``   – N×K×H×W logits of the auxiliary FCN head, when computed;
    * ``"feats"`` – ``{"backbone": last stage N×C×h×w, "head": pre-classifier feature N×C'×h×w}``.

    ``with_aux`` / ``with_feats`` default to ``self.training``, so an eval-mode model returns
    ``{"out"}`` only. ``with_aux=True`` on a model built with ``aux=False`` is an error.

    Attributes set by the builders (:func:`rdd.models.create_model`): ``model_name`` and
    ``model_kwargs`` (including ``num_classes``; ``backbone_weights`` is recorded as ``None``
    because the state dict carries the weights) so ``create_model(m.model_name, **m.model_kwargs)``
    rebuilds the same architecture.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None = None, *, num_classes: int
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.aux_head = aux_head
        self.num_classes = int(num_classes)
        self.model_name: str = type(self).__name__
        self.model_kwargs: dict[str, Any] = {"num_classes": self.num_classes}

    @property
    def has_aux(self) -> bool:
        return self.aux_head is not None

    def forward(
        self, x: Tensor, *, with_aux: bool | None = None, with_feats: bool | None = None
    ) -> dict[str, Any]:
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != 3):
            raise ValueError(f"{self.model_name}: expected an N×3×H×W input, got {tuple(x.shape)}")
        if with_aux and self.aux_head is None:  # explicitly asked for
            raise ValueError(f"{self.model_name} was built with aux=False; cannot return 'aux'")
        with_aux = self.training if with_aux is None else bool(with_aux)
        with_feats = self.training if with_feats is None else bool(with_feats)
        size = x.shape[-2:]
        stages, feat, logits = self.head_logits(x)  # N×C'×h×w, N×K×h×w
        out: dict[str, Any] = {"out": _upsample(logits, size)}
        if with_aux and self.aux_head is not None:
            out["aux"] = _upsample(self.aux_head(stages["aux"]), size)
        if with_feats:
            out["feats"] = {"backbone": stages["out"], "head": feat}
        return out

    def head_logits(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """``(backbone stages, head feature N×C'×h×w, logits N×K×h×w)``: the head's logits at
        its own stride, before the final bilinear upsampling to the input size that
        :meth:`forward` applies (``out``)."""
        stages = self.backbone(x)  # {"low", "aux", "out"}
        feat, logits = self.head(stages)
        return stages, feat, logits

    def extra_repr(self) -> str:
        return f"model_name={self.model_name!r}, num_classes={self.num_classes}"


def _upsample(x: Tensor, size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ExportWrapper(nn.Module):
    """Wraps a :class:`SegmentationModel`; ``forward(x)`` returns the N×K×H×W ``out`` logits only
    (``head="full"``), or the head's logits before the final upsampling (``head="lowres"``,
    N×K×h×w; the runtime upsamples them exactly as :func:`_upsample` would)."""

    def __init__(self, model: SegmentationModel, head: str = "full"):
        super().__init__()
        if head not in ("full", "lowres"):
            raise ValueError(f"export head must be 'full' or 'lowres', got {head!r}")
        self.model, self.head = model, head

    def forward(self, x: Tensor) -> Tensor:
        if self.head == "lowres":
            return self.model.head_logits(x)[2]
        return self.model(x, with_aux=False, with_feats=False)["out"]


def unwrap_model(model: nn.Module) -> SegmentationModel:
    """Return the :class:`SegmentationModel` inside DDP / ``torch.compile`` / export wrappers."""
    seen = 0
    while not isinstance(model, SegmentationModel):
        inner = (
            getattr(model, "module", None)
            or getattr(model, "_orig_mod", None)
            or getattr(model, "model", None)
        )
        if inner is None or seen > 8:
            raise TypeError(f"expected a SegmentationModel (possibly wrapped), got {type(model).__name__}")
        model, seen = inner, seen + 1
    return model


def export_wrapper(model: nn.Module, head: str = "full") -> ExportWrapper:
    """An eval-mode module whose ``forward(x)`` returns the ``out`` tensor (no aux, no feats), or
    with ``head="lowres"`` the head's logits before the final upsampling."""
    return ExportWrapper(unwrap_model(model), head).eval()


# ------------------------------------------------------------------------------- profiling
def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: nn.Module, input_size, *, batch_size: int = 1) -> int:
    """FLOPs of one eval-mode forward at ``input_size`` (H, W), counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (1 multiply-add = 2 FLOPs; convolutions, matmuls
    and similar only — elementwise ops, BN and resizes are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    h, w = as_hw(input_size)
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        x = torch.zeros(
            batch_size,
            3,
            h,
            w,
            device=p.device if p is not None else "cpu",
            dtype=p.dtype if p is not None else torch.float32,
        )
        with FlopCounterMode(display=False) as counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)
