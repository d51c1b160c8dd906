"""Base dataset and image reader shared by every dataset.

Masks are read, mapped and paired by :mod:`rdd.labels` (torch-free, the runner uses the same
code): ``read_mask`` is :func:`rdd.labels.read_label`.

A dataset is a list of ``(image_path, mask_path | None)`` pairs plus a label mapping. Loading
returns the project's raw convention (``uint8`` ``H×W×3`` RGB image, ``uint8`` ``H×W`` train ids
with ignore 255); ``__getitem__`` additionally applies a transform that yields tensors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from rdd.labels import IGNORE_INDEX, apply_lut, build_lut, masks_by_stem
from rdd.labels import read_label as read_mask
from rdd.spec import ClassInfo

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_EXTENSIONS",
    "SegmentationDataset",
    "apply_lut",
    "build_lut",
    "list_images",
    "pair_by_stem",
    "read_image",
    "read_mask",
    "require_dir",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

Transform = Callable[[np.ndarray, "np.ndarray | None"], tuple[torch.Tensor, torch.Tensor]]


# --------------------------------------------------------------------------- readers
def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``uint8`` ``H×W×3`` **RGB** (grey images are expanded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"could not decode image file {path} (corrupt or unsupported format)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def require_dir(path: Path, what: str, hint: str = "") -> Path:
    if not path.is_dir():
        msg = f"{what} not found: {path}"
        raise FileNotFoundError(msg + (f". {hint}" if hint else ""))
    return path


# --------------------------------------------------------------------------- dataset
class SegmentationDataset(Dataset):
    """A list of ``(image_path, mask_path | None)`` pairs with a label space.

    Subclasses fill ``files`` and ``classes`` and either set ``lut`` (a raw → train id table from
    :func:`build_lut`) or override :meth:`map_mask`.

    Args:
        files: ``(image_path, mask_path or None)`` pairs. ``None`` masks load as all-ignore.
        classes: the label space.
        transform: ``transform(image, mask) -> (x, y)``; default: ``EvalTransform()`` (whole
            image, ImageNet normalisation).
        name: label for error messages.
    """

    def __init__(
        self,
        files: Sequence[tuple[str | os.PathLike, str | os.PathLike | None]],
        classes: ClassInfo,
        transform: Transform | None = None,
        *,
        lut: np.ndarray | None = None,
        name: str = "dataset",
    ) -> None:
        self.files: list[tuple[Path, Path | None]] = [
            (Path(i), None if m is None else Path(m)) for i, m in files
        ]
        self.classes = classes
        self.lut = lut if lut is not None else build_lut(identity=classes.num_classes)
        self.name = name
        if transform is None:
            from rdd.data.transforms import EvalTransform

            transform = EvalTransform()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"num_classes={self.classes.num_classes})"
        )

    # -- loading
    def map_mask(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Raw mask ids → ``uint8`` train ids ``[0, K)`` ∪ {255}; errors name ``path``."""
        return apply_lut(raw, self.lut, num_classes=self.classes.num_classes, path=path)

    def load_image(self, i: int) -> np.ndarray:
        return read_image(self.files[i][0])

    def load_mask(self, i: int) -> np.ndarray | None:
        mask_path = self.files[i][1]
        if mask_path is None:
            return None
        return self.map_mask(read_mask(mask_path), mask_path)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw sample ``i``: ``uint8`` ``H×W×3`` RGB image and ``uint8`` ``H×W`` train ids.

        A sample without a mask gets an all-ignore mask. Raises ``ValueError`` naming the files
        when the mask size differs from the image size or a label is out of range.
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} samples")
        image = self.load_image(i)
        mask = self.load_mask(i)
        if mask is None:
            mask = np.full(image.shape[:2], IGNORE_INDEX, np.uint8)
        elif mask.shape != image.shape[:2]:
            img_path, mask_path = self.files[i]
            raise ValueError(
                f"mask {mask_path} has size {mask.shape[1]}×{mask.shape[0]} (W×H) but image "
                f"{img_path} has size {image.shape[1]}×{image.shape[0]}"
            )
        return image, mask

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(i)
        return self.transform(image, mask)

    # -- checks
    def validate(self, *, max_errors: int = 20, progress: bool = False) -> dict[str, Any]:
        """Load every sample; raise one ``ValueError`` listing every bad file (up to
        ``max_errors``), else return a summary: ``{"num_samples", "sizes", "class_pixels",
        "ignore_pixels", "class_frequency"}``.
        """
        k = self.classes.num_classes
        counts = np.zeros(256, np.int64)
        sizes: dict[str, int] = {}
        errors: list[str] = []
        it = range(len(self))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"validate {self.name}")
        for i in it:
            try:
                image, mask = self.load(i)
            except (OSError, ValueError) as e:
                errors.append(str(e))
                if len(errors) >= max_errors:
                    break
                continue
            key = f"{image.shape[0]}x{image.shape[1]}"
            sizes[key] = sizes.get(key, 0) + 1
            counts += np.bincount(mask.ravel(), minlength=256)
        if errors:
            more = " (stopped early)" if len(errors) >= max_errors else ""
            raise ValueError(f"{self.name}: {len(errors)} bad sample(s){more}:\n  " + "\n  ".join(errors))
        labelled = counts[:k].sum()
        freq = (counts[:k] / labelled).tolist() if labelled else [0.0] * k
        return {
            "num_samples": len(self),
            "sizes": sizes,
            "class_pixels": dict(zip(self.classes.names, counts[:k].tolist())),
            "ignore_pixels": int(counts[IGNORE_INDEX]),
            "class_frequency": dict(zip(self.classes.names, freq)),
        }


def pair_by_stem(
    images: list[Path],
    mask_dir: Path,
    *,
    mask_suffix: str = "",
    mask_exts: Sequence[str] = (".png",),
    require_masks: bool = True,
    what: str = "dataset",
) -> list[tuple[Path, Path | None]]:
    """Match each image to ``mask_dir / (stem + mask_suffix + ext)``.

    Raises ``FileNotFoundError`` naming the first image without a mask when ``require_masks``.
    """
    available = masks_by_stem(mask_dir, mask_exts)
    out: list[tuple[Path, Path | None]] = []
    for img in images:
        key = img.stem + mask_suffix
        m = available.get(key)
        if m is None and require_masks:
            raise FileNotFoundError(
                f"{what}: image {img} has no mask; expected {mask_dir / (key + mask_exts[0])}"
            )
        out.append((img, m))
    return out
