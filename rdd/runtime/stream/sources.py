"""Frame sources: the :class:`FrameSource` interface, image files (a folder, one image, a glob
or a list) and what every source shares; video files, stream URLs / GStreamer pipelines and
cameras are :mod:`rdd.runtime.stream.capture`'s.

All sources yield ``(name, image_rgb)`` with ``image_rgb`` a ``uint8 H×W×3`` **RGB** array
(OpenCV's BGR is converted by :func:`bgr_to_rgb`). Opening problems raise
:class:`~rdd.contract.InputError` with a one-line message naming the file or device, never an
OpenCV traceback. A frame larger than ``max_pixels`` (:func:`rdd.contract.resolve_max_pixels`)
is refused before it is decoded: an image by its file header, a video by the size its container
declares.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from rdd.contract import InputError, resolve_max_pixels
from rdd.imagesize import check_image_size
from rdd.runtime.errors import OptionError, literal

__all__ = [
    "FrameSource",
    "ImageFolderSource",
    "IMAGE_EXTS",
    "CAMVID_UNLABELLED",
    "quiet_opencv",
    "bgr_to_rgb",
    "image_files",
]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
CAMVID_UNLABELLED = 11  # SegNet CamVid annotation id "Unlabelled" (ids 0..10 are the 11 classes)


def quiet_opencv() -> None:
    """Silence OpenCV's / FFmpeg's own stderr chatter so errors stay one line."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - very old OpenCV
        pass


def bgr_to_rgb(img: np.ndarray, where: str) -> np.ndarray:
    """An OpenCV image (grey, BGR or BGRA) → ``uint8 H×W×3`` RGB; ``where`` names it in errors."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    raise InputError(f"{where}: unsupported image shape {img.shape}; expected H×W×3")


def _list_images(root: Path) -> list[Path]:
    return sorted(
        (p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=lambda p: p.name
    )


def image_files(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The images ``images`` names: a folder (its images, by file name), one image file, a glob
    pattern (``"frames/*.png"``, sorted) or a list of files."""
    if not isinstance(spec, (str, os.PathLike)):
        return [Path(p) for p in spec]
    p = Path(spec)
    if p.is_dir():
        files = _list_images(p)
        if not files:
            raise InputError(f"image folder {p} holds no images ({', '.join(IMAGE_EXTS)})")
        return files
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTS:
            raise OptionError(
                "images",
                f"{literal(p)} is not an image file ({', '.join(IMAGE_EXTS)}); videos go to {{video}}",
            )
        return [p]
    if any(c in str(spec) for c in "*?["):
        import glob

        files = sorted(
            (
                Path(f)
                for f in glob.glob(str(spec))
                if Path(f).is_file() and Path(f).suffix.lower() in IMAGE_EXTS
            ),
            key=lambda f: (str(f.parent), f.name),
        )
        if not files:
            raise InputError(f"no image matches {spec!r} ({', '.join(IMAGE_EXTS)})")
        return files
    raise InputError(f"image folder not found: {p}")


class FrameSource:
    """Iterable of ``(name, image_rgb)``; ``fps`` is the capture rate when known.

    ``live``: frames arrive on their own clock (camera, network stream), so the run is always
    accounted in real time. After iteration ``end_reason`` says why it stopped
    (``"end_of_input"`` or ``"stream_ended"``, with a one-line ``end_message``), when known.
    """

    kind: str = "source"
    fps: float | None = None
    live: bool = False
    end_reason: str | None = None
    end_message: str | None = None

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:  # number of frames when known (0 = unknown/unbounded)
        return 0

    @property
    def by_index(self) -> bool:
        """Whether ground truth is matched by frame index (videos) rather than by file stem."""
        return True

    def close(self) -> None:
        pass

    def interrupt(self) -> None:
        """Ask a running iteration (another thread) to end at its next wait; safe to call twice."""

    def describe(self) -> dict:
        return {"kind": self.kind}


class ImageFolderSource(FrameSource):
    """Images by file name (e.g. CamVid's ``val/``): a folder, one image, a glob or a list
    (:func:`image_files`); each refused before decoding when above ``max_pixels``."""

    kind = "images"

    def __init__(
        self,
        root: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        fps: float | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.files = image_files(root)
        self.root = (
            Path(root)
            if isinstance(root, (str, os.PathLike))
            else (self.files[0].parent if self.files else Path("."))
        )
        self.max_pixels = resolve_max_pixels(max_pixels)
        self.fps = fps

    def __len__(self) -> int:
        return len(self.files)

    @property
    def by_index(self) -> bool:
        return False

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for p in self.files:
            try:
                check_image_size(p, self.max_pixels)
            except (OSError, ValueError) as e:
                raise InputError(str(e)) from None
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"cannot read image {p} (corrupt or unsupported format)")
            yield p.stem, bgr_to_rgb(img, str(p))

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.root), "count": len(self.files)}
