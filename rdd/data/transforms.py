"""Joint image / mask transforms for training and evaluation.

Both transforms take the raw sample of :meth:`SegmentationDataset.load` (``uint8`` ``H×W×3`` RGB,
``uint8`` ``H×W`` train ids) and return ``(float32 3×h×w tensor, int64 h×w tensor)``. Images are
normalised with :meth:`rdd.spec.Normalization.apply` — the same code the exporter and the edge
runtime use, so train-time and deploy-time inputs cannot drift apart.

Randomness: each call of :class:`TrainTransform` draws a 63-bit seed from *torch's* global
generator and builds a ``numpy.random.Generator`` from it. PyTorch seeds that generator with
``base_seed + worker_id`` in every ``DataLoader`` worker, so augmentation is reproducible under
``torch.manual_seed`` for any ``num_workers`` and different across workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from rdd.spec import Normalization, as_hw

IGNORE_INDEX = 255


def torch_seeded_rng() -> np.random.Generator:
    """A numpy Generator seeded from torch's (per-worker) global RNG stream."""
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64).item())
    return np.random.default_rng(seed)


def to_tensors(
    image: np.ndarray, mask: np.ndarray | None, normalization: Normalization, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """``H×W×3`` image (uint8 or float in 0..255) and ``H×W`` mask → (``3×H×W`` float32,
    ``H×W`` int64). A ``None`` mask becomes all ``ignore_index``."""
    x = torch.from_numpy(normalization.apply(image))
    if mask is None:
        y = torch.full(image.shape[:2], ignore_index, dtype=torch.int64)
    else:
        y = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))
    return x, y


def _mean_color_rgb(normalization: Normalization) -> tuple[float, float, float]:
    mean = [m * 255.0 for m in normalization.mean]
    if normalization.color == "BGR":  # mean is listed in the model's order; images are RGB
        mean = mean[::-1]
    return tuple(mean)  # type: ignore[return-value]


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Photometric jitter: brightness, contrast and saturation factors ~ U[1-s, 1+s].

    ``image``: ``H×W×3`` RGB (uint8 or float32 0..255) → float32 ``H×W×3`` in [0, 255].
    Applied in a random order, like torchvision's ``ColorJitter``.
    """
    x = image.astype(np.float32, copy=True)
    if strength <= 0:
        return x
    lo, hi = max(0.0, 1.0 - strength), 1.0 + strength
    for op in rng.permutation(3):
        f = float(rng.uniform(lo, hi))
        if op == 0:  # brightness
            x *= f
        elif op == 1:  # contrast around the mean grey level
            grey = float((x @ np.float32([0.299, 0.587, 0.114])).mean())
            x = (x - grey) * f + grey
        else:  # saturation around the per-pixel grey
            grey = (x @ np.float32([0.299, 0.587, 0.114]))[..., None]
            x = (x - grey) * f + grey
        np.clip(x, 0.0, 255.0, out=x)
    return x


class TrainTransform:
    """Random scale → random crop (padding with mean colour / ignore) → flip → jitter → normalise.

    Args:
        crop_size: output ``(h, w)`` (or one int).
        scale_range: the image is resized by ``s ~ U(scale_range)`` (bilinear for the image,
            nearest for the mask) before cropping.
        flip: random horizontal flip with probability 0.5.
        jitter: brightness / contrast / saturation strength (0 disables).
        normalization: input normalisation (``Normalization.apply``).
        ignore_index: mask value for padded pixels.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int] = (360, 480),
        *,
        scale_range: Sequence[float] = (0.5, 2.0),
        flip: bool = True,
        jitter: float = 0.2,
        normalization: Normalization | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.crop_size = as_hw(crop_size)
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {tuple(scale_range)}")
        if jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        self.scale_range = (lo, hi)
        self.flip = bool(flip)
        self.jitter = float(jitter)
        self.normalization = normalization or Normalization()
        self.ignore_index = int(ignore_index)

    def __repr__(self) -> str:
        return (
            f"TrainTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, "
            f"flip={self.flip}, jitter={self.jitter}, normalization={self.normalization}, "
            f"ignore_index={self.ignore_index})"
        )

    def augment(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The geometric + photometric part on numpy arrays: → (float32 ``h×w×3`` RGB 0..255,
        uint8 ``h×w``)."""
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape}")
        ch, cw = self.crop_size
        h0, w0 = mask.shape
        s = float(rng.uniform(*self.scale_range))
        h, w = max(1, int(round(h0 * s))), max(1, int(round(w0 * s)))
        if (h, w) != (h0, w0):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
        # crop window in the (conceptually) bottom/right-padded image; pad only the crop
        y0 = int(rng.integers(0, max(h - ch, 0) + 1))
        x0 = int(rng.integers(0, max(w - cw, 0) + 1))
        image = image[y0 : y0 + ch, x0 : x0 + cw]
        mask = mask[y0 : y0 + ch, x0 : x0 + cw]
        if self.flip and rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        image = color_jitter(image, self.jitter, rng)
        ph, pw = ch - image.shape[0], cw - image.shape[1]
        if ph > 0 or pw > 0:
            image = cv2.copyMakeBorder(
                np.ascontiguousarray(image),
                0,
                ph,
                0,
                pw,
                cv2.BORDER_CONSTANT,
                value=_mean_color_rgb(self.normalization),
            )
            mask = cv2.copyMakeBorder(
                np.ascontiguousarray(mask), 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=self.ignore_index
            )
        return image, np.ascontiguousarray(mask)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            mask = np.full(image.shape[:2], self.ignore_index, np.uint8)
        rng = rng if rng is not None else torch_seeded_rng()
        image, mask = self.augment(image, mask, rng)
        return to_tensors(image, mask, self.normalization, self.ignore_index)


class EvalTransform:
    """Optional resize (bilinear image, nearest mask) → normalise.

    ``size=None`` keeps the whole image (metrics at native resolution); ``(h, w)`` resizes both.
    """

    def __init__(
        self,
        size: int | Sequence[int] | None = None,
        *,
        normalization: Normalization | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.size = None if size is None else as_hw(size)
        self.normalization = normalization or Normalization()
        self.ignore_index = int(ignore_index)

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size}, normalization={self.normalization})"

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is not None and mask.shape != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape}")
        if self.size is not None and tuple(image.shape[:2]) != self.size:
            h, w = self.size
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            if mask is not None:
                mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
        return to_tensors(image, mask, self.normalization, self.ignore_index)
