"""Frame sources read through ``cv2.VideoCapture``: video files, stream URLs / GStreamer
pipelines and cameras; a live one reconnects when it stops delivering frames.

Each is a :class:`~rdd.runtime.stream.sources.FrameSource` yielding ``(frame_%06d, image_rgb)``.
Opening problems raise :class:`~rdd.contract.InputError` with a one-line message naming the file,
URL (credentials redacted) or device; frames above ``max_pixels`` are refused, before decoding
when the container declares their size.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from rdd.contract import InputError, resolve_max_pixels
from rdd.runtime.errors import OptionError, literal
from rdd.runtime.stream.sources import FrameSource, bgr_to_rgb, quiet_opencv

__all__ = [
    "VideoSource",
    "StreamSource",
    "CameraSource",
    "is_gstreamer_pipeline",
    "stream_scheme",
    "redact_url",
    "parse_camera",
]

_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CRED_RE = re.compile(r"(?<=://)([^/@:\s]+):[^/@\s]*@")


class _CaptureSource(FrameSource):
    """A ``cv2.VideoCapture`` read frame by frame; live ones reconnect when the stream drops.

    Reconnect policy (live sources only: cameras, network streams, GStreamer pipelines): when a
    read fails after at least one frame, the capture is reopened up to ``reconnect`` times in a
    row, waiting ``backoff_s``, 2×, 4× … (at most 5 s) before each try; a frame read resets the
    count. When the tries are spent the source ends with ``end_reason = "stream_ended"`` and a
    one-line ``end_message``; what was read so far stays valid. Files end at their last frame.
    """

    live: bool = False

    def __init__(
        self, what: str, *, reconnect: int = 0, backoff_s: float = 0.5, max_pixels: int | None = None
    ) -> None:
        self._what = what
        self.reconnect = max(0, int(reconnect))
        self.backoff_s = max(0.0, float(backoff_s))
        self.max_pixels = resolve_max_pixels(max_pixels)
        self.reconnects = 0  # successful reopenings during the run
        self.end_reason: str | None = None
        self.end_message: str | None = None
        self._interrupted = threading.Event()
        self._cap = self._open()
        if not self._cap.isOpened():
            raise InputError(self._open_error())
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else None
        n = float(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._n = int(n) if 0 < n < 1e9 and not self._live_by_nature() else 0
        if self._n and self.live:  # a finite file behind a URL (http(s)://.../clip.mp4): it ends
            self.live = False
            self.reconnect = 0
        self._check_size(
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
            int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        )

    def _live_by_nature(self) -> bool:
        """A source that never ends on its own (a camera), whatever its capture claims."""
        return False

    def _check_size(self, h: int, w: int) -> None:
        """Refuse frames above ``max_pixels`` (before decoding them when the container says)."""
        if h * w > self.max_pixels:
            raise OptionError(
                None,
                f"{literal(self._what)}: frames of {w}×{h} (W×H), {h * w} pixels, are above "
                f"the limit of {self.max_pixels} ({{max_input_pixels}} / RDD_MAX_INPUT_PIXELS)",
            )

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
                self._check_size(*frame.shape[:2])
                if tries:
                    self.reconnects += 1
                    tries = 0
                yield f"frame_{i:06d}", bgr_to_rgb(frame, self._what)
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
                self.end_message = (
                    f"{self._what} stopped delivering frames after {i} frames; "
                    f"{tries} reconnect attempt(s) over {lost:.1f} s failed "
                    f"(--reconnect {self.reconnect})"
                )
                return
            tries += 1
            self._reopen(tries)

    def _end_of_file(self, decoded: int) -> None:
        """A file stopped giving frames: the end, or a decode error when short of its length.

        The declared length is ``CAP_PROP_FRAME_COUNT`` (exact in MP4/MOV/AVI indexes; an estimate
        from duration × fps elsewhere, so there one frame or 1 % short still counts as the end).
        """
        n = self._n
        where = getattr(self, "path", None) or getattr(self, "url", "")
        suffix = Path(str(where).split("?")[0]).suffix.lower()
        slack = 0 if suffix in (".mp4", ".m4v", ".mov", ".avi") else max(1, n // 100)
        if n and decoded < n - slack:
            self.end_reason = "decode_error"
            self.end_message = (
                f"{self._what}: decoding stopped after {decoded} of {n} frames "
                "(corrupt or truncated file); the frames before it were processed"
            )
        else:
            self.end_reason = "end_of_input"

    def close(self) -> None:
        self._cap.release()


class VideoSource(_CaptureSource):
    """A video file decoded with ``cv2.VideoCapture``."""

    kind = "video"

    def __init__(self, path: str | os.PathLike, *, max_pixels: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"video not found: {self.path}")
        if not self.path.is_file():
            raise InputError(f"video path is not a file: {self.path}")
        quiet_opencv()
        super().__init__(f"video {self.path}", max_pixels=max_pixels)

    def _open(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(str(self.path))

    def _open_error(self) -> str:
        return (
            f"cannot open video {self.path}: not a video OpenCV can decode "
            "(unsupported codec or corrupt file)"
        )

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
    answers fails within that time. A stream is live (real-time accounting, reconnects: see
    :class:`_CaptureSource`) unless it is ``file://`` or declares a finite frame count (a video
    file served over HTTP(S)): such a stream is read like a file and ends at its last frame.
    """

    kind = "stream"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        reconnect: int = 3,
        max_pixels: int | None = None,
        backoff_s: float = 0.5,
    ) -> None:
        self.url = str(url)
        if timeout_s <= 0:
            raise OptionError("stream_timeout", f"must be > 0 seconds, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.gstreamer = is_gstreamer_pipeline(self.url)
        self.scheme = "gstreamer" if self.gstreamer else stream_scheme(self.url)
        if self.scheme is None:
            raise OptionError(
                "video",
                f"{literal(repr(self.url))} is neither a file, a stream URL (scheme://…) "
                "nor a GStreamer pipeline (elements joined by ' ! ')",
            )
        self.live = self.scheme != "file"
        if self.gstreamer and not _has_backend("CAP_GSTREAMER"):
            raise OptionError(
                "video",
                "looks like a GStreamer pipeline (it contains ' ! ') but this "
                "OpenCV build has no GStreamer support; use an OpenCV built with it "
                "(e.g. the system python3-opencv on Jetson)",
            )
        quiet_opencv()
        super().__init__(
            f"stream {redact_url(self.url)}",
            reconnect=reconnect if self.live else 0,
            max_pixels=max_pixels,
            backoff_s=backoff_s,
        )

    def _open(self) -> cv2.VideoCapture:
        if self.gstreamer:
            return cv2.VideoCapture(self.url, cv2.CAP_GSTREAMER)
        ms = int(round(self.timeout_s * 1000))
        return cv2.VideoCapture(
            self.url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        )

    def _open_error(self) -> str:
        if self.gstreamer:
            return (
                f"cannot open GStreamer pipeline {self.url!r} (a missing element, or no appsink at its end)"
            )
        return (
            f"cannot open stream {redact_url(self.url)}: refused, unreachable or no answer "
            f"within {self.timeout_s:g} s (--stream-timeout), or not a format FFmpeg reads"
        )

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "url": redact_url(self.url),
            "scheme": self.scheme,
            "fps": self.fps,
            "live": self.live,
            "reconnects": self.reconnects,
            "end_reason": self.end_reason,
        }


