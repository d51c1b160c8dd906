"""``--save-masks DIR``: one label PNG per processed frame, so output can be scored elsewhere.

* Pixel values are train ids (``0..K-1``): ``uint8`` PNGs when the model has at most 256 classes,
  ``uint16`` otherwise; at each frame's own size (nearest-neighbour from the inference size, the
  same resize as the overlay).
* Names: the image's file stem for ``--images`` (``0001TP_008550.png``), the source frame index
  for videos, cameras and streams (``frame_000042.png``; frames dropped by ``--realtime`` leave
  gaps).
* The folder is written atomically: masks go to a hidden sibling folder that is renamed to
  ``DIR`` when the run ends with a report (including early ends such as a dropped stream or
  Ctrl-C), and removed when it fails. ``DIR`` must not exist yet (its parent must) or be an
  empty folder: an existing non-empty folder is refused (so no input and no earlier result is
  ever overwritten; the runner also refuses a ``DIR`` inside an input folder).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from rdd.contract import InputError
from rdd.spec import temp_sibling

__all__ = ["MaskWriter", "mask_dtype"]


def mask_dtype(num_classes: int) -> np.dtype:
    """``uint8`` for up to 256 classes (ids 0..255), else ``uint16``."""
    if not 0 < num_classes <= 65536:
        raise InputError(f"cannot save masks of {num_classes} classes (1..65536 supported)")
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


class MaskWriter:
    """Writes ``<name>.png`` label maps into ``root`` (see the module docstring).

    Use as a context manager: entering checks ``root`` and creates the hidden staging folder;
    a clean exit renames it onto ``root``; an exception removes it.
    """

    def __init__(self, root: str | os.PathLike, num_classes: int) -> None:
        self.root = Path(root)
        self.dtype = mask_dtype(num_classes)
        self.count = 0
        self._tmp: Path | None = None
        self._names: set[str] = set()
        self.check()

    def check(self) -> None:
        """Refuse a ``root`` that is a file or a non-empty folder (one-line :class:`InputError`)."""
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"--save-masks {self.root} is a file; expected a folder")
        if self.root.is_dir() and any(self.root.iterdir()):
            raise InputError(f"--save-masks {self.root} is a folder that is not empty; give a new "
                             "or empty folder (masks never replace existing files)")

    def __enter__(self) -> "MaskWriter":
        self.check()
        tmp = temp_sibling(self.root, directory=True)  # mode 0777 & ~umask, like any mkdir
        self._tmp = tmp
        return self

    def write(self, name: str, labels: np.ndarray) -> None:
        """Write ``labels`` (``H×W`` ids) as ``<name>.png``; two frames of one name are an error."""
        if self._tmp is None:
            raise RuntimeError("MaskWriter.write outside its `with` block")
        if name in self._names:
            raise InputError(f"two frames are named {name!r}: --save-masks needs unique file stems "
                             f"(e.g. {name}.png and {name}.jpg in one folder)")
        lab = labels if labels.dtype == self.dtype else labels.astype(self.dtype)
        path = self._tmp / f"{name}.png"
        if not cv2.imwrite(str(path), lab):
            raise InputError(f"cannot write mask {self.root / path.name}")
        self._names.add(name)
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        if exc_type is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        try:
            if self.root.is_dir():
                self.root.rmdir()  # empty (checked): replaced by the finished folder
            os.replace(tmp, self.root)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InputError(f"--save-masks {self.root}: cannot move the masks in place "
                             f"({e.strerror or type(e).__name__})") from None
