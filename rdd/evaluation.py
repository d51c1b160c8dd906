"""Inference helpers (whole image, sliding window, multi-scale + flip) and dataset evaluation.

```python
from rdd.evaluation import predict_logits, evaluate
logits = predict_logits(model, x)                                   # N×K×H×W
logits = predict_logits(model, x, mode="slide", crop_size=(360, 480), stride=(240, 320))
logits = predict_logits(model, x, mode="msflip", scales=(0.75, 1.0, 1.25), flip=True)
metrics = evaluate(model, val_dataset, num_classes=11)              # ConfusionMatrix.compute()
```

The model follows DESIGN.md ("Models"): ``model(x)`` returns a dict with ``"out"`` (N×K×H×W
logits at input resolution); a module returning the logits tensor itself (e.g.
``rdd.models.export_wrapper(model)``) works too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdd.metrics import ConfusionMatrix
from rdd.spec import as_hw

__all__ = ["predict_logits", "evaluate", "INFERENCE_MODES"]

INFERENCE_MODES = ("whole", "slide", "msflip")


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    out = model(x)
    if isinstance(out, dict):
        if "out" not in out:
            raise ValueError(f"model output dict has no 'out' key (keys: {sorted(out)})")
        out = out["out"]
    if not isinstance(out, Tensor) or out.ndim != 4 or out.shape[0] != x.shape[0]:
        raise ValueError(
            f"expected the model to return N×K×H×W logits for an input of shape "
            f"{tuple(x.shape)}, got {getattr(out, 'shape', type(out).__name__)}"
        )
    if out.shape[-2:] != x.shape[-2:]:
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out


def _slide(
    model: nn.Module, x: Tensor, crop_size: tuple[int, int], stride: tuple[int, int], window_batch: int = 8
) -> Tensor:
    """Sliding-window logits ``N×K×H×W``: windows ``crop_size`` every ``stride``, overlaps averaged.

    An image smaller than the window is zero-padded bottom/right (0 = the mean colour after
    normalisation) and the prediction cropped back. The last window of a row/column is aligned
    with the image border so every pixel is covered. Windows are run ``window_batch`` images
    at a time (all windows of a batch of ``N`` images are stacked along the batch dimension).
    """
    n, _, h, w = x.shape
    ch, cw = crop_size
    sh, sw = stride
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    hp, wp = x.shape[-2:]
    boxes = [(y0, x0) for y0 in _window_starts(hp, ch, sh) for x0 in _window_starts(wp, cw, sw)]
    per_call = max(1, window_batch // n)
    logits: Tensor | None = None
    count = torch.zeros(1, 1, hp, wp, device=x.device, dtype=torch.float32)
    for i in range(0, len(boxes), per_call):
        chunk = boxes[i : i + per_call]
        crops = torch.cat([x[:, :, y0 : y0 + ch, x0 : x0 + cw] for y0, x0 in chunk])  # (len·N)×3×ch×cw
        outs = _forward(model, crops).float().split(n)
        if logits is None:
            logits = torch.zeros(n, outs[0].shape[1], hp, wp, device=x.device, dtype=torch.float32)
        for (y0, x0), out in zip(chunk, outs):
            logits[:, :, y0 : y0 + ch, x0 : x0 + cw] += out
            count[:, :, y0 : y0 + ch, x0 : x0 + cw] += 1
    assert logits is not None
    return (logits / count)[:, :, :h, :w]


def _window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of windows of ``crop`` over ``size ≥ crop`` every ``stride``, last at the end."""
    n = max(math.ceil((size - crop) / stride), 0) + 1
    return sorted({min(i * stride, size - crop) for i in range(n)})


