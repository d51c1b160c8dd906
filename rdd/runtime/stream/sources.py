"""Frame sources (video file, stream URL / GStreamer pipeline, camera, image folder) and labels.

All sources yield ``(name, image_rgb)`` with ``image_rgb`` a ``uint8 H×W×3`` **RGB** array
(OpenCV's BGR is converted here). Opening problems raise :class:`~rdd.contract.InputError`
with a one-line message naming the file or device, never an OpenCV traceback.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from rdd.contract import InputError
from rdd.labels import (FRAME_MASK_PATTERN, LABEL_EXTS, apply_lut, build_lut, frame_masks,
                        masks_by_stem, read_label)

__all__ = ["FrameSource", "VideoSource", "StreamSource", "CameraSource", "ImageFolderSource",
           "LabelFolder", "IMAGE_EXTS", "CAMVID_UNLABELLED", "quiet_opencv", "is_gstreamer_pipeline",
           "stream_scheme", "redact_url", "parse_camera"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
CAMVID_UNLABELLED = 11  # SegNet CamVid annotation id "Unlabelled" (ids 0..10 are the 11 classes)
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CRED_RE = re.compile(r"(?<=://)([^/@:\s]+):[^/@\s]*@")


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


class _CaptureSource(FrameSource):
    """A ``cv2.VideoCapture`` read frame by frame; live ones reconnect when the stream drops.

    Reconnect policy (live sources only: cameras, network streams, GStreamer pipelines): when a
    read fails after at least one frame, the capture is reopened up to ``reconnect`` times in a
    row, waiting ``backoff_s``, 2×, 4× … (at most 5 s) before each try; a frame read resets the
    count. When the tries are spent the source ends with ``end_reason = "stream_ended"`` and a
    one-line ``end_message``; what was read so far stays valid. Files end at their last frame.
    """

    live: bool = False

    def __init__(self, what: str, *, reconnect: int = 0, backoff_s: float = 0.5) -> None:
        self._what = what
        self.reconnect = max(0, int(reconnect))
        self.backoff_s = max(0.0, float(backoff_s))
        self.reconnects = 0            # successful reopenings during the run
        self.end_reason: str | None = None
        self.end_message: str | None = None
        self._interrupted = threading.Event()
        self._cap = self._open()
        if not self._cap.isOpened():
            raise InputError(self._open_error())
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else None
        n = 0 if self.live else float(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._n = int(n) if 0 < n < 1e9 else 0

    def __len__(self) -> int:
        return self._n

    def _open(self) -> cv2.VideoCapture:  # pragma: no cover - abstract
        raise NotImplementedError

    def _open_error(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def interrupt(self) -> None:
        self._interrupted.set()

    def _reopen(self, tries: int) -> bool:
        """Wait the backoff of attempt ``tries`` (1-based), reopen; True if it opened."""
        if self._interrupted.wait(min(self.backoff_s * 2 ** (tries - 1), 5.0)):
            return False
        self._cap.release()
        self._cap = self._open()
        return self._cap.isOpened()

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        i, tries, t_lost = 0, 0, 0.0
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None:
                if tries:
                    self.reconnects += 1
                    tries = 0
                yield f"frame_{i:06d}", _bgr_to_rgb(frame, self._what)
                i += 1
                continue
            if i == 0 and not tries:
                raise InputError(f"{self._what}: no frame could be read (empty or corrupt stream)")
            if not self.live:
                self._end_of_file(i)
                return
            if self._interrupted.is_set():
                return
            if tries == 0:
                t_lost = time.perf_counter()
            if tries >= self.reconnect:
                lost = time.perf_counter() - t_lost
                self.end_reason = "stream_ended"
                self.end_message = (f"{self._what} stopped delivering frames after {i} frames; "
                                    f"{tries} reconnect attempt(s) over {lost:.1f} s failed "
                                    f"(--reconnect {self.reconnect})")
                return
            tries += 1
            self._reopen(tries)

    def _end_of_file(self, decoded: int) -> None:
        """A file stopped giving frames: the end, or a decode error when short of its length.

        The declared length is ``CAP_PROP_FRAME_COUNT`` (exact in MP4/MOV/AVI indexes; an estimate
        from duration × fps elsewhere, so there one frame or 1 % short still counts as the end).
        """
        n = self._n
        suffix = Path(getattr(self, "path", "") or "").suffix.lower()
        slack = 0 if suffix in (".mp4", ".m4v", ".mov", ".avi") else max(1, n // 100)
        if n and decoded < n - slack:
            self.end_reason = "decode_error"
            self.end_message = (f"{self._what}: decoding stopped after {decoded} of {n} frames "
                                "(corrupt or truncated file); the frames before it were processed")
        else:
            self.end_reason = "end_of_input"

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
        super().__init__(f"video {self.path}")

    def _open(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(str(self.path))

    def _open_error(self) -> str:
        return (f"cannot open video {self.path}: not a video OpenCV can decode "
                "(unsupported codec or corrupt file)")

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "fps": self.fps, "live": False}


def is_gstreamer_pipeline(text: str) -> bool:
    """A GStreamer launch string (``"v4l2src ! videoconvert ! appsink"``): elements joined by ' ! '."""
    return " ! " in text


def stream_scheme(text: str) -> str | None:
    """The URL scheme of ``text`` (``"rtsp"``, ``"http"``, ``"file"`` …, lower case) or None."""
    m = _URL_RE.match(text)
    return m.group(1).lower() if m else None


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` → ``rtsp://user:***@host/x`` (for reports and errors)."""
    return _CRED_RE.sub(lambda m: m.group(1) + ":***@", url)


