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


#: bytes read up front; a field stored further on (a TIFF's directory after its pixels, a JPEG's
#: frame header after a large EXIF block) is read where it is
HEAD_BYTES = 64 * 1024
#: JPEG segments walked before giving up on finding the frame header
MAX_JPEG_SEGMENTS = 4096


class _Short(ValueError):
    """The file ends before a header field."""


class _Header:
    """A file's header bytes, read at any offset: :meth:`at` returns exactly ``n`` bytes or
    raises :class:`_Short`."""

    def __init__(self, f) -> None:
        self.f = f
        self.head = f.read(HEAD_BYTES)

    def at(self, offset: int, n: int) -> bytes:
        if offset + n <= len(self.head):
            return self.head[offset : offset + n]
        self.f.seek(offset)
        b = self.f.read(n)
        if len(b) != n:
            raise _Short(f"{n} bytes at {offset}")
        return b


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(H, W)`` from the header of the image at ``path``; ``None`` for an unknown format or a
    header too short to tell (the decoder then decides). Fields stored anywhere in the file are
    found (a TIFF's directory after its pixel data, a JPEG's frame header after large segments)."""
    with open(path, "rb") as f:
        return _size_of(_Header(f))


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


def _size_of(r: _Header) -> tuple[int, int] | None:
    b = r.head
    try:
        if b.startswith(b"\x89PNG\r\n\x1a\n") and r.at(12, 4) == b"IHDR":
            w, h = struct.unpack(">II", r.at(16, 8))
            return h, w
        if b[:2] == b"\xff\xd8":
            return _jpeg(r)
        if b[:2] == b"BM":
            w, h = struct.unpack("<ii", r.at(18, 8))
            return abs(h), abs(w)
        if b[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", r.at(6, 4))
            return h, w
        if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
            return _webp(r)
        if b[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(r)
        if b[:1] == b"P" and b[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6"):
            return _pnm(b)
    except (struct.error, IndexError, ValueError):  # _Short is a ValueError
        return None
    return None


def _jpeg(r: _Header) -> tuple[int, int] | None:
    i = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        ff, marker = r.at(i, 2)
        if ff != 0xFF:
            return None
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", r.at(i + 2, 2))[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            h, w = struct.unpack(">HH", r.at(i + 5, 4))
            return h, w
        if length < 2:
            return None
        i += 2 + length
    return None


def _webp(r: _Header) -> tuple[int, int] | None:
    kind = r.at(12, 4)
    if kind == b"VP8X":
        d = r.at(24, 6)
        return 1 + int.from_bytes(d[3:6], "little"), 1 + int.from_bytes(d[0:3], "little")
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", r.at(26, 4))
        return h & 0x3FFF, w & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(r.at(21, 4), "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    return None


def _tiff(r: _Header) -> tuple[int, int] | None:
    e = "<" if r.head[:2] == b"II" else ">"
    off = struct.unpack(e + "I", r.at(4, 4))[0]
    n = struct.unpack(e + "H", r.at(off, 2))[0]
    entries = r.at(off + 2, 12 * n)
    dims: dict[int, int] = {}
    for k in range(n):
        tag, typ, _cnt = struct.unpack(e + "HHI", entries[12 * k : 12 * k + 8])
        if tag in (256, 257):
            val = entries[12 * k + 8 : 12 * k + 12]
            dims[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), val[: 2 if typ == 3 else 4])[0]
    return (dims[257], dims[256]) if 256 in dims and 257 in dims else None


def _pnm(b: bytes) -> tuple[int, int] | None:
    """Width and height, the first two numbers after the magic (``#`` comments skipped); a number
    counts only when whitespace ends it, so a header cut mid-number gives ``None``."""
    tokens: list[int] = []
    i, n = 2, len(b)
    while i < n and len(tokens) < 2:
        c = b[i : i + 1]
        if c == b"#":
            j = b.find(b"\n", i)
            if j < 0:
                return None
            i = j + 1
        elif c.isspace():
            i += 1
        elif c.isdigit():
            j = i
            while j < n and b[j : j + 1].isdigit():
                j += 1
            if j == n:  # cut mid-number
                return None
            tokens.append(int(b[i:j]))
            i = j
        else:
            return None
    return (tokens[1], tokens[0]) if len(tokens) == 2 else None
