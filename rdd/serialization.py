"""The one place that reads and writes torch files (checkpoints, artefact weights, backbone weights).

Reading: :func:`load_torch_file` always uses ``torch.load(..., weights_only=True)``: only tensors,
numbers, strings, ``None`` and plain containers (dict / list / tuple / OrderedDict) are
rebuilt, so a crafted pickle (``__reduce__`` → ``os.system`` ...) is refused before anything in
it runs. Every failure is a :class:`TorchFileError` (a ``ValueError``) with a one-line message
naming the file: refused (and which globals it asked for), or truncated / corrupt / not a torch
file.

URLs: :func:`fetch_url` downloads ``http(s)://`` / ``file://`` weights into the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, atomically) with an optional sha256 check; the cached file is
then read with :func:`load_torch_file` like any local file.

Writing: :func:`save_torch_file` serialises into memory first, so the archive's record prefix is
always ``archive/`` (``torch.save`` to a path uses the *file name*, and an atomic write's
temporary name differs on every run) and the same object gives the same bytes; then it writes
them atomically (:func:`rdd.spec.atomic_path`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sys
import urllib.parse
import urllib.request
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from rdd.contract.files import file_sha256
from rdd.spec import atomic_path

__all__ = [
    "TorchFileError",
    "load_torch_file",
    "save_torch_file",
    "torch_bytes",
    "fetch_url",
    "sha256_file",
    "is_url",
]

URL_SCHEMES = ("http://", "https://", "file://")


class TorchFileError(ValueError):
    """A torch file that cannot be loaded safely: refused (non-allow-listed objects) or unreadable.

    ``unsafe_globals``: the globals a refused file asks for (empty when it is merely unreadable).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike,
        refused: bool = False,
        unsafe_globals: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.path = str(path)
        self.refused = refused
        self.unsafe_globals = unsafe_globals


def _one_line(text: str, limit: int = 160) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _refusal_reason(msg: str) -> str:
    """The informative line of torch's multi-paragraph ``Weights only load failed`` message."""
    for line in msg.splitlines():
        line = line.strip()
        if (
            line
            and not line.startswith(
                ("Weights only load failed", "Check the documentation", "Please file an issue")
            )
            and "weights_only" not in line
        ):
            line = line.removeprefix("WeightsUnpickler error: ").split(". Please use")[0]
            return _one_line(line)  # never torch's "add_safe_globals" advice: not for these files
    return "it holds objects outside the allow-list"


def _unsafe_globals(path: Path) -> tuple[str, ...]:
    """The globals a refused file references (listed without running anything)."""
    try:
        return tuple(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 — legacy / non-zip files: the torch message is enough
        return ()


def load_torch_file(path: str | os.PathLike, *, what: str = "torch file", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; failures → one-line :class:`TorchFileError`.

    ``what`` names the role in the message (``"checkpoint"``, ``"artifact weights"``...).
    Raises ``FileNotFoundError`` when ``path`` is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():
            # a foreign pickle protocol triggers a UserWarning before the refusal; the error says it
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 — every failure becomes one line naming the file
        msg = str(e)
        weights_only = "Weights only load failed" in msg
        names = _unsafe_globals(path) if weights_only else ()
        reason = _refusal_reason(msg) if weights_only else _one_line(msg.splitlines()[0] if msg else "")
        if names or (weights_only and "global" in reason.lower()):
            why = f"asks for {', '.join(names[:4])}{', …' if len(names) > 4 else ''}" if names else reason
            raise TorchFileError(
                f"{what} {path} refused by torch.load(weights_only=True): it holds Python objects "
                f"other than tensors, numbers, strings and plain containers ({why}); nothing in "
                "it was run",
                path=path,
                refused=True,
                unsafe_globals=names,
            ) from None
        raise TorchFileError(
            f"{what} {path} cannot be read by torch.load (truncated, corrupt or not a torch "
            f"file: {type(e).__name__}: {reason})",
            path=path,
        ) from None


def _canonical(obj: Any) -> Any:
    """A copy of the container structure of ``obj`` in which equal strings are one object and no
    container is shared. Pickle memoises by object identity, so without this two equal payloads
    built differently (a string computed at run time vs an interned literal) pickle to different
    bytes. Tensors and scalars are kept as they are."""
    if isinstance(obj, str):
        return sys.intern(str(obj))
    if isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict, OrderedDict) else {}
        for k, v in obj.items():
            out[_canonical(k)] = _canonical(v)
        if isinstance(getattr(obj, "_metadata", None), dict):  # Module.state_dict() versions
            out._metadata = _canonical(obj._metadata)
        return out
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(_canonical(v) for v in obj)
    return obj


def torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` into memory: the same values give the same bytes (record prefix
    ``archive/``, canonical object sharing)."""
    buf = io.BytesIO()
    torch.save(_canonical(obj), buf)
    return buf.getvalue()


def save_torch_file(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``torch.save(obj)`` to ``path`` atomically; the same ``obj`` gives the same bytes."""
    path = Path(path)
    data = torch_bytes(obj)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


#: the SHA-256 of a file's bytes: :func:`rdd.contract.file_sha256`, the project's one
sha256_file = file_sha256


def is_url(source: str | os.PathLike) -> bool:
    return str(source).startswith(URL_SCHEMES)


_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def fetch_url(
    url: str, *, sha256: str | None = None, cache_dir: str | os.PathLike | None = None, what: str = "weights"
) -> Path:
    """Download ``url`` into ``cache_dir`` (default ``$TORCH_HOME/hub/checkpoints``); return the path.

    A cached file is reused (with ``sha256``: only when its digest matches, else it is fetched
    again). With ``sha256`` (64 hex digits) the download's digest must match, else ``ValueError``
    and nothing is kept in the cache. Nothing is unpickled here: load the result with
    :func:`load_torch_file`.
    """
    if not is_url(url):
        raise ValueError(f"{what} {url}: not a URL (expected {', '.join(URL_SCHEMES)})")
    if sha256 is not None:
        sha256 = str(sha256).lower()
        if not _SHA_RE.match(sha256):
            raise ValueError(f"{what} {url}: sha256 must be 64 hex digits, got {sha256!r}")
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise ValueError(f"{what} {url}: the URL names no file")
    cache = Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    # the cache key includes the URL, so two URLs ending in the same file name never collide
    dest = cache / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest  # cached (and verified when asked)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(resp, f)
            got = sha256_file(tmp)
            if sha256 is not None and got != sha256:  # checked before it enters the cache
                raise ValueError(f"{what} {url}: sha256 mismatch: expected {sha256}, the download has {got}")
    except OSError as e:  # URLError is an OSError
        raise ValueError(f"{what} {url}: download failed ({type(e).__name__}: {_one_line(str(e))})") from None
    return dest
