"""The one frame type of the measuring tools: decoded RGB frames with optional labels.

:class:`Frames` is a list of :class:`Frame` (``image`` uint8 ``H×W×3`` RGB, ``mask`` integer
``H×W`` ids or ``None``, ``name``) plus the ``ignore_index`` of its masks, loaded from

* a dataset with ``load(i) -> (image, mask)`` and ``len`` (:mod:`rdd.data`);
* an image folder, a single image file or a glob, with an optional label folder (masks matched
  by file stem and read by :mod:`rdd.labels`, the dataset code's reader);
* a video file (its first frames), with masks matched by frame index;
* images in memory, ``(image, mask)`` pairs, :class:`Frame` objects or image paths.

Every loader takes ``limit`` (evenly spaced frames, deterministic) and ``size`` (images
bilinear, masks ``INTER_NEAREST_EXACT``, as the runtime and ``EvalTransform`` resize). Export's
gates and calibration, ``rdd-bench``, ``rdd-infer --compare`` and the study diagnostics all use
it. numpy + OpenCV.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rdd.runtime.errors import InputError
from rdd.runtime.stream.transforms import fit, resize_labels
from rdd.spec import as_hw

__all__ = ["Frame", "Frames", "load_frames", "iter_batches", "evenly_spaced"]


@dataclass
class Frame:
    """A raw frame: ``image`` uint8 ``H×W×3`` RGB, ``mask`` integer ``H×W`` (or ``None``)."""

    image: np.ndarray
    mask: np.ndarray | None = None
    name: str = ""


class Frames(list):
    """A list of :class:`Frame` whose masks use ``ignore_index`` (see the module docstring)."""

    def __init__(self, frames: Iterable[Frame] = (), ignore_index: int = 255) -> None:
        super().__init__(frames)
        self.ignore_index = int(ignore_index)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self]

    @property
    def images(self) -> list[np.ndarray]:
        return [f.image for f in self]

    @property
    def labels(self) -> list[np.ndarray] | None:
        """The masks, or ``None`` unless every frame has one."""
        return None if not self or any(f.mask is None for f in self) else [f.mask for f in self]

    # ------------------------------------------------------------------ loaders
    @classmethod
    def from_arrays(
        cls,
        images: Sequence[np.ndarray],
        labels: Sequence[np.ndarray] | None = None,
        *,
        names: Sequence[str] | None = None,
        ignore_index: int = 255,
    ) -> Frames:
        names = list(names) if names is not None else [str(i) for i in range(len(images))]
        labels = list(labels) if labels is not None else [None] * len(images)
        return cls(
            (Frame(_check_image(im, n), lab, n) for im, lab, n in zip(images, labels, names)), ignore_index
        )

    @classmethod
    def from_folder(
        cls,
        images: str | os.PathLike,
        labels: str | os.PathLike | None = None,
        *,
        ignore_ids: Sequence[int] = (),
        ignore_index: int = 255,
        limit: int | None = None,
        max_pixels: int | None = None,
    ) -> Frames:
        """Images of a folder, a file or a glob (file-name order; ``limit`` evenly spaced), a
        video file (its first ``limit`` frames), and their masks (by stem, or for a video by
        frame index; every selected frame must have one)."""
        from rdd.runtime.stream.capture import VideoSource
        from rdd.runtime.stream.labels import LabelFolder
        from rdd.runtime.stream.sources import ImageFolderSource, image_files

        if Path(images).is_file() and Path(images).suffix.lower() not in _IMAGE_SUFFIXES():
            src, by_index = VideoSource(images, max_pixels=max_pixels), True
            pairs: list[tuple[str, np.ndarray]] = []
            try:
                for name, img in src:
                    if limit is not None and len(pairs) >= limit:
                        break
                    pairs.append((name, img))
            finally:
                src.close()
        else:
            files = image_files(images)
            src = ImageFolderSource(files, max_pixels=max_pixels)
            src.files = [files[i] for i in evenly_spaced(len(files), limit)]
            pairs, by_index = list(src), False
        frames = cls((Frame(img, None, name) for name, img in pairs), ignore_index)
        if labels is not None:
            lf = LabelFolder(labels, by_index=by_index, ignore_ids=ignore_ids, ignore_index=ignore_index)
            for i, f in enumerate(frames):
                path = lf.path_for(i, f.name)
                if path is None:
                    raise InputError(
                        f"no label in {labels} for frame {i if by_index else repr(f.name)} of {images}"
                    )
                f.mask = lf.load(path, f.image.shape[:2])
        return frames

    @classmethod
    def load(
        cls, source: Any, *, size: int | Sequence[int] | None = None, limit: int | None = None
    ) -> Frames:
        """Frames from a dataset or frames in memory (see the module docstring), resized to
        ``size`` = ``(H, W)`` when given (a dataset's ``EvalTransform`` size otherwise)."""
        hw = as_hw(size) if size is not None else None
        if isinstance(source, Frames) and hw is None and limit is None:
            return source
        if hasattr(source, "load") and hasattr(source, "__len__") and not isinstance(source, (list, tuple)):
            if hw is None:
                t_size = getattr(getattr(source, "transform", None), "size", None)
                hw = as_hw(t_size) if t_size is not None else None
            files = getattr(source, "files", None)
            out = cls(ignore_index=getattr(getattr(source, "classes", None), "ignore_index", 255))
            for i in evenly_spaced(len(source), limit):
                img, mask = source.load(i)
                name = str(files[i][0]) if files is not None else str(i)
                out.append(
                    _resized(
                        Frame(
                            _check_image(img, f"dataset item {i} ({name})"),
                            None if mask is None else np.asarray(mask),
                            name,
                        ),
                        hw,
                    )
                )
            return out
        if isinstance(source, (str, os.PathLike)) or isinstance(source, np.ndarray) and source.ndim == 3:
            source = [source]
        items = list(source)
        out = cls(ignore_index=getattr(source, "ignore_index", 255))
        for k in evenly_spaced(len(items), limit):
            it = items[k]
            mask, name = None, str(k)
            if isinstance(it, Frame):
                img, mask, name = it.image, it.mask, it.name or name
            elif isinstance(it, (tuple, list)) and len(it) == 2:
                img, mask = it
            elif isinstance(it, (str, os.PathLike)):
                img, name = _read_rgb(it), str(it)
            else:
                img = it
            out.append(
                _resized(
                    Frame(
                        _check_image(img, f"frame {name}"), None if mask is None else np.asarray(mask), name
                    ),
                    hw,
                )
            )
        if not out:
            raise ValueError("load_frames: no frames in source")
        return out

    def resized(self, size: Sequence[int] | None) -> Frames:
        """These frames at ``size`` (the same objects when ``None`` or already that size)."""
        hw = as_hw(size) if size is not None else None
        if hw is None or all(f.image.shape[:2] == hw for f in self):
            return self
        return Frames((_resized(f, hw) for f in self), self.ignore_index)


def load_frames(source: Any, *, size: int | Sequence[int] | None = None, limit: int | None = None) -> Frames:
    """:meth:`Frames.load` (what export's gates and calibration call)."""
    return Frames.load(source, size=size, limit=limit)


def evenly_spaced(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(n)`` (all of them when ``limit`` is None)."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, limit)})


def iter_batches(frames: Sequence[Frame], batch_size: int) -> Iterator[list[Frame]]:
    """Consecutive batches of frames of equal size (a size change starts a new batch)."""
    batch: list[Frame] = []
    for f in frames:
        if batch and (len(batch) == batch_size or f.image.shape != batch[0].image.shape):
            yield batch
            batch = []
        batch.append(f)
    if batch:
        yield batch


def _IMAGE_SUFFIXES() -> tuple[str, ...]:
    from rdd.runtime.stream.sources import IMAGE_EXTS

    return IMAGE_EXTS


def _resized(f: Frame, hw: tuple[int, int] | None) -> Frame:
    if hw is None or f.image.shape[:2] == hw:
        return f
    mask = None if f.mask is None else resize_labels(np.asarray(f.mask), hw)
    return Frame(fit(f.image, hw), mask, f.name)


def _check_image(img: Any, where: str) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{where}: expected a uint8 H×W×3 RGB image, got {img.dtype} {img.shape}")
    return img


def _read_rgb(path: str | os.PathLike) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"load_frames: cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
