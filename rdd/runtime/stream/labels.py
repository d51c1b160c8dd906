"""Ground-truth masks for a frame source (``labels``): matched by file stem or frame index,
read by :mod:`rdd.labels` (the dataset code's reader), bounded before decoding."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rdd.contract import InputError, resolve_max_pixels
from rdd.labels import (
    FRAME_MASK_PATTERN,
    LABEL_EXTS,
    apply_lut,
    build_lut,
    frame_masks,
    masks_by_stem,
    read_label,
)

__all__ = ["LabelFolder"]


class LabelFolder:
    """Ground-truth masks for a source, matched by file stem or by frame index.

    * image folders: ``<root>/<frame stem>.<ext>``;
    * videos / streams: ``<root>/frame_000000.png`` … by frame index (as written by
      ``rdd.data.synthetic.write_synthetic_video``). Other file names are not used for videos:
      pairing by name order would shift every later frame after one missing file.

    A frame without a mask is skipped by the metric and counted (the report's
    ``labels_missing``). Masks are read and mapped by :mod:`rdd.labels` (the dataset code's
    reader): palette PNGs give indices, 16-bit ids stay exact, and an id that is neither a class
    ``[0, num_classes)``, the ignore index nor one of ``ignore_ids`` is an :class:`InputError`.

    Args:
        root: folder of single-channel label images (train ids, ``ignore_index`` = ignore).
        by_index: match by frame index (True) or stem (False).
        ignore_ids: raw ids mapped to ``ignore_index`` (e.g. CamVid's 11 "Unlabelled").
        ignore_index: the value the metric skips.
        num_classes: the model's class count; ``None``: set by the :class:`Pipeline` from its
            model (until then only ``ignore_index`` and ids ``< 256`` are accepted).
    """

    HINT = "; map them to ignore with --ignore-ids (CamVid annotations: --label-map camvid)"

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        by_index: bool,
        ignore_ids: Sequence[int] = (),
        ignore_index: int = 255,
        num_classes: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_pixels = resolve_max_pixels(max_pixels)
        if not self.root.is_dir():
            raise InputError(f"label folder not found: {self.root}")
        try:
            self._by_stem = masks_by_stem(self.root)
        except ValueError as e:
            raise InputError(str(e)) from None
        if not self._by_stem:
            raise InputError(f"label folder {self.root} holds no label images ({', '.join(LABEL_EXTS)})")
        self.by_index = by_index
        self.ignore_ids = tuple(sorted({int(i) for i in ignore_ids}))
        self.ignore_index = int(ignore_index)
        self._by_frame = frame_masks(self.root)
        if by_index and not self._by_frame:
            example = sorted(self._by_stem)[0]
            raise InputError(
                f"label folder {self.root} has no {FRAME_MASK_PATTERN} masks (e.g. "
                f"{example!r}); video frames are matched to masks by index: "
                "frame_000000.png for the first frame, …"
            )
        self.num_classes: int | None = None
        self.set_num_classes(num_classes)

    def set_num_classes(self, num_classes: int | None) -> None:
        """Validate ids against ``[0, num_classes)`` (``None``: any id ``< 256``)."""
        self.num_classes = None if num_classes is None else int(num_classes)
        k = self.num_classes if self.num_classes is not None else 256
        self.lut = build_lut(
            identity=min(k, 256),
            ignore_values=(self.ignore_index, *self.ignore_ids),
            ignore_index=self.ignore_index,
        )

    def path_for(self, index: int, name: str) -> Path | None:
        if self.by_index:
            return self._by_frame.get(index)
        return self._by_stem.get(name)

    def check_matches(self, names: Sequence[str]) -> int:
        """For a stem-matched folder: how many of ``names`` have a mask; error if none do."""
        n = sum(1 for s in names if s in self._by_stem)
        if n == 0:
            raise InputError(
                f"no label in {self.root} matches an input frame by file name "
                f"(e.g. {names[0]!r}); labels must share the frames' file stems"
            )
        return n

    def load(self, path: Path, frame_hw: tuple[int, int]) -> np.ndarray:
        """Read one mask → ``uint8 H×W`` ids in ``[0, K)`` ∪ {``ignore_index``}, at the frame's size.

        Validated (and ``ignore_ids`` mapped) before any resize, so an id outside the classes can
        never be wrapped by a later cast.
        """
        try:
            raw = read_label(path, max_pixels=self.max_pixels)  # its size checked before decoding
        except (OSError, ValueError) as e:
            raise InputError(str(e)) from None
        if raw.shape[:2] != tuple(frame_hw):
            raise InputError(
                f"label {path} is {raw.shape[1]}×{raw.shape[0]} but its frame is "
                f"{frame_hw[1]}×{frame_hw[0]} (W×H); labels must match the frame size"
            )
        k = self.num_classes if self.num_classes is not None else 256
        try:
            return apply_lut(
                raw, self.lut, num_classes=k, path=path, ignore_index=self.ignore_index, hint=self.HINT
            )
        except ValueError as e:
            raise InputError(str(e)) from None
