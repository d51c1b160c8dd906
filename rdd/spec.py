"""Torch-free description of what a segmentation model expects and predicts.

Everything that training, export and the edge runtime must agree on lives here as *data*:
the input normalisation (:class:`Normalization`) and the label space (:class:`ClassInfo`).
This module imports numpy only, so ``rdd.runtime`` and ``deploy/infer.py`` can use it on a
device without PyTorch.

Conventions used across the whole project:

* images are ``uint8`` arrays ``H×W×3`` in **RGB** order (OpenCV's BGR is converted at read time);
* masks are integer arrays ``H×W`` of train ids in ``[0, K)``, with ``ignore_index`` (255) for
  pixels that carry no label;
* model inputs are ``float32`` ``N×3×H×W`` tensors produced by :meth:`Normalization.apply`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# RDD's choices, the one home for the losses (rdd.losses) and the torch-free configuration:
TSE_MODES = ("xor", "or", "and", "student")  # TSE mask: hard for exactly one / either / both / student
TFE_REDUCTIONS = ("valid", "all")  # TFE loss denominator: labelled pixels / all N·H·W


@dataclass(frozen=True)
class Normalization:
    """Per-channel normalisation ``(x / 255 - mean) / std`` applied to a uint8 image.

    ``mean`` and ``std`` are in ``[0, 1]`` units and listed in the channel order given by
    ``color`` (the order the *model* expects; images arrive in RGB).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"

    def __post_init__(self) -> None:
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"Normalization.color must be 'RGB' or 'BGR', got {self.color!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("Normalization.mean and .std need 3 values each")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"Normalization.std must be positive, got {self.std}")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def apply(self, image_rgb: np.ndarray) -> np.ndarray:
        """uint8 ``H×W×3`` RGB (or ``N×H×W×3``) → float32 ``3×H×W`` (or ``N×3×H×W``).

        ``(x - 255·mean_c) / (255·std_c)``, computed one channel plane at a time straight into
        the channel-first output (no full-size HWC float temporaries, no transpose copy): this
        runs per frame in the edge runtime and in every data-loader sample.
        """
        x = np.asarray(image_rgb)
        if x.ndim not in (3, 4) or x.shape[-1] != 3:
            raise ValueError(f"expected an H×W×3 or N×H×W×3 image, got shape {x.shape}")
        out = np.empty(x.shape[:-3] + (3,) + x.shape[-3:-1], np.float32)
        offset = np.asarray(self.mean, np.float32) * np.float32(255.0)
        scale = np.asarray(self.std, np.float32) * np.float32(255.0)
        order = (2, 1, 0) if self.color == "BGR" else (0, 1, 2)
        for c in range(3):
            dst = out[..., c, :, :]
            np.subtract(x[..., order[c]], offset[c], out=dst, dtype=np.float32)
            dst /= scale[c]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "color": self.color}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        try:
            return cls(mean=tuple(d["mean"]), std=tuple(d["std"]), color=d.get("color", "RGB"))
        except KeyError as e:
            raise ValueError(f"normalization is missing key {e.args[0]!r}: {d}") from None


