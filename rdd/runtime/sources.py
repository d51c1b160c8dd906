"""Frame sources (video file, camera, image folder) and ground-truth label folders.

All sources yield ``(name, image_rgb)`` with ``image_rgb`` a ``uint8 H×W×3`` **RGB** array
(OpenCV's BGR is converted here). Opening problems raise :class:`~rdd.runtime.meta.InputError`
with a one-line message naming the file or device, never an OpenCV traceback.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from rdd.runtime.meta import InputError

__all__ = ["FrameSource", "VideoSource", "CameraSource", "ImageFolderSource", "LabelFolder",
           "IMAGE_EXTS", "CAMVID_UNLABELLED", "quiet_opencv"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
CAMVID_UNLABELLED = 11  # SegNet CamVid annotation id "Unlabelled" (ids 0..10 are the 11 classes)
_FRAME_RE = re.compile(r"^frame_(\d+)$")


def quiet_opencv() -> None:
    """Silence OpenCV's / FFmpeg's own stderr chatter so errors stay one line."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - very old OpenCV
        pass


def _bgr_to_rgb(img: np.ndarray, where: str) -> np.ndarray:
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    raise InputError(f"{where}: unsupported image shape {img.shape}; expected H×W×3")


def _list_images(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS),
                  key=lambda p: p.name)


class FrameSource:
    """Iterable of ``(name, image_rgb)``; ``fps`` is the capture rate when known."""

    kind: str = "source"
    fps: float | None = None

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

    def describe(self) -> dict:
        return {"kind": self.kind}


class _CaptureSource(FrameSource):
    def __init__(self, cap: cv2.VideoCapture, what: str) -> None:
        self._cap = cap
        self._what = what
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else None

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        i = 0
        while True:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                if i == 0:
                    raise InputError(f"{self._what}: no frame could be read (empty or corrupt stream)")
                return
            yield f"frame_{i:06d}", _bgr_to_rgb(frame, self._what)
            i += 1

    def close(self) -> None:
        self._cap.release()


class VideoSource(_CaptureSource):
    """A video file decoded with ``cv2.VideoCapture``."""

    kind = "video"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"video not found: {self.path}")
        if not self.path.is_file():
            raise InputError(f"video path is not a file: {self.path}")
        quiet_opencv()
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise InputError(f"cannot open video {self.path}: not a video OpenCV can decode "
                             "(unsupported codec or corrupt file)")
        super().__init__(cap, f"video {self.path}")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._n = n if n > 0 else 0

    def __len__(self) -> int:
        return self._n

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "fps": self.fps}


class CameraSource(_CaptureSource):
    """A live camera ``cv2.VideoCapture(index)``; unbounded (stop with ``max_frames`` or Ctrl-C)."""

    kind = "camera"

    def __init__(self, index: int, *, size: tuple[int, int] | None = None) -> None:
        self.index = int(index)
        quiet_opencv()
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            raise InputError(f"camera {self.index} could not be opened (no such device, busy, or no "
                             "permission)")
        if size is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[1])
        super().__init__(cap, f"camera {self.index}")

    def describe(self) -> dict:
        return {"kind": self.kind, "index": self.index, "fps": self.fps}


class ImageFolderSource(FrameSource):
    """Every image in a folder, sorted by file name (e.g. CamVid's ``val/``)."""

    kind = "images"

    def __init__(self, root: str | os.PathLike, *, fps: float | None = None) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise InputError(f"image folder not found: {self.root}")
        if not self.root.is_dir():
            raise InputError(f"--images expects a folder, got a file: {self.root}")
        self.files = _list_images(self.root)
        if not self.files:
            raise InputError(f"image folder {self.root} holds no images ({', '.join(IMAGE_EXTS)})")
        self.fps = fps

    def __len__(self) -> int:
        return len(self.files)

    @property
    def by_index(self) -> bool:
        return False

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for p in self.files:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"cannot read image {p} (corrupt or unsupported format)")
            yield p.stem, _bgr_to_rgb(img, str(p))

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.root), "count": len(self.files)}


class LabelFolder:
    """Ground-truth masks for a source, matched by file stem or by frame index.

    * image folders: ``<root>/<frame stem>.<ext>``;
    * videos / cameras: ``<root>/frame_000000.png`` … (as written by
      ``rdd.data.synthetic.write_synthetic_video``) when such files exist, else the i-th mask in
      name order for the i-th frame.

    Args:
        root: folder of single-channel label images (train ids, 255 = ignore).
        by_index: match by frame index (True) or stem (False).
        ignore_ids: raw ids mapped to ``ignore_index`` (e.g. CamVid's 11 "Unlabelled").
        ignore_index: the value the metric skips.
    """

    def __init__(self, root: str | os.PathLike, *, by_index: bool, ignore_ids: Sequence[int] = (),
                 ignore_index: int = 255) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"label folder not found: {self.root}")
        files = _list_images(self.root)
        if not files:
            raise InputError(f"label folder {self.root} holds no label images")
        self.by_index = by_index
        self.ignore_ids = tuple(sorted({int(i) for i in ignore_ids}))
        self.ignore_index = int(ignore_index)
        self._by_stem = {p.stem: p for p in files}
        frames = {int(m.group(1)): p for p in files if (m := _FRAME_RE.match(p.stem))}
        self._by_frame = frames if frames else dict(enumerate(files))

    def path_for(self, index: int, name: str) -> Path | None:
        if self.by_index:
            return self._by_frame.get(index)
        return self._by_stem.get(name)

    def check_matches(self, names: Sequence[str]) -> int:
        """For a stem-matched folder: how many of ``names`` have a mask; error if none do."""
        n = sum(1 for s in names if s in self._by_stem)
        if n == 0:
            raise InputError(f"no label in {self.root} matches an input frame by file name "
                             f"(e.g. {names[0]!r}); labels must share the frames' file stems")
        return n

    def load(self, path: Path, frame_hw: tuple[int, int]) -> np.ndarray:
        """Read one mask (``H×W`` integer ids), map ``ignore_ids`` → ``ignore_index``."""
        m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if m is None:
            raise InputError(f"cannot read label {path} (corrupt or unsupported format)")
        if m.ndim == 3:
            if m.shape[2] == 3 and (np.array_equal(m[..., 0], m[..., 1]) and
                                    np.array_equal(m[..., 0], m[..., 2])):
                m = m[..., 0]
            else:
                raise InputError(f"label {path} has {m.shape[2]} channels; expected a single-channel "
                                 "mask of class ids (not a colour-coded image)")
        if m.shape[:2] != tuple(frame_hw):
            raise InputError(f"label {path} is {m.shape[1]}×{m.shape[0]} but its frame is "
                             f"{frame_hw[1]}×{frame_hw[0]} (W×H); labels must match the frame size")
        if self.ignore_ids:
            m = np.where(np.isin(m, self.ignore_ids), self.ignore_index, m)
        return m
