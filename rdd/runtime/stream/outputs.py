"""Output-path checks of the runner, done before the first frame.

The runner writes files (``--out`` overlay, ``--report`` JSON, and folders of per-frame files)
only after a run, atomically. These checks make two classes of mistakes fail up front with a
one-line :class:`~rdd.contract.InputError` instead of after a long run:

* an output that *is* an input (the video, the model or its sidecars, a label file, the label
  or image folder or a file inside one) or another output — compared after resolving symlinks
  (``realpath``) and, for files that exist, by inode (hard links);
* an output that cannot be written: its folder is missing or is a file, the path is a folder
  where a file is expected (or the reverse), or a probe file cannot be created next to it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rdd.contract import engine_sidecar_path
from rdd.runtime.errors import OptionError

__all__ = ["check_outputs", "model_files"]

PathLike = str | os.PathLike


def model_files(model: PathLike) -> list[Path]:
    """The model file and every sidecar the backends may read beside it.

    ``NAME.json`` (ONNX / artifact / bare engine metadata), ``<file name>.json`` (TensorRT
    engine sidecar) and ``NAME.onnx`` (an engine's fallback metadata).
    """
    p = Path(model)
    return [p, p.with_suffix(".json"), engine_sidecar_path(p), p.with_suffix(".onnx")]


def _real(p: PathLike) -> str:
    return os.path.realpath(os.fspath(p))


def _q(p: Any) -> str:
    """A path inside an :class:`OptionError` message (whose ``{key}`` fields are option names)."""
    return str(p).replace("{", "{{").replace("}", "}}")


def _inode(p: str) -> tuple[int, int] | None:
    try:
        st = os.stat(p)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (both resolved)."""
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


class _Inputs:
    """Resolved input paths: files (with inodes) and folders (whose files count as inputs)."""

    def __init__(self, inputs: Mapping[str, PathLike | Sequence[PathLike] | None]) -> None:
        self.files: dict[str, str] = {}  # realpath -> flag
        self.inodes: dict[tuple[int, int], tuple[str, str]] = {}  # inode -> (flag, path)
        self.folders: list[tuple[str, str]] = []  # (realpath, flag)
        for flag, value in inputs.items():
            if value is None:
                continue
            paths = [value] if isinstance(value, (str, os.PathLike)) else list(value)
            for p in paths:
                self._add(flag, p)

    def _add(self, flag: str, p: PathLike) -> None:
        real = _real(p)
        if os.path.isdir(real):
            self.folders.append((real, flag))
            for entry in _scandir(real):
                self._add_file(flag, entry)
        else:
            self._add_file(flag, real)

    def _add_file(self, flag: str, path: str) -> None:
        real = _real(path)
        self.files.setdefault(real, flag)
        ino = _inode(real)
        if ino is not None:
            self.inodes.setdefault(ino, (flag, path))

    def clash(self, out_real: str) -> str | None:
        """What input ``out_real`` would overwrite (a phrase), else ``None``."""
        if out_real in self.files:
            return f"the {{{self.files[out_real]}}} input {_q(out_real)}"
        for folder, flag in self.folders:
            if out_real == folder:
                return f"the {{{flag}}} folder {_q(folder)}"
            if _inside(out_real, folder):
                return f"inside the {{{flag}}} folder {_q(folder)}"
        ino = _inode(out_real)
        if ino is not None and ino in self.inodes:
            flag, path = self.inodes[ino]
            return f"the same file as the {{{flag}}} input {_q(path)} (hard link)"
        return None


def _scandir(folder: str) -> Iterable[str]:
    try:
        with os.scandir(folder) as it:
            return [e.path for e in it if not e.is_dir()]
    except OSError:
        return []


def _check_writable(flag: str, path: PathLike, kind: str) -> None:
    p = Path(path)
    if kind == "file":
        if p.is_dir():
            raise OptionError(flag, f"{_q(p)} is a folder; expected a file path")
        parent = p.parent
    else:
        if p.exists() and not p.is_dir():
            raise OptionError(flag, f"{_q(p)} is a file; expected a folder")
        parent = p if p.is_dir() else p.parent
    if not parent.exists():
        raise OptionError(flag, f"{_q(p)}: folder {_q(parent)} does not exist (create it first)")
    if not parent.is_dir():
        raise OptionError(flag, f"{_q(p)}: {_q(parent)} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".rdd-write-check-", dir=parent)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise OptionError(flag, f"{_q(p)}: cannot write in folder {_q(parent)} ({reason})") from None
    os.close(fd)
    os.unlink(probe)


def check_outputs(
    outputs: Mapping[str, tuple[PathLike | None, str]],
    inputs: Mapping[str, PathLike | Sequence[PathLike] | None],
) -> None:
    """Refuse outputs that would overwrite an input or each other, or cannot be written.

    Args:
        outputs: ``{key: (path or None, "file" | "dir")}``, e.g.
            ``{"out": ("o.mp4", "file"), "report": (None, "file")}``; ``None`` = not given.
        inputs: ``{key: path, list of paths or None}``; a folder stands for itself and every
            file directly in it (and nothing may be written inside it).

    Raises :class:`~rdd.runtime.errors.OptionError` with one line naming the option(s) (keys;
    flags on the command line) and path(s).
    """
    given = [(flag, path, kind) for flag, (path, kind) in outputs.items() if path is not None]
    for flag, _path, kind in given:
        if kind not in ("file", "dir"):
            raise ValueError(f"check_outputs: kind of {flag} must be 'file' or 'dir', got {kind!r}")
    ins = _Inputs(inputs)
    seen: list[tuple[str, str, str]] = []
    for flag, path, kind in given:
        real = _real(path)
        what = ins.clash(real)
        if what is not None:
            raise OptionError(flag, f"{_q(path)} would overwrite {what}; write outputs elsewhere")
        for other_flag, other_real, other_kind in seen:
            same = real == other_real or (_inode(real) is not None and _inode(real) == _inode(other_real))
            nested = (other_kind == "dir" and _inside(real, other_real)) or (
                kind == "dir" and _inside(other_real, real)
            )
            if same or nested:
                rel = "is the same path as" if same else "is inside / contains"
                raise OptionError(
                    flag, f"{_q(path)} {rel} {{{other_flag}}} {_q(other_real)}; give each output its own path"
                )
        seen.append((flag, real, kind))
    for flag, path, kind in given:
        _check_writable(flag, path, kind)
