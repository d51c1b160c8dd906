"""Label-noise corruption (rdd.label_noise) and its DVC stage (pipeline.noisy_data)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rdd.label_noise import BOUNDARY, RANDOM, boundary_band, corrupt_mask, corrupt_split

IGN = 255


def _two_class(h: int = 6, w: int = 6) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[:, w // 2 :] = 1
    return m


def _check_invariants(mask, noisy, kinds, *, rate, radius, ignore=IGN):
    """Everything corrupt_mask promises, checked pixel by pixel."""
    valid = mask != ignore
    changed = kinds != 0
    assert noisy.dtype == mask.dtype and noisy.shape == mask.shape
    assert set(np.unique(kinds)) <= {0, BOUNDARY, RANDOM}
    assert changed.sum() == round(rate * valid.sum())  # exact budget
    assert not changed[~valid].any() and (noisy[~valid] == ignore).all()  # ignore untouched
    assert (noisy[changed] != mask[changed]).all()  # every change is a change
    assert (noisy[~changed] == mask[~changed]).all()  # nothing else moved
    assert (noisy[valid] != ignore).all()  # ignore never a new label
    band = boundary_band(mask, radius=radius, ignore_index=ignore)
    assert not (kinds == BOUNDARY)[~band].any()  # boundary noise inside the band
    H, W = mask.shape
    for y, x in zip(*np.nonzero(kinds == BOUNDARY)):  # ... copying a real neighbour
        win = mask[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
        assert noisy[y, x] in win[(win != ignore) & (win != mask[y, x])]


# --------------------------------------------------------------------------- boundary_band
def test_band_two_classes_radius1_golden():
    band = boundary_band(_two_class(), radius=1)
    expected = np.zeros((6, 6), bool)
    expected[:, 2:4] = True
    np.testing.assert_array_equal(band, expected)


def test_band_is_chebyshev():
    m = np.zeros((6, 6), np.uint8)
    m[2, 2] = 1
    expected = np.zeros((6, 6), bool)
    expected[1:4, 1:4] = True  # the diagonal neighbours count (Euclidean r=1 would be a cross)
    np.testing.assert_array_equal(boundary_band(m, radius=1), expected)


def test_band_ignores_ignore_pixels():
    m = _two_class()
    m[:, 3] = IGN  # class 0 in cols 0-2, ignore col 3, class 1 in cols 4-5
    assert not boundary_band(m, radius=1).any()  # ignore is not "another class"
    expected = np.zeros((6, 6), bool)
    expected[:, [2, 4]] = True
    np.testing.assert_array_equal(boundary_band(m, radius=2), expected)
    assert not boundary_band(np.full((4, 4), IGN, np.uint8), radius=2).any()


def test_band_bad_input():
    with pytest.raises(ValueError, match="radius"):
        boundary_band(_two_class(), radius=0)
    with pytest.raises(ValueError, match="H×W"):
        boundary_band(np.zeros((2, 2, 3), np.uint8), radius=1)


# --------------------------------------------------------------------------- corrupt_mask
def test_rate_zero_is_identity():
    _, mask = _scene()
    noisy, kinds = corrupt_mask(mask, rate=0.0, num_classes=11, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(noisy, mask)
    assert noisy is not mask and not kinds.any() and kinds.dtype == np.uint8


def test_ignore_never_touched_and_changes_are_real():
    mask = _two_class(12, 12)
    mask[4:8, :] = IGN
    mask[0, 0] = 2
    noisy, kinds = corrupt_mask(
        mask, rate=0.5, radius=2, patch=3, num_classes=4, rng=np.random.default_rng(1)
    )
    _check_invariants(mask, noisy, kinds, rate=0.5, radius=2)
    assert (kinds == BOUNDARY).any() and (kinds == RANDOM).any()


def test_boundary_only_and_shortfall_goes_to_random():
    mask = _two_class(6, 6)  # band at radius 1 = 12 of 36 pixels
    noisy, kinds = corrupt_mask(
        mask, rate=0.25, boundary_share=1.0, radius=1, num_classes=2, rng=np.random.default_rng(0)
    )
    _check_invariants(mask, noisy, kinds, rate=0.25, radius=1)
    assert (kinds == BOUNDARY).sum() == 9 and not (kinds == RANDOM).any()
    # a budget larger than the band: the whole band, the rest as random noise
    noisy, kinds = corrupt_mask(
        mask, rate=0.5, boundary_share=1.0, radius=1, num_classes=3, rng=np.random.default_rng(0)
    )
    _check_invariants(mask, noisy, kinds, rate=0.5, radius=1)
    assert (kinds == BOUNDARY).sum() == 12 and (kinds == RANDOM).sum() == 6


def test_random_noise_is_one_wrong_class_square():
    mask = np.zeros((20, 20), np.uint8)
    noisy, kinds = corrupt_mask(
        mask, rate=16 / 400, boundary_share=0.3, patch=4, num_classes=5, rng=np.random.default_rng(3)
    )
    ys, xs = np.nonzero(kinds)
    assert (kinds[ys, xs] == RANDOM).all()  # a one-class mask has no band
    assert np.ptp(ys) == 3 and np.ptp(xs) == 3 and ys.size == 16  # one full 4×4 blob
    assert len(set(noisy[ys, xs].tolist())) == 1 and noisy[ys[0], xs[0]] != 0


def test_blob_class_absent_under_the_blob():
    mask = _two_class(10, 10)
    noisy, kinds = corrupt_mask(
        mask, rate=0.3, boundary_share=0.0, patch=5, num_classes=3, rng=np.random.default_rng(0)
    )
    _check_invariants(mask, noisy, kinds, rate=0.3, radius=3)
    # with classes {0, 1} under most blobs, the blob class is mostly 2
    assert (noisy[kinds == RANDOM] == 2).mean() > 0.5


def _scene(seed: int = 5):
    from rdd.data.synthetic import render_scene

    return render_scene(seed, (120, 160))


@pytest.mark.parametrize("rate,share", [(0.05, 0.5), (0.2, 0.5), (0.4, 0.0), (0.3, 1.0)])
def test_realised_rate_on_synthetic_scene(rate, share):
    _, mask = _scene()
    noisy, kinds = corrupt_mask(
        mask, rate=rate, boundary_share=share, num_classes=11, rng=np.random.default_rng(0)
    )
    _check_invariants(mask, noisy, kinds, rate=rate, radius=3)
    valid = mask != IGN
    realised = (kinds != 0).sum() / valid.sum()
    assert abs(realised - rate) <= 0.005
    band = boundary_band(mask, radius=3).sum() / valid.sum()
    want_boundary = min(share * rate, band)
    assert abs((kinds == BOUNDARY).sum() / valid.sum() - want_boundary) <= 0.005


def test_deterministic_given_rng():
    _, mask = _scene()
    a = corrupt_mask(mask, rate=0.2, num_classes=11, rng=np.random.default_rng(7))
    b = corrupt_mask(mask, rate=0.2, num_classes=11, rng=np.random.default_rng(7))
    c = corrupt_mask(mask, rate=0.2, num_classes=11, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert (a[0] != c[0]).any()


def test_bad_arguments():
    m = _two_class()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="rate"):
        corrupt_mask(m, rate=1.5, num_classes=2, rng=rng)
    with pytest.raises(ValueError, match="boundary_share"):
        corrupt_mask(m, rate=0.1, boundary_share=-0.1, num_classes=2, rng=rng)
    with pytest.raises(ValueError, match="label 5 outside"):
        corrupt_mask(m * 5, rate=0.1, num_classes=3, rng=rng)
    with pytest.raises(TypeError, match="Generator"):
        corrupt_mask(m, rate=0.1, num_classes=2, rng=0)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    k=st.integers(2, 5),
    rate=st.floats(0.0, 1.0),
    share=st.floats(0.0, 1.0),
    radius=st.integers(1, 3),
    patch=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    ignore_p=st.floats(0.0, 0.5),
)
def test_invariants_property(h, w, k, rate, share, radius, patch, seed, ignore_p):
    gen = np.random.default_rng(seed)
    mask = gen.integers(0, k, (h, w)).astype(np.uint8)
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    mask[gen.random((h, w)) < ignore_p] = IGN
    noisy, kinds = corrupt_mask(
        mask,
        rate=rate,
        boundary_share=share,
        radius=radius,
        patch=patch,
        num_classes=k,
        rng=np.random.default_rng(seed),
    )
    _check_invariants(mask, noisy, kinds, rate=rate, radius=radius)


# --------------------------------------------------------------------------- corrupt_split
@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    from rdd.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("clean") / "synthetic"
    write_synthetic_dataset(root, n_train=4, n_val=2, size=(48, 64), seed=0)
    return root


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_split_in_place_and_deterministic(tiny_dataset, tmp_path):
    a = _copy(tiny_dataset, tmp_path / "a")
    b = _copy(tiny_dataset, tmp_path / "b")
    sa = corrupt_split(a, "train", rate=0.2, seed=3, radius=2)
    sb = corrupt_split(b, "train", rate=0.2, seed=3, radius=2)
    assert sa == sb and sa["num_files"] == 4 and sa["params"]["radius"] == 2
    assert abs(sa["realised_rate"] - 0.2) <= 0.005
    assert sa["realised_rate"] == pytest.approx(sa["boundary_rate"] + sa["random_rate"], abs=2e-6)
    assert set(sa["per_class_rate"]) == {
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
    }
    files = sorted((tiny_dataset / "masks" / "train").glob("*.png"))
    n_diff = 0
    for f in files:
        clean = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        na = cv2.imread(str(a / "masks" / "train" / f.name), cv2.IMREAD_UNCHANGED)
        nb = cv2.imread(str(b / "masks" / "train" / f.name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(na, nb)
        assert ((na != clean) <= (clean != IGN)).all()
        n_diff += int((na != clean).sum())
        assert na.dtype == np.uint8 and na.shape == (48, 64)
    assert n_diff > 0
    assert not list((a / "masks" / "train").glob(".*"))  # no temporary files left behind
    for f in (tiny_dataset / "masks" / "val").glob("*.png"):  # other splits untouched
        assert f.read_bytes() == (a / "masks" / "val" / f.name).read_bytes()
    sc = corrupt_split(_copy(tiny_dataset, tmp_path / "c"), "train", rate=0.2, seed=4, radius=2)
    assert sc != sa


def test_corrupt_split_errors(tiny_dataset, tmp_path):
    empty = tmp_path / "empty"
    (empty / "masks" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=str(empty / "masks" / "train")):
        corrupt_split(empty, "train", rate=0.1, seed=0)
    with pytest.raises(TypeError, match="unexpected keyword 'sigma'"):
        corrupt_split(tiny_dataset, "train", rate=0.1, seed=0, sigma=2)
    # classes.yaml is read by the one reader of that file (rdd.labels.read_classes_yaml)
    bad = _copy(tiny_dataset, tmp_path / "bad")
    (bad / "classes.yaml").write_text("palette: [[1, 2, 3]]\n")
    with pytest.raises(ValueError, match="classes.yaml: expected a mapping with key 'names'"):
        corrupt_split(bad, "train", rate=0.1, seed=0)
    (bad / "classes.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="class file not found: .*classes.yaml"):
        corrupt_split(bad, "train", rate=0.1, seed=0)
    for f in (tiny_dataset / "masks" / "train").glob("*.png"):  # nothing was rewritten
        assert f.read_bytes() == (bad / "masks" / "train" / f.name).read_bytes()


# --------------------------------------------------------------------------- pipeline stage
def _params(tmp_path: Path, **noise) -> Path:
    p = {
        "data": {"dataset": "synthetic"},
        "prepare": {"check": "quick", "synthetic": {"n_train": 4, "n_val": 2, "size": [48, 64], "seed": 0}},
        "noise": {"seed": 1, **noise},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def test_noisy_data_stage_end_to_end(tiny_dataset, tmp_path):
    from click.testing import CliRunner

    from pipeline.noisy_data import main

    out = tmp_path / "n20"
    res = CliRunner().invoke(
        main, ["--params", str(_params(tmp_path, radius=2)), "--out-root", str(out), "--rate", "0.2"]
    )
    assert res.exit_code == 0, res.output
    assert "val clean" in res.output
    root = out / "data" / "synthetic"
    for f in sorted((tiny_dataset / "masks" / "val").glob("*.png")):  # val byte-identical
        assert (root / "masks" / "val" / f.name).read_bytes() == f.read_bytes()
    diff = [
        (root / "masks" / "train" / f.name).read_bytes() != f.read_bytes()
        for f in sorted((tiny_dataset / "masks" / "train").glob("*.png"))
    ]
    assert len(diff) == 4 and all(diff)
    noise = json.loads((out / "data" / "noise.json").read_text())
    assert noise["rate"] == 0.2 and abs(noise["realised_rate"] - 0.2) <= 0.005
    assert noise["seed"] == 1 and noise["params"] == {"boundary_share": 0.5, "radius": 2, "patch": 5}
    assert noise["clean_splits"] == ["val"] and (out / "data" / "dataset.json").is_file()


@pytest.mark.parametrize(
    "noise,rate,msg",
    [
        ({"sigma": 1}, "0.2", "noise.sigma"),
        ({"radius": 0}, "0.2", "noise.radius"),
        ({"boundary_share": "half"}, "0.2", "noise.boundary_share"),
        ({}, "0.95", "--rate must be in [0, 0.9]"),
    ],
)
def test_noisy_data_stage_bad_params(tmp_path, noise, rate, msg):
    from click.testing import CliRunner

    from pipeline.noisy_data import main

    res = CliRunner().invoke(
        main, ["--params", str(_params(tmp_path, **noise)), "--out-root", str(tmp_path / "o"), "--rate", rate]
    )
    assert res.exit_code == 1 and msg in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # failed before any work


def test_noisy_data_stage_refuses_real_datasets(tmp_path):
    import click

    from pipeline.noisy_data import prepare_noisy_data

    with pytest.raises(click.ClickException, match="data.dataset must be 'synthetic'"):
        prepare_noisy_data({"data": {"dataset": "camvid", "root": str(tmp_path)}}, tmp_path, 0.1)
