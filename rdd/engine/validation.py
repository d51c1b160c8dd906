"""Validation during training, and the result files that record it.

:func:`validate_student`: mIoU etc. of the student on the validation split, sharded over the
ranks and merged with ``ConfusionMatrix.all_reduce`` inside :func:`rdd.evaluation.evaluate`, with
BN statistics made identical first (:func:`sync_buffers`). :func:`save_results` writes rank 0's
``model.pt`` + ``model.json`` (:func:`rdd.artifacts.save_artifact`) and ``metrics.json``; the
artefact's ``input_size`` is the resolution validation ran at (:func:`validated_input_size`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from rdd.spec import ClassInfo, Normalization, write_json_atomic

from . import distributed as D
from .config import DataConfig

__all__ = ["validate_student", "sync_buffers", "validated_input_size", "save_results"]


def sync_buffers(model: torch.nn.Module, info: D.DistInfo) -> None:
    """Make BN running statistics identical on all ranks (rank 0's)."""
    if info.distributed:
        for b in model.buffers():
            torch.distributed.broadcast(b, src=0)


def validate_student(
    student: torch.nn.Module,
    val_set: Any,
    c: DataConfig,
    info: D.DistInfo,
    *,
    num_classes: int,
    ignore_index: int,
    device: torch.device,
) -> dict[str, Any]:
    """``{"miou", "pixel_acc", "mean_acc", "iou"}`` of ``student`` on ``val_set`` (every rank
    calls it; rank ``r`` of ``W`` evaluates images ``r, r + W, …``)."""
    from rdd.evaluation import evaluate

    sync_buffers(student, info)
    shard = Subset(val_set, list(range(info.rank, len(val_set), info.world_size)))
    # A private generator so that evaluation never draws from the global (checkpointed) RNG.
    loader = DataLoader(
        shard,
        batch_size=c.val_batch_size,
        shuffle=False,
        num_workers=min(c.num_workers, 2),
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )
    res = evaluate(
        student,
        loader,
        num_classes,
        ignore_index,
        mode="whole",
        device=device,
        all_reduce=info.distributed,
    )
    return {k: res[k] for k in ("miou", "pixel_acc", "mean_acc", "iou")}


def validated_input_size(c: DataConfig, val_set: Any) -> list[int]:
    """``[H, W]`` the student was validated at: ``data.eval_size``, else the native size of
    the first validation image (``data.crop_size`` only for an empty validation split)."""
    if c.eval_size is not None:
        return list(c.eval_size)
    if len(val_set) == 0:
        return list(c.crop_size)
    image, _ = val_set.load(0)  # H×W×3
    return [int(image.shape[0]), int(image.shape[1])]


def save_results(
    out_dir: Path,
    student: torch.nn.Module,
    metrics: dict[str, Any],
    *,
    classes: ClassInfo,
    normalization: Normalization,
    input_size: list[int],
) -> None:
    """``out_dir/model.pt`` + ``model.json`` (with the validation metrics, step and method) and
    ``out_dir/metrics.json`` (all of ``metrics``); rank 0 calls it."""
    from rdd.artifacts import save_artifact

    save_artifact(
        out_dir / "model.pt",
        student,
        classes=classes,
        normalization=normalization,
        input_size=input_size,
        metrics={k: metrics[k] for k in ("miou", "pixel_acc", "mean_acc", "iou", "step", "method")},
    )
    write_json_atomic(out_dir / "metrics.json", metrics)
