"""Torch-free label reading shared by the dataset code (``rdd.data``) and the runner (``rdd.runtime``).

One reader, one mapping, one pairing rule, so a mask means the same thing in training,
evaluation, export and on the device:

* :func:`read_label` — a label image → raw integer ids ``H×W`` (``uint8`` or ``uint16``).
  Palette PNGs (Pascal VOC, grey palettes) give their palette *indices*, never colours;
  16-bit PNGs keep their ids; colour (RGB/RGBA) images are refused.
* :func:`build_lut` / :func:`apply_lut` — raw id → train id (``[0, K)`` or the ignore index).
  A raw value the table does not map (outside the classes, or above 255 without a 16-bit
  mapping) is an error naming the file, never wrapped or clipped.
* :func:`masks_by_stem` / :func:`frame_masks` — masks are matched to frames by file stem, or
  for videos by frame index (``frame_000000.png`` …); a frame without a mask has none (the
  caller counts it or fails), it never borrows the next file.
* :func:`read_classes_yaml` — a ``classes.yaml`` (the folder layout's label space) →
  :class:`rdd.spec.ClassInfo`; the one reader of that file (datasets and label noise).

Imports numpy and OpenCV only (palette PNGs are decoded by OpenCV after their palette is
swapped for the identity ramp, so no PIL is needed on a device).
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from rdd.contract.model_meta import resolve_max_pixels
from rdd.imagesize import check_image_size
from rdd.spec import ClassInfo

__all__ = [
    "IGNORE_INDEX",
    "LABEL_EXTS",
    "read_label",
    "build_lut",
    "apply_lut",
    "value_ranges",
    "masks_by_stem",
    "frame_masks",
    "FRAME_MASK_PATTERN",
    "read_classes_yaml",
]

IGNORE_INDEX = 255
LABEL_EXTS = (".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
FRAME_MASK_PATTERN = "frame_%06d.png"
_FRAME_RE = re.compile(r"^frame_(\d+)$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}  # IHDR colour type → PIL-style mode


# --------------------------------------------------------------------------- reading
def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``[(type, body), ...]`` of a PNG byte string (CRCs are not checked here; the decoder does)."""
    chunks, pos = [], len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
        if kind == b"IEND":
            break
    return chunks


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _decode_palette_indices(data: bytes, bit_depth: int, path: Path) -> np.ndarray:
    """Palette PNG bytes → ``uint8 H×W`` palette indices.

    The palette is replaced by the grey ramp ``i → (i, i, i)`` (and transparency dropped), so
    the decoder's palette expansion yields the index itself in every channel.
    """
    ramp = bytes(v for i in range(2**bit_depth) for v in (i, i, i))
    out = [_PNG_SIGNATURE]
    for kind, body in _png_chunks(data):
        if kind == b"tRNS":
            continue
        out.append(_chunk(b"PLTE", ramp) if kind == b"PLTE" else _chunk(kind, body))
    m = cv2.imdecode(np.frombuffer(b"".join(out), np.uint8), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise ValueError(f"could not decode mask file {path} (corrupt palette PNG)")
    if m.ndim == 3:
        m = m[..., 0]
    return np.ascontiguousarray(m)


def read_label(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Read a label image as an integer ``H×W`` array of *raw* ids (``uint8`` or ``uint16``).

    * palette PNGs (VOC ``SegmentationClass``, grey palettes): the palette indices;
    * grey 8/16-bit images: the values as stored (16-bit ids stay ``uint16``);
    * colour images (RGB, RGBA, grey+alpha) and non-integer images: ``ValueError``.

    The size in the file's header is checked before anything is decoded: more than
    ``max_pixels`` pixels (:func:`rdd.contract.resolve_max_pixels`: the argument, else
    ``$RDD_MAX_INPUT_PIXELS``, else 4096²) is a ``ValueError``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming ``path`` otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    check_image_size(path, resolve_max_pixels(max_pixels), "label")
    data = path.read_bytes()
    mode = None
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 33 and data[12:16] == b"IHDR":
        bit_depth, color_type = data[24], data[25]
        mode = _PNG_MODES.get(color_type, f"colour type {color_type}")
        if color_type == 3:
            return _decode_palette_indices(data, bit_depth, path)
        if color_type == 0 and bit_depth == 16:
            mode = "I;16"
    m = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise ValueError(f"could not decode mask file {path} (corrupt or unsupported format)")
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        mode = mode or {3: "RGB", 4: "RGBA"}.get(m.shape[2], f"{m.shape[2]} channels")
        raise ValueError(
            f"mask file {path} has mode {mode!r} (shape {m.shape}); expected a single-channel "
            "label image or a palette PNG with one class index per pixel (not a colour image)"
        )
    if m.dtype.kind not in "ui":
        raise ValueError(f"mask file {path} holds {m.dtype} values; expected integer class ids")
    return m


# --------------------------------------------------------------------------- mapping
def build_lut(
    mapping: dict[int, int] | None = None,
    *,
    identity: int = 0,
    ignore_values: Sequence[int] = (IGNORE_INDEX,),
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """A lookup table raw id → train id, with ``-1`` marking *invalid* raw ids.

    ``identity`` keeps raw ids ``[0, identity)`` unchanged; every value in ``ignore_values``
    maps to ``ignore_index``; ``mapping`` then overrides entries. The table covers ids
    ``0…255``, or up to the largest id named (16-bit annotations, e.g. ``{259: 3}``); a raw id
    beyond it is invalid.
    """
    keys = [int(k) for k in (mapping or {})] + [int(v) for v in ignore_values] + [identity - 1, 0]
    if min(keys[:-2] + [identity, 0]) < 0 or max(keys) > 65535:
        raise ValueError(f"label ids must be in [0, 65535], got {sorted(keys)}")
    lut = np.full(max(256, max(keys) + 1), -1, np.int16)
    lut[:identity] = np.arange(identity)
    for v in ignore_values:
        lut[int(v)] = ignore_index
    for k, v in (mapping or {}).items():
        lut[int(k)] = int(v)
    return lut


def apply_lut(
    raw: np.ndarray,
    lut: np.ndarray,
    *,
    num_classes: int,
    path: str | os.PathLike = "<mask>",
    ignore_index: int = IGNORE_INDEX,
    hint: str = "",
) -> np.ndarray:
    """Map raw ids through ``lut`` (from :func:`build_lut`) → ``uint8`` train ids ``H×W``.

    Raises ``ValueError`` naming ``path`` and the offending values if a raw id is negative,
    beyond the table or marked invalid (``hint`` is appended to the message).
    """
    raw = np.asarray(raw)
    if raw.dtype.kind not in "ui":
        raise ValueError(f"label {path}: expected integer ids, got {raw.dtype}")
    if raw.dtype == np.uint8 and len(lut) >= 256:
        out = lut[raw]
    else:
        outside = (raw < 0) | (raw >= len(lut))
        out = lut[np.where(outside, 0, raw)]
        out[outside] = -1
    bad_mask = out < 0
    if bad_mask.any():
        bad = np.unique(raw[bad_mask])
        raise ValueError(
            f"label {path}: invalid label values {bad[:10].tolist()}; expected train ids "
            f"[0, {num_classes}) or ignore {ignore_index} after mapping (valid raw values: "
            f"{value_ranges(np.flatnonzero(lut >= 0))}){hint}"
        )
    return out.astype(np.uint8)


def value_ranges(values: np.ndarray) -> str:
    """Sorted ints → ``"0-10, 255"``."""
    values = np.asarray(values)
    if values.size == 0:
        return "none"
    parts, start, prev = [], int(values[0]), int(values[0])
    for v in values[1:].tolist() + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


# --------------------------------------------------------------------------- pairing
def masks_by_stem(folder: str | os.PathLike, exts: Sequence[str] = LABEL_EXTS) -> dict[str, Path]:
    """``{stem: path}`` of the mask files directly in ``folder`` (empty if it does not exist).

    Two files with one stem (``a.png`` and ``a.bmp``) are an error: which one is meant is unclear.
    """
    folder = Path(folder)
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if not p.suffix or p.suffix.lower() not in exts or not p.is_file():
            continue
        stem = p.name[: -len(p.suffix)]
        if stem in out:
            raise ValueError(
                f"mask folder {folder} holds {out[stem].name} and {p.name}: two masks for {stem!r}; keep one"
            )
        out[stem] = p
    return out


def frame_masks(folder: str | os.PathLike) -> dict[int, Path]:
    """``{frame index: path}`` of the ``frame_%06d.<ext>`` masks in ``folder`` (video ground truth)."""
    return {int(m.group(1)): p for stem, p in masks_by_stem(folder).items() if (m := _FRAME_RE.match(stem))}


def read_classes_yaml(path: str | os.PathLike) -> ClassInfo:
    """``classes.yaml`` with ``names`` (list), optional ``palette`` ([[r, g, b], ...]) and
    ``ignore_index`` (default 255) → :class:`~rdd.spec.ClassInfo` (read with ``yaml.safe_load``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"class file not found: {path} (expected a YAML file with "
            f"'names', optional 'palette' and 'ignore_index')"
        )
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(d, dict) or "names" not in d:
        raise ValueError(f"{path}: expected a mapping with key 'names' (list of class names)")
    try:
        return ClassInfo.from_dict(d)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None
