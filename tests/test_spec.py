"""rdd.spec: the torch-free contract shared by training, export and the edge runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rdd.spec import (
    CAMVID_CLASSES,
    ClassInfo,
    Normalization,
    as_hw,
    atomic_path,
    colorize,
    loads_json,
    overlay,
    write_json_atomic,
)


def test_normalization_golden_values():
    norm = Normalization(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    img = np.array([[[255, 0, 51]]], np.uint8)  # 1×1×3 RGB
    out = norm.apply(img)  # 3×1×1
    # (255/255 - .5)/.5 = 1 ; (0 - .25)/.25 = -1 ; (51/255 - 0)/1 = 0.2
    np.testing.assert_allclose(out[:, 0, 0], [1.0, -1.0, 0.2], rtol=1e-6)
    assert out.dtype == np.float32 and out.shape == (3, 1, 1)


def test_normalization_bgr_and_batch_match_reference():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    for color in ("RGB", "BGR"):
        norm = Normalization(color=color)
        src = img[..., ::-1] if color == "BGR" else img
        ref = (src.astype(np.float32) / 255.0 - np.float32(norm.mean)) / np.float32(norm.std)
        np.testing.assert_allclose(norm.apply(img), np.moveaxis(ref, -1, 1), atol=1e-5)
        np.testing.assert_array_equal(norm.apply(img)[1], norm.apply(img[1]))


def test_normalization_errors_and_roundtrip():
    with pytest.raises(ValueError, match="color"):
        Normalization(color="HSV")
    with pytest.raises(ValueError, match="std"):
        Normalization(std=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="H×W×3"):
        Normalization().apply(np.zeros((4, 4), np.uint8))
    n = Normalization(mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), color="BGR")
    assert Normalization.from_dict(json.loads(json.dumps(n.to_dict()))) == n
    with pytest.raises(ValueError, match="'std'"):
        Normalization.from_dict({"mean": [0, 0, 0]})


def test_classinfo_validation_and_roundtrip():
    assert CAMVID_CLASSES.num_classes == 11
    assert ClassInfo.from_dict(CAMVID_CLASSES.to_dict()) == CAMVID_CLASSES
    auto = ClassInfo(names=("a", "b", "c"))
    assert len(set(auto.palette)) == 3  # default palette is distinct
    with pytest.raises(ValueError, match="palette"):
        ClassInfo(names=("a", "b"), palette=((0, 0, 0),))
    with pytest.raises(ValueError, match="ignore_index"):
        ClassInfo(names=("a", "b"), ignore_index=1)


def test_colorize_and_overlay():
    labels = np.array([[0, 3], [255, 10]], np.uint8)
    rgb = colorize(labels, CAMVID_CLASSES)
    assert tuple(rgb[0, 0]) == (128, 128, 128) and tuple(rgb[0, 1]) == (128, 64, 128)
    assert tuple(rgb[1, 0]) == (0, 0, 0)  # ignore is black
    img = np.full((2, 2, 3), 100, np.uint8)
    blended = overlay(img, labels, CAMVID_CLASSES, alpha=0.5)
    assert tuple(blended[0, 0]) == (114, 114, 114)  # (100 + 128) / 2


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []
    write_json_atomic(target, {"a": np.float32(1.5), "b": np.arange(2)})
    assert json.loads(target.read_text()) == {"a": 1.5, "b": [0, 1]}


def test_as_hw():
    assert as_hw(5) == (5, 5) and as_hw([3, 4]) == (3, 4)
    with pytest.raises(ValueError):
        as_hw([0, 4])


def test_spec_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; import rdd, rdd.spec, rdd.metrics; "
        "assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_class_names_are_unique():
    """Issue #33 item 10: per-class results are keyed by name, so two classes of one name would
    merge into one IoU."""
    with pytest.raises(
        ValueError,
        match=r"^class names must be unique: names\[2\] repeats "
        r"names\[0\] 'car'$",
    ):
        ClassInfo(names=("car", "road", "car"))
    with pytest.raises(ValueError, match="must be unique"):
        ClassInfo.from_dict({"names": ["a", "b", "b"]})


def test_json_nesting_is_bounded():
    """Issue #33 item 10: a deeply nested JSON file is a one-line ``JSONDecodeError`` (which every
    reader already turns into its own one-line error), not a RecursionError."""
    assert loads_json('{"a": [1, "]]][[[{{", {"b": null}]}') == {"a": [1, "]]][[[{{", {"b": None}]}
    assert loads_json("[" * 64 + "]" * 64) == json.loads("[" * 64 + "]" * 64)  # the bound itself
    for text in ("[" * 100_000 + "]" * 100_000, '{"a": ' * 100_000 + "1" + "}" * 100_000):
        with pytest.raises(json.JSONDecodeError, match=r"^nested deeper than 64 levels: line 1 "):
            loads_json(text)
