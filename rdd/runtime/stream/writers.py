"""What a run writes, staged and committed together: the overlay video (``out``), per-frame
overlays (``save_overlays``), label masks (``save_masks``, :mod:`rdd.runtime.stream.masks`) and
the report.

Every output is written under a hidden temporary name beside its final path while the run goes
on (:func:`rdd.spec.temp_sibling`) and only :func:`commit` gives it its name, for all of a run's
outputs at once: after each one is checked (the mp4 is reopened and must hold every frame
written, so a full disk is an error, not a truncated file reported as success), under a lock
per output folder, so two runs writing to the same paths never leave one run's overlay beside the
other's report. On an error nothing is left behind. numpy + OpenCV.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from rdd.runtime.errors import InputError, OptionError
from rdd.spec import temp_sibling

__all__ = ["Staged", "StagedFile", "StagedFolder", "OverlayVideo", "OverlayFolder", "commit", "discard"]


class Staged(Protocol):
    """An output written under a temporary name: ``commit()`` renames it onto its final path
    (after checking it), ``discard()`` removes it; ``path`` is the final path."""

    path: Path

    def check(self) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class StagedFile:
    """A file written in one go (the report): ``write_text`` now, the name at :func:`commit`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tmp: Path | None = None

    def write_text(self, text: str) -> None:
        self.discard()
        self._tmp = temp_sibling(self.path)
        self._tmp.write_text(text)

    def check(self) -> None:
        if self._tmp is None or not self._tmp.is_file():
            raise OSError(f"{self.path}: nothing was written")

    def commit(self) -> None:
        os.replace(self._tmp, self.path)
        self._tmp = None

    def discard(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


class OverlayVideo:
    """``out``: the colour overlay as an ``.mp4`` (mp4v) at ``fps``, every frame at the first
    frame's size."""

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise OptionError("out", f"must be an .mp4 file, got {self.path}")
        self.fps = float(fps)
        self.count = 0
        self._tmp: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, bgr: np.ndarray) -> None:
        h, w = bgr.shape[:2]
        if self._writer is None:
            self._tmp = temp_sibling(self.path)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                self.discard()
                raise InputError(f"cannot open a video writer for {self.path} (mp4v, {w}×{h})")
            self._size = (w, h)
        if (w, h) != self._size:
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_LINEAR)
        self._writer.write(bgr)
        self.count += 1

    def close(self) -> None:
        """Finish the file (its index is written here); idempotent."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def check(self) -> None:
        """The finished file must decode with every frame written (a full disk, a quota or a
        vanished folder leaves a truncated mp4 without its index)."""
        self.close()
        if self._tmp is None:
            raise InputError(f"no frame was processed; {self.path} not written")
        cap = cv2.VideoCapture(str(self._tmp))
        try:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        finally:
            cap.release()
        if n != self.count:
            size = self._tmp.stat().st_size if self._tmp.exists() else 0
            raise OSError(
                f"{self.path}: the overlay video could not be written completely "
                f"({self.count} frames written, {n} readable back, {size} bytes; "
                "disk full?)"
            )

    def commit(self) -> None:
        os.replace(self._tmp, self.path)
        self._tmp = None

    def discard(self) -> None:
        self.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


class StagedFolder:
    """A folder filled file by file under a hidden name; ``path`` must be new or empty."""

    key = "folder"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.count = 0
        self._tmp: Path | None = None
        self._names: set[str] = set()
        self.check_target()

    def check_target(self) -> None:
        """Refuse a ``path`` that is a file or a non-empty folder (one-line :class:`OptionError`)."""
        if self.path.exists() and not self.path.is_dir():
            raise OptionError(self.key, f"{self.path} is a file; expected a folder")
        if self.path.is_dir() and any(self.path.iterdir()):
            raise OptionError(
                self.key,
                f"{self.path} is a folder that is not empty; give a new or "
                "empty folder (outputs never replace existing files)",
            )

    def _file(self, name: str, suffix: str) -> Path:
        if self._tmp is None:
            self.check_target()
            self._tmp = temp_sibling(self.path, directory=True)
        if name in self._names:
            raise InputError(
                f"two frames are named {name!r}: {self.path} needs unique file "
                f"stems (e.g. {name}.png and {name}.jpg in one folder)"
            )
        self._names.add(name)
        return self._tmp / f"{name}{suffix}"

    def _imwrite(self, path: Path, img: np.ndarray) -> None:
        if not cv2.imwrite(str(path), img):
            raise OSError(f"cannot write {self.path / path.name} (disk full?)")
        self.count += 1

    def check(self) -> None:
        if self._tmp is None:  # no frame: an empty folder
            self._tmp = temp_sibling(self.path, directory=True)
        found = sum(1 for _ in os.scandir(self._tmp))
        if found != self.count:
            raise OSError(f"{self.path}: {self.count} files written, {found} found")

    def commit(self) -> None:
        if self.path.is_dir():
            self.path.rmdir()  # empty (checked): replaced by the finished folder
        os.replace(self._tmp, self.path)
        self._tmp = None

    def discard(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class OverlayFolder(StagedFolder):
    """``save_overlays``: one colour overlay per processed frame, ``<name>.jpg`` (JPEG, quality
    90; ``<image stem>`` for image folders, ``frame_%06d`` for videos and streams)."""

    key = "save_overlays"

    def write(self, name: str, bgr: np.ndarray) -> None:
        path = self._file(name, ".jpg")
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"cannot write {self.path / path.name} (disk full?)")
        self.count += 1


@contextlib.contextmanager
def _locked(folders: Sequence[Path]) -> Iterator[None]:
    """Exclusive ``flock`` of each folder itself (nothing is created in it), in sorted order."""
    fds = []
    try:
        for d in sorted({os.path.realpath(p) for p in folders}):
            fd = os.open(d, os.O_RDONLY)
            fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        for fd in reversed(fds):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def commit(outputs: Sequence[Any]) -> None:
    """Check every staged output, then rename them all onto their paths (in order) under one
    lock per folder; if a check or a rename fails, everything not yet renamed is removed and
    the renamed ones are taken back, and the error is raised."""
    outputs = [o for o in outputs if o is not None]
    try:
        for o in outputs:
            o.check()
    except BaseException:
        discard(outputs)
        raise
    done: list[Any] = []
    with _locked([o.path.parent for o in outputs]):
        try:
            for o in outputs:
                o.commit()
                done.append(o)
        except BaseException:
            discard([o for o in outputs if o not in done])
            for o in done:  # take back what was renamed: all of a run's outputs, or none
                _remove(o.path)
            raise


def discard(outputs: Sequence[Any]) -> None:
    for o in outputs:
        if o is not None:
            with contextlib.suppress(OSError):
                o.discard()


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
