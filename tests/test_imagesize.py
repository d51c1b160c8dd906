"""rdd.imagesize: an image's size from its header, before anything is decoded (issue #33).

Every format the module reads, written by OpenCV (or PIL / by hand where OpenCV writes no such
variant) at 37×53 (W×H), so a swapped or misread field shows; truncated and unknown files give
``None`` (the decoder then decides), never a wrong size.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from rdd.imagesize import check_image_size, image_size

H, W = 53, 37
_RNG = np.random.default_rng(0)
_RGB = _RNG.integers(0, 256, (H, W, 3), np.uint8)


def _cv2(ext: str, *params: int, grey: bool = False) -> bytes:
    ok, buf = cv2.imencode(ext, _RGB[..., 0] if grey else _RGB, list(params))
    assert ok
    return buf.tobytes()


def _bmp_top_down() -> bytes:
    """A BMP whose rows run top to bottom: a negative height in the header."""
    b = bytearray(_cv2(".bmp"))
    b[22:26] = struct.pack("<i", -H)
    return bytes(b)


def _webp_extended() -> bytes:
    """A WebP with alpha: the extended (``VP8X``) header, which OpenCV does not write."""
    from PIL import Image

    f = io.BytesIO()
    Image.fromarray(np.dstack([_RGB, _RGB[..., 0]]), "RGBA").save(f, "WEBP", quality=80)
    return f.getvalue()


def _tiff_big_endian() -> bytes:
    """An uncompressed 8-bit grey big-endian (``MM``) TIFF; width a SHORT, height a LONG."""
    SHORT, LONG = 3, 4
    entries = [
        (256, SHORT, W),  # ImageWidth
        (257, LONG, H),  # ImageLength
        (258, SHORT, 8),  # BitsPerSample
        (259, SHORT, 1),  # Compression: none
        (262, SHORT, 1),  # PhotometricInterpretation: BlackIsZero
        (273, LONG, 0),  # StripOffsets: filled in below
        (277, SHORT, 1),  # SamplesPerPixel
        (278, LONG, H),  # RowsPerStrip
        (279, LONG, H * W),  # StripByteCounts
    ]
    data_at = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack(">H", len(entries))
    for tag, typ, val in entries:
        val = data_at if tag == 273 else val
        value = struct.pack(">HH", val, 0) if typ == SHORT else struct.pack(">I", val)  # left-justified
        ifd += struct.pack(">HHI", tag, typ, 1) + value
    return b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0) + _RGB[..., 0].tobytes()


def _pgm_with_comments() -> bytes:
    return b"P5\n# a comment\n37 # the width\n# another\n53\n255\n" + _RGB[..., 0].tobytes()


FORMATS = {
    "png": lambda: _cv2(".png"),
    "jpeg": lambda: _cv2(".jpg"),
    "jpeg-progressive": lambda: _cv2(".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "jpeg-grey": lambda: _cv2(".jpg", grey=True),
    "bmp": lambda: _cv2(".bmp"),
    "bmp-top-down": _bmp_top_down,
    "gif": lambda: _cv2(".gif"),
    "webp-lossy": lambda: _cv2(".webp", cv2.IMWRITE_WEBP_QUALITY, 80),  # "VP8 "
    "webp-lossless": lambda: _cv2(".webp", cv2.IMWRITE_WEBP_QUALITY, 101),  # "VP8L"
    "webp-extended": _webp_extended,  # "VP8X"
    "tiff": lambda: _cv2(".tiff"),
    "tiff-uncompressed": lambda: _cv2(".tif", cv2.IMWRITE_TIFF_COMPRESSION, 1),
    "tiff-big-endian": _tiff_big_endian,
    "pbm": lambda: _cv2(".pbm", grey=True),  # P4
    "pgm": lambda: _cv2(".pgm", grey=True),  # P5
    "ppm": lambda: _cv2(".ppm"),  # P6
    "pbm-ascii": lambda: _cv2(".pbm", cv2.IMWRITE_PXM_BINARY, 0, grey=True),  # P1
    "pgm-ascii": lambda: _cv2(".pgm", cv2.IMWRITE_PXM_BINARY, 0, grey=True),  # P2
    "ppm-ascii": lambda: _cv2(".ppm", cv2.IMWRITE_PXM_BINARY, 0),  # P3
    "pgm-comments": _pgm_with_comments,
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_header_gives_the_size(tmp_path, fmt):
    path = tmp_path / "img"  # no suffix: the header alone decides
    path.write_bytes(FORMATS[fmt]())
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2] == (H, W)  # a real 37×53 image
    assert image_size(path) == (H, W)


@pytest.mark.parametrize(
    "fmt",
    [
        "png",
        "jpeg",
        "bmp",
        "gif",
        "webp-lossy",
        "webp-lossless",
        "webp-extended",
        "tiff",
        "tiff-big-endian",
        "ppm",
    ],
)
def test_a_truncated_file_gives_none_or_the_size_never_another(tmp_path, fmt):
    """A file cut anywhere: ``None`` (too short to tell) or its true size; never a wrong one."""
    data = FORMATS[fmt]()
    cuts = sorted(set(range(64)) | set(range(64, len(data), max(1, len(data) // 200))))
    path = tmp_path / "cut"
    got = {}
    for n in cuts:
        path.write_bytes(data[:n])
        got[n] = image_size(path)
    wrong = {n: hw for n, hw in got.items() if hw not in (None, (H, W))}
    assert not wrong, wrong
    assert got[0] is None and got[min(8, len(data))] is None


def test_unknown_formats_and_garbage_give_none(tmp_path):
    rng = np.random.default_rng(1)
    cases = {
        "empty": b"",
        "text": b"hello, this is not an image\n" * 10,
        "noise": rng.integers(0, 256, 4096, np.uint8).tobytes(),
        "jpeg2000": _cv2(".jp2"),
        "sun-raster": _cv2(".sr"),
        "png-signature-only": b"\x89PNG\r\n\x1a\n",
        "jpeg-markers-only": b"\xff\xd8\xff\xd8\xff\xd9" * 4,
        "tiff-bad-offset": b"II*\x00" + struct.pack("<I", 1 << 30) + bytes(64),
        "pnm-not-numbers": b"P6\nwide tall\n255\n" + bytes(64),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert image_size(path) is None, name
        check_image_size(path, 1)  # unknown: left to the decoder, never refused here


def test_check_image_size_refuses_above_the_limit_in_one_line(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(FORMATS["jpeg"]())
    check_image_size(path, H * W)  # at the limit: accepted
    with pytest.raises(ValueError) as e:
        check_image_size(path, H * W - 1, what="label")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"label {path} is 37×53 (W×H), {H * W} pixels"), msg
    assert f"above the limit of {H * W - 1}" in msg


def _tiff_with_its_directory_at_the_end(path: Path) -> Path:
    """An all-zero 4100×4100 TIFF as OpenCV (libtiff) writes it: the image directory, which holds
    the size, after the pixel data, far beyond the first 64 KiB."""
    cv2.imwrite(str(path), np.zeros((4100, 4100, 3), np.uint8))
    assert struct.unpack("<I", path.read_bytes()[4:8])[0] > 64 * 1024
    return path


def _jpeg_with_a_full_app1_segment(path: Path) -> Path:
    """An all-zero 4100×4100 JPEG with one maximal (64 KiB) EXIF segment before its frame header."""
    b = cv2.imencode(".jpg", np.zeros((4100, 4100, 3), np.uint8))[1].tobytes()
    app1 = b"\xff\xe1" + struct.pack(">H", 65535) + b"Exif\x00\x00" + bytes(65535 - 8)
    path.write_bytes(b[:2] + app1 + b[2:])
    return path


@pytest.mark.parametrize("make", [_tiff_with_its_directory_at_the_end, _jpeg_with_a_full_app1_segment])
def test_a_size_stored_beyond_the_first_64_kib_is_still_checked(tmp_path, make):
    path = make(tmp_path / ("big.tiff" if "tiff" in make.__name__ else "big.jpg"))
    assert cv2.imread(str(path)).shape[:2] == (4100, 4100)
    with pytest.raises(ValueError, match="4100×4100"):
        check_image_size(path, 4096 * 4096)


def test_read_label_checks_the_header_before_decoding(tmp_path, monkeypatch):
    """Issue #33 item 4: rdd.labels.read_label (every dataset's mask reader) refuses a label whose
    header is over the bound before decoding it, under its argument or $RDD_MAX_INPUT_PIXELS."""
    from rdd.labels import read_label

    ok = tmp_path / "ok.png"
    cv2.imwrite(str(ok), np.zeros((37, 53), np.uint8))
    assert read_label(ok).shape == (37, 53)
    with pytest.raises(ValueError, match=r"label .*ok\.png is 53×37 .*above the limit of 1000"):
        read_label(ok, max_pixels=1000)
    monkeypatch.setenv("RDD_MAX_INPUT_PIXELS", "1000")
    with pytest.raises(ValueError, match="above the limit of 1000"):
        read_label(ok)
    monkeypatch.delenv("RDD_MAX_INPUT_PIXELS")
    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)  # a 900 M-pixel grey PNG, 33 bytes
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0")
    with pytest.raises(ValueError, match="bomb.png is 30000×30000"):
        read_label(bomb)