class CameraSource(_CaptureSource):
    """A live camera: an index (``cv2.VideoCapture(0)``) or a device path (``/dev/video0``).

    Unbounded (stop with ``max_frames`` or Ctrl-C); reconnects like any live source.
    """

    kind = "camera"
    live = True

    def _live_by_nature(self) -> bool:
        return True

    def __init__(
        self,
        device: int | str,
        *,
        size: tuple[int, int] | None = None,
        max_pixels: int | None = None,
        reconnect: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.device = parse_camera(device)
        self.index = self.device  # kept for callers that read .index
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise InputError(f"camera device not found: {self.device}")
        self._size = size
        quiet_opencv()
        super().__init__(
            f"camera {self.device}", reconnect=reconnect, backoff_s=backoff_s, max_pixels=max_pixels
        )

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.device)
        if self._size is not None and cap.isOpened():
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[1])
        return cap

    def _open_error(self) -> str:
        return f"camera {self.device} could not be opened (no such device, busy, or no permission)"

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "device": self.device,
            "fps": self.fps,
            "live": True,
            "reconnects": self.reconnects,
            "end_reason": self.end_reason,
        }


def parse_camera(value: int | str) -> int | str:
    """``--camera`` value: an index (``0``, ``"1"``) → int; anything else is a device path."""
    if isinstance(value, (int, np.integer)):
        idx = int(value)
    else:
        text = str(value).strip()
        if not text.lstrip("-").isdigit():
            if not text:
                raise OptionError("camera", "expects an index (0, 1, …) or a device path (/dev/video0)")
            return text
        idx = int(text)
    if idx < 0:
        raise OptionError("camera", f"index must be >= 0, got {idx}")
    return idx


def _has_backend(name: str) -> bool:
    try:
        return bool(cv2.videoio_registry.hasBackend(getattr(cv2, name)))
    except AttributeError:  # pragma: no cover - very old OpenCV
        return False