@dataclass(frozen=True)
class ClassInfo:
    """Names, display colours (RGB) and the ignore index of a label space."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...] = field(default=())
    ignore_index: int = 255

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if not names:
            raise ValueError("ClassInfo needs at least one class name")
        first: dict[str, int] = {}
        for i, n in enumerate(names):  # per-class results are keyed by name: one per class
            if first.setdefault(n, i) != i:
                raise ValueError(
                    f"class names must be unique: names[{i}] repeats names[{first[n]}] {n[:60]!r}"
                )
        palette = tuple(tuple(int(c) for c in p) for p in self.palette) or default_palette(len(names))
        if len(palette) != len(names):
            raise ValueError(f"ClassInfo: {len(names)} names but {len(palette)} palette colours")
        if not 0 <= self.ignore_index <= 255 or self.ignore_index < len(names):
            raise ValueError(
                f"ClassInfo.ignore_index must be in [{len(names)}, 255], got {self.ignore_index}"
            )
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "palette", palette)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def palette_array(self) -> np.ndarray:
        """``K×3`` uint8 RGB colours."""
        return np.asarray(self.palette, dtype=np.uint8).reshape(-1, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "palette": [list(p) for p in self.palette],
            "ignore_index": self.ignore_index,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassInfo:
        try:
            return cls(
                names=tuple(d["names"]),
                palette=tuple(map(tuple, d.get("palette", ()))),
                ignore_index=int(d.get("ignore_index", 255)),
            )
        except KeyError as e:
            raise ValueError(f"classes is missing key {e.args[0]!r}: {d}") from None


def voc_colormap(k: int, *, start: int = 0) -> tuple[tuple[int, int, int], ...]:
    """Pascal VOC's bit-interleaved colour map for ids ``start … start + k - 1``."""
    out = []
    for i in range(start, start + k):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return tuple(out)


def default_palette(k: int) -> tuple[tuple[int, int, int], ...]:
    """A deterministic, well-spread palette for ``k`` classes (VOC's map without its black 0)."""
    return voc_colormap(k, start=1)


CAMVID_CLASSES = ClassInfo(
    names=(
        "sky",
        "building",
        "pole",
        "road",
        "sidewalk",
        "tree",
        "sign_symbol",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    ),
    palette=(
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (0, 0, 192),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ),
    ignore_index=255,
)


def colorize(labels: np.ndarray, classes: ClassInfo) -> np.ndarray:
    """``H×W`` train ids → ``H×W×3`` uint8 RGB; ignored / out-of-range ids are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: classes.num_classes] = classes.palette_array()
    return lut[np.asarray(labels).astype(np.uint8)]


def overlay(image_rgb: np.ndarray, labels: np.ndarray, classes: ClassInfo, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour mask of ``labels`` over ``image_rgb`` (both H×W)."""
    color = colorize(labels, classes)
    out = image_rgb.astype(np.float32) * (1.0 - alpha) + color.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- atomic writes
def temp_sibling(path: str | os.PathLike, *, directory: bool = False) -> Path:
    """Create a new empty file (or folder) with a unique hidden name beside ``path``; return it.

    It gets the mode a plain ``open(path, "w")`` (or ``mkdir``) would: ``0o666`` (``0o777``)
    masked by the process umask, so what is renamed onto ``path`` is readable by whoever the
    umask allows (``tempfile.mkstemp``/``mkdtemp`` would make it ``0o600``/``0o700``).
    """
    path = Path(path)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}"
        try:
            if directory:
                os.mkdir(tmp, 0o777)
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary name beside {path}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    Nothing half-written is left behind: on an exception the temporary file is removed. The file
    ends up with the mode a plain ``open()`` gives under the process umask (:func:`temp_sibling`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temp_sibling(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


#: Deepest nesting of objects / arrays a JSON file read by the project may have (its files nest
#: a few levels; a crafted one a hundred thousand levels deep would end in RecursionError).
MAX_JSON_DEPTH = 64
_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def loads_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)``, refusing nesting deeper than ``max_depth`` before parsing with a
    ``json.JSONDecodeError`` (``nested deeper than 64 levels: line 1 column 65 (char 64)``), so a
    reader's existing ``except json.JSONDecodeError`` turns it into its one-line error."""
    depth = 0
    for m in _JSON_NESTING.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > max_depth:
                raise json.JSONDecodeError(f"nested deeper than {max_depth} levels", text, m.start())
        elif c in "]}":
            depth -= 1
    return json.loads(text)


def as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``512`` → ``(512, 512)``; ``[360, 480]`` → ``(360, 480)``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    s = tuple(int(v) for v in size)
    if len(s) != 2 or min(s) <= 0:
        raise ValueError(f"expected a positive size (H, W), got {size!r}")
    return s  # type: ignore[return-value]
