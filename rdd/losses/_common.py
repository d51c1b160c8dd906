"""Small shared helpers for the loss functions (shape checks, resizing, per-pixel CE)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def check_logits(x: Any, name: str) -> Tensor:
    """``x`` must be a floating ``N×K×H×W`` tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of logits N×K×H×W, got {type(x).__name__}")
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"{name}: expected floating logits N×K×H×W, got shape {tuple(x.shape)} dtype {x.dtype}"
        )
    return x


def check_target(target: Any, logits: Tensor, name: str = "target") -> Tensor:
    """``target`` must be an integer ``N×H×W`` tensor with the logits' batch size."""
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}: expected an integer torch.Tensor N×H×W, got {type(target).__name__}")
    if target.ndim != 3 or target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(
            f"{name}: expected integer labels N×H×W, got shape {tuple(target.shape)} dtype {target.dtype}"
        )
    if target.shape[0] != logits.shape[0]:
        raise ValueError(f"{name}: batch size {target.shape[0]} != logits batch size {logits.shape[0]}")
    return target


def resize(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize (``align_corners=False``) of ``N×C×h×w`` to ``size``; identity if equal."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def resize_map(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize of an ``N×h×w`` map to ``N×H×W``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return resize(x.unsqueeze(1), size).squeeze(1)


def split_output(
    student_out: Tensor | Mapping[str, Tensor], student_aux: Tensor | None, name: str
) -> tuple[Tensor, Tensor | None]:
    """Accept a logits tensor or a model output dict ``{"out": ..., "aux": ...}``.

    An explicit ``student_aux`` wins over ``student_out["aux"]``.
    """
    if isinstance(student_out, Mapping):
        if "out" not in student_out:
            raise ValueError(f"{name}: the output dict has no 'out' key (keys: {sorted(student_out)})")
        main = student_out["out"]
        if student_aux is None:
            student_aux = student_out.get("aux")
    else:
        main = student_out
    check_logits(main, f"{name}: student logits")
    if student_aux is not None:
        check_logits(student_aux, f"{name}: student_aux")
    return main, student_aux


def pixel_ce(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Per-pixel cross entropy ``N×H×W`` (float32), 0 at ignored pixels.

    ``logits`` (``N×K×h×w``) are resized to the target size first.
    """
    logits = resize(logits, target.shape[-2:]).float()
    k = logits.shape[1]
    bad = (target != ignore_index) & ((target < 0) | (target >= k))
    if bool(bad.any()):
        raise ValueError(f"target holds ids outside [0, {k}) that are not ignore_index={ignore_index}")
    return F.cross_entropy(logits, target.long(), ignore_index=ignore_index, reduction="none")