class StreamSource(_CaptureSource):
    """A stream URL (rtsp/rtmp/http(s)/udp/… or ``file://``) or a GStreamer pipeline string.

    The text goes to OpenCV unchanged: URLs through its FFmpeg backend, pipelines (they contain
    ``' ! '``) through GStreamer (an OpenCV built without GStreamer is a one-line error).
    ``timeout_s`` bounds both opening and each read (FFmpeg backend:
    ``CAP_PROP_OPEN_TIMEOUT_MSEC`` / ``CAP_PROP_READ_TIMEOUT_MSEC``), so an address where nothing
    answers fails within that time. Everything but ``file://`` is live: see
    :class:`_CaptureSource` for the reconnect policy.
    """

    kind = "stream"

    def __init__(self, url: str, *, timeout_s: float = 5.0, reconnect: int = 3,
                 backoff_s: float = 0.5) -> None:
        self.url = str(url)
        if timeout_s <= 0:
            raise InputError(f"--stream-timeout must be > 0 seconds, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.gstreamer = is_gstreamer_pipeline(self.url)
        self.scheme = "gstreamer" if self.gstreamer else stream_scheme(self.url)
        if self.scheme is None:
            raise InputError(f"--video {self.url!r} is neither a file, a stream URL (scheme://…) "
                             "nor a GStreamer pipeline (elements joined by ' ! ')")
        self.live = self.scheme != "file"
        if self.gstreamer and not _has_backend("CAP_GSTREAMER"):
            raise InputError("--video looks like a GStreamer pipeline (it contains ' ! ') but this "
                             "OpenCV build has no GStreamer support; use an OpenCV built with it "
                             "(e.g. the system python3-opencv on Jetson)")
        quiet_opencv()
        super().__init__(f"stream {redact_url(self.url)}", reconnect=reconnect if self.live else 0,
                         backoff_s=backoff_s)

    def _open(self) -> cv2.VideoCapture:
        if self.gstreamer:
            return cv2.VideoCapture(self.url, cv2.CAP_GSTREAMER)
        ms = int(round(self.timeout_s * 1000))
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])

    def _open_error(self) -> str:
        if self.gstreamer:
            return (f"cannot open GStreamer pipeline {self.url!r} (a missing element, or no "
                    "appsink at its end)")
        return (f"cannot open stream {redact_url(self.url)}: refused, unreachable or no answer "
                f"within {self.timeout_s:g} s (--stream-timeout), or not a format FFmpeg reads")

    def describe(self) -> dict:
        return {"kind": self.kind, "url": redact_url(self.url), "scheme": self.scheme,
                "fps": self.fps, "live": self.live, "reconnects": self.reconnects,
                "end_reason": self.end_reason}


