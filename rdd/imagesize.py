"""An image file's size from its header, before anything is decoded (standard library only).

A small compressed file can decode to gigabytes (a 2.6 MB PNG of 30 000 × 30 000 pixels is a
2.7 GB frame): every reader of untrusted images (the runner's sources, :mod:`rdd.labels`) asks
:func:`check_image_size` first. PNG, JPEG, BMP, GIF, WebP, TIFF and PNM headers are read; a file
whose header is none of those is left to the decoder (OpenCV's own bound,
``OPENCV_IO_MAX_IMAGE_PIXELS``, 2³⁰ pixels, still applies).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

__all__ = ["image_size", "check_image_size"]


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(H, W)`` from the header of the image at ``path``; ``None`` for an unknown format or a
    header too short to tell (the decoder then decides)."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    return _size_of(head)


def check_image_size(path: str | os.PathLike, max_pixels: int, what: str = "image") -> None:
    """``ValueError`` (one line naming ``path``) when the header says the image has more than
    ``max_pixels`` pixels."""
    hw = image_size(path)
    if hw is not None and hw[0] * hw[1] > max_pixels:
        raise ValueError(
            f"{what} {Path(path)} is {hw[1]}×{hw[0]} (W×H), {hw[0] * hw[1]} pixels, "
            f"above the limit of {max_pixels} (--max-input-pixels / "
            "RDD_MAX_INPUT_PIXELS)"
        )


def _size_of(b: bytes) -> tuple[int, int] | None:
    try:
        if b.startswith(b"\x89PNG\r\n\x1a\n") and b[12:16] == b"IHDR":
            w, h = struct.unpack(">II", b[16:24])
            return h, w
        if b[:2] == b"\xff\xd8":
            return _jpeg(b)
        if b[:2] == b"BM":
            w, h = struct.unpack("<ii", b[18:26])
            return abs(h), abs(w)
        if b[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", b[6:10])
            return h, w
        if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
            return _webp(b)
        if b[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(b)
        if b[:1] == b"P" and b[1:2] in b"123456":
            return _pnm(b)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _jpeg(b: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", b[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            h, w = struct.unpack(">HH", b[i + 5 : i + 9])
            return h, w
        i += 2 + length
    return None


def _webp(b: bytes) -> tuple[int, int] | None:
    kind = b[12:16]
    if kind == b"VP8X":
        w = 1 + int.from_bytes(b[24:27], "little")
        h = 1 + int.from_bytes(b[27:30], "little")
        return h, w
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", b[26:30])
        return h & 0x3FFF, w & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(b[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    return None


def _tiff(b: bytes) -> tuple[int, int] | None:
    e = "<" if b[:2] == b"II" else ">"
    off = struct.unpack(e + "I", b[4:8])[0]
    n = struct.unpack(e + "H", b[off : off + 2])[0]
    dims: dict[int, int] = {}
    for k in range(n):
        tag, typ, _cnt = struct.unpack(e + "HHI", b[off + 2 + 12 * k : off + 10 + 12 * k])
        if tag in (256, 257):
            val = b[off + 10 + 12 * k : off + 14 + 12 * k]
            dims[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), val[: 2 if typ == 3 else 4])[0]
    return (dims[257], dims[256]) if 256 in dims and 257 in dims else None


def _pnm(b: bytes) -> tuple[int, int] | None:
    tokens: list[bytes] = []
    for line in b[2:].split(b"\n"):
        line = line.split(b"#")[0]
        tokens += line.split()
        if len(tokens) >= 2:
            return int(tokens[1]), int(tokens[0])
    return None
