"""``save_masks DIR``: one label PNG per processed frame, so output can be scored elsewhere.

* Pixel values are train ids (``0..K-1``): ``uint8`` PNGs when the model has at most 256 classes,
  ``uint16`` otherwise; at each frame's own size (nearest-neighbour from the inference size, the
  same resize as the overlay). With ``palette`` (up to 256 classes) the PNGs are palette
  (indexed) images: the same ids, shown in the classes' colours by any image viewer, and read
  back as ids by :func:`rdd.labels.read_label` (and by PIL as mode ``P``).
* Names: the image's file stem for image folders (``0001TP_008550.png``), the source frame index
  for videos, cameras and streams (``frame_000042.png``; frames dropped in real time leave gaps).
* The folder is staged and committed with the run's other outputs
  (:mod:`rdd.runtime.stream.writers`): ``DIR`` must not exist yet (its parent must) or be an
  empty folder, so no input and no earlier result is ever overwritten.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from rdd.runtime.errors import InputError
from rdd.runtime.stream.writers import StagedFolder, commit, discard

__all__ = ["MaskWriter", "mask_dtype", "palette_png"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def mask_dtype(num_classes: int) -> np.dtype:
    """``uint8`` for up to 256 classes (ids 0..255), else ``uint16``."""
    if not 0 < num_classes <= 65536:
        raise InputError(f"cannot save masks of {num_classes} classes (1..65536 supported)")
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def palette_png(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> bytes:
    """``uint8 H×W`` ids → the bytes of an indexed PNG whose palette colours them.

    OpenCV encodes the ids as an 8-bit grey PNG (the same one byte per pixel as an 8-bit indexed
    PNG); its header's colour type becomes 3 (indexed) and a ``PLTE`` chunk of 256 entries
    (``palette``, then black) is added after it."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(labels, np.uint8))
    if not ok:
        raise ValueError("could not encode the mask as PNG")
    data = buf.tobytes()
    n = int.from_bytes(data[8:12], "big")  # IHDR body length (13)
    ihdr = bytearray(data[16 : 16 + n])
    ihdr[9] = 3  # colour type: indexed
    pal = [tuple(int(v) for v in c) for c in list(palette)[:256]]
    pal += [(0, 0, 0)] * (256 - len(pal))
    plte = bytes(v for c in pal for v in c)
    rest = data[8 + 12 + n :]
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", bytes(ihdr)) + _png_chunk(b"PLTE", plte) + rest


class MaskWriter(StagedFolder):
    """Writes ``<name>.png`` label maps into ``path`` (see the module docstring); also a
    context manager that commits the folder on a clean exit and removes it on an error."""

    key = "save_masks"

    def __init__(
        self, path: str | os.PathLike, num_classes: int, *, palette: Sequence[Sequence[int]] | None = None
    ) -> None:
        self.dtype = mask_dtype(num_classes)
        if palette is not None and self.dtype != np.uint8:
            raise InputError(f"palette masks hold up to 256 classes, the model has {num_classes}")
        self.palette = palette
        super().__init__(path)

    @property
    def root(self):  # the report's ``masks`` field
        return self.path

    def write(self, name: str, labels: np.ndarray) -> None:
        """Write ``labels`` (``H×W`` ids) as ``<name>.png``; two frames of one name are an error."""
        path = self._file(name, ".png")
        lab = labels if labels.dtype == self.dtype else labels.astype(self.dtype)
        if self.palette is not None:
            try:
                path.write_bytes(palette_png(lab, self.palette))
            except OSError as e:
                raise OSError(f"cannot write {self.path / path.name} ({e.strerror})") from None
            self.count += 1
        else:
            self._imwrite(path, lab)

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            discard([self])
        else:
            commit([self])