class CameraSource(_CaptureSource):
    """A live camera: an index (``cv2.VideoCapture(0)``) or a device path (``/dev/video0``).

    Unbounded (stop with ``max_frames`` or Ctrl-C); reconnects like any live source.
    """

    kind = "camera"
    live = True

    def __init__(self, device: int | str, *, size: tuple[int, int] | None = None,
                 reconnect: int = 3, backoff_s: float = 0.5) -> None:
        self.device = parse_camera(device)
        self.index = self.device  # kept for callers that read .index
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise InputError(f"camera device not found: {self.device}")
        self._size = size
        quiet_opencv()
        super().__init__(f"camera {self.device}", reconnect=reconnect, backoff_s=backoff_s)

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.device)
        if self._size is not None and cap.isOpened():
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[1])
        return cap

    def _open_error(self) -> str:
        return (f"camera {self.device} could not be opened (no such device, busy, or no "
                "permission)")

    def describe(self) -> dict:
        return {"kind": self.kind, "device": self.device, "fps": self.fps, "live": True,
                "reconnects": self.reconnects, "end_reason": self.end_reason}


def parse_camera(value: int | str) -> int | str:
    """``--camera`` value: an index (``0``, ``"1"``) → int; anything else is a device path."""
    if isinstance(value, (int, np.integer)):
        idx = int(value)
    else:
        text = str(value).strip()
        if not text.lstrip("-").isdigit():
            if not text:
                raise InputError("--camera expects an index (0, 1, …) or a device path (/dev/video0)")
            return text
        idx = int(text)
    if idx < 0:
        raise InputError(f"--camera index must be >= 0, got {idx}")
    return idx


def _has_backend(name: str) -> bool:
    try:
        return bool(cv2.videoio_registry.hasBackend(getattr(cv2, name)))
    except AttributeError:  # pragma: no cover - very old OpenCV
        return False


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

    HINT = ("; map them to ignore with --ignore-ids (CamVid annotations: --label-map camvid)")

    def __init__(self, root: str | os.PathLike, *, by_index: bool, ignore_ids: Sequence[int] = (),
                 ignore_index: int = 255, num_classes: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"label folder not found: {self.root}")
        try:
            self._by_stem = masks_by_stem(self.root)
        except ValueError as e:
            raise InputError(str(e)) from None
        if not self._by_stem:
            raise InputError(f"label folder {self.root} holds no label images "
                             f"({', '.join(LABEL_EXTS)})")
        self.by_index = by_index
        self.ignore_ids = tuple(sorted({int(i) for i in ignore_ids}))
        self.ignore_index = int(ignore_index)
        self._by_frame = frame_masks(self.root)
        if by_index and not self._by_frame:
            example = sorted(self._by_stem)[0]
            raise InputError(f"label folder {self.root} has no {FRAME_MASK_PATTERN} masks (e.g. "
                             f"{example!r}); video frames are matched to masks by index: "
                             "frame_000000.png for the first frame, …")
        self.num_classes: int | None = None
        self.set_num_classes(num_classes)

    def set_num_classes(self, num_classes: int | None) -> None:
        """Validate ids against ``[0, num_classes)`` (``None``: any id ``< 256``)."""
        self.num_classes = None if num_classes is None else int(num_classes)
        k = self.num_classes if self.num_classes is not None else 256
        self.lut = build_lut(identity=min(k, 256), ignore_values=(self.ignore_index, *self.ignore_ids),
                             ignore_index=self.ignore_index)

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
        """Read one mask → ``uint8 H×W`` ids in ``[0, K)`` ∪ {``ignore_index``}, at the frame's size.

        Validated (and ``ignore_ids`` mapped) before any resize, so an id outside the classes can
        never be wrapped by a later cast.
        """
        try:
            raw = read_label(path)
        except (OSError, ValueError) as e:
            raise InputError(str(e)) from None
        if raw.shape[:2] != tuple(frame_hw):
            raise InputError(f"label {path} is {raw.shape[1]}×{raw.shape[0]} but its frame is "
                             f"{frame_hw[1]}×{frame_hw[0]} (W×H); labels must match the frame size")
        k = self.num_classes if self.num_classes is not None else 256
        try:
            return apply_lut(raw, self.lut, num_classes=k, path=path,
                             ignore_index=self.ignore_index, hint=self.HINT)
        except ValueError as e:
            raise InputError(str(e)) from None