def predict_logits(
    model: nn.Module,
    x: Tensor,
    mode: str = "whole",
    *,
    crop_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    scales: Sequence[float] = (0.75, 1.0, 1.25),
    flip: bool = True,
    window_batch: int = 8,
) -> Tensor:
    """Logits ``N×K×H×W`` for an input ``x`` (``N×3×H×W``), under ``torch.no_grad``.

    Modes:
      * ``"whole"``: one forward pass on the full image.
      * ``"slide"``: windows of ``crop_size`` (required) every ``stride`` (default ⌈2/3 crop⌉),
        logits averaged where windows overlap; images smaller than the window are padded.
        Windows go through the model ``window_batch`` images per forward pass.
      * ``"msflip"``: for every scale in ``scales`` (input resized bilinearly) and, if ``flip``,
        its horizontal mirror, the softmax probabilities (resized back to ``H×W``) are averaged.
        Each pass runs whole-image, or sliding-window when ``crop_size`` is given. Returns the
        **log of the averaged probabilities** (valid logits: their softmax/argmax is the average's).

    The caller is responsible for ``model.eval()`` (see :func:`evaluate`).
    """
    if mode not in INFERENCE_MODES:
        raise ValueError(f"predict_logits: mode must be one of {INFERENCE_MODES}, got {mode!r}")
    if not isinstance(x, Tensor) or x.ndim != 4:
        raise ValueError(
            f"predict_logits: expected an N×3×H×W tensor, got {getattr(x, 'shape', type(x).__name__)}"
        )
    crop = as_hw(crop_size) if crop_size is not None else None
    if mode == "slide" and crop is None:
        raise ValueError("predict_logits: mode='slide' needs crop_size=(h, w)")
    if stride is not None and crop is None:
        raise ValueError("predict_logits: stride is only used with crop_size")
    step = None
    if crop is not None:
        step = (
            as_hw(stride)
            if stride is not None
            else (max(1, math.ceil(crop[0] * 2 / 3)), max(1, math.ceil(crop[1] * 2 / 3)))
        )

    def run(inp: Tensor) -> Tensor:
        if crop is not None and step is not None:
            return _slide(model, inp, crop, step, window_batch)
        return _forward(model, inp)

    with torch.no_grad():
        if mode == "whole":
            return _forward(model, x)
        if mode == "slide":
            return run(x)
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"predict_logits: scales must be positive, got {tuple(scales)}")
        h, w = x.shape[-2:]
        probs: Tensor | None = None
        passes = 0
        for s in scales:
            size = (max(1, round(h * s)), max(1, round(w * s)))
            xs = x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            for flipped in (False, True) if flip else (False,):
                inp = xs.flip(-1) if flipped else xs
                out = run(inp).float()
                if flipped:
                    out = out.flip(-1)
                if out.shape[-2:] != (h, w):
                    out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
                p = out.softmax(dim=1)
                probs = p if probs is None else probs + p
                passes += 1
        assert probs is not None
        return (probs / passes).clamp_min(torch.finfo(torch.float32).tiny).log()


def _as_loader(data: Any, batch_size: int, num_workers: int) -> Iterable:
    from torch.utils.data import DataLoader, Dataset

    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    if hasattr(data, "__iter__"):
        return data
    raise TypeError(
        f"evaluate: expected a Dataset, DataLoader or iterable of (x, y) batches, got {type(data).__name__}"
    )


def evaluate(
    model: nn.Module,
    dataset_or_loader: Any,
    num_classes: int,
    ignore_index: int = 255,
    mode: str = "whole",
    device: str | torch.device | None = None,
    *,
    crop_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    scales: Sequence[float] = (0.75, 1.0, 1.25),
    flip: bool = True,
    window_batch: int = 8,
    batch_size: int = 1,
    num_workers: int = 0,
    max_batches: int | None = None,
    all_reduce: bool = False,
    with_confusion: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` on a dataset (or a loader of ``(x, y)`` batches) → metrics dict.

    Args:
        dataset_or_loader: a ``Dataset`` yielding ``(x: 3×H×W float, y: H×W int)`` — wrapped in a
            ``DataLoader`` with ``batch_size`` (keep 1 when image sizes differ) — or a
            ``DataLoader`` / iterable of ``(N×3×H×W, N×H×W)`` batches used as-is.
        num_classes, ignore_index: for :class:`rdd.metrics.ConfusionMatrix`.
        mode, crop_size, stride, scales, flip, window_batch: see :func:`predict_logits`.
        device: where to run; ``None`` (default) = the device of the model's parameters. Given
            explicitly, the model is moved there (``model.to(device)``).
        max_batches: stop after this many batches (quick checks).
        all_reduce: sum the confusion matrix over ``torch.distributed`` ranks (every rank must
            then call ``evaluate`` on its shard).
        with_confusion: also return the ``K×K`` matrix under ``"confusion"``.

    Returns:
        ``ConfusionMatrix.compute()`` (``miou``, ``iou``, ``pixel_acc``, ``mean_acc``) plus
        ``num_images`` and ``seconds``. Logits are resized to the label size if they differ.
        The model's train/eval mode is restored afterwards.
    """
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    loader = _as_loader(dataset_or_loader, batch_size, num_workers)
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    was_training = model.training
    model.eval()
    n_images = 0
    t0 = time.perf_counter()
    it = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc=f"eval ({mode})", leave=False)
    try:
        with torch.inference_mode():
            for b, batch in enumerate(it):
                if max_batches is not None and b >= max_batches:
                    break
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise ValueError("evaluate: each batch must be an (x, y) pair")
                x, y = batch[0], batch[1]
                if x.ndim == 3:  # an un-batched iterable of samples
                    x, y = x.unsqueeze(0), y.unsqueeze(0)
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                logits = predict_logits(
                    model,
                    x,
                    mode,
                    crop_size=crop_size,
                    stride=stride,
                    scales=scales,
                    flip=flip,
                    window_batch=window_batch,
                )
                if logits.shape[1] != num_classes:
                    raise ValueError(
                        f"evaluate: model predicts {logits.shape[1]} classes, num_classes={num_classes}"
                    )
                if logits.shape[-2:] != y.shape[-2:]:
                    logits = F.interpolate(
                        logits.float(), size=y.shape[-2:], mode="bilinear", align_corners=False
                    )
                cm.update(logits.argmax(1), y)
                n_images += x.shape[0]
    finally:
        model.train(was_training)
    if all_reduce:
        cm.all_reduce()
    result = cm.compute(with_confusion=with_confusion)
    result["num_images"] = n_images
    result["seconds"] = time.perf_counter() - t0
    return result
