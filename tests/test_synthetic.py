"""Synthetic street-scene generator, dataset writer (folder layout round trip) and video writer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml

from rdd.data import EvalTransform, TrainTransform, build_dataset
from rdd.data.synthetic import render_scene, write_synthetic_dataset, write_synthetic_video
from rdd.spec import CAMVID_CLASSES

SMALL = (90, 120)


def test_render_is_deterministic_per_seed():
    a_img, a_mask = render_scene(3, SMALL)
    b_img, b_mask = render_scene(3, SMALL)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    c_img, c_mask = render_scene(4, SMALL)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_mask, c_mask)


@pytest.mark.parametrize("size", [(360, 480), (64, 96), (100, 100)])
def test_render_shapes_and_label_values(size):
    image, mask = render_scene(0, size)
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    assert mask.shape == size and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= set(range(11)) | {255}


def test_every_class_appears_in_a_few_scenes():
    seen = np.zeros(256, bool)
    for seed in range(6):
        seen[np.unique(render_scene(seed, (180, 240))[1])] = True
    missing = [n for k, n in enumerate(CAMVID_CLASSES.names) if not seen[k]]
    assert not missing, f"classes never rendered: {missing}"


def test_scene_is_street_like():
    """Coarse layout statistics over a few scenes: sky on top, road at the bottom, and
    colour alone does not separate the classes (some pixels are genuinely hard)."""
    tops, bottoms = [], []
    for seed in range(4):
        image, mask = render_scene(seed, (120, 160))
        tops.append(np.isin(mask[:10], [0, 1, 5]).mean())  # sky / building / tree up top
        bottoms.append((mask[-10:] == 3).mean())  # road at the bottom
    assert np.mean(tops) > 0.8 and np.mean(bottoms) > 0.5
    # overlapping colours: a nearest-class-mean colour classifier is far from perfect
    xs, ys = [], []
    for seed in range(4):
        image, mask = render_scene(seed + 10, (120, 160))
        keep = mask < 11
        xs.append(image[keep].astype(np.float32))
        ys.append(mask[keep])
    x, y = np.concatenate(xs), np.concatenate(ys)
    means = np.stack([x[y == k].mean(0) if (y == k).any() else np.full(3, 1e6) for k in range(11)])
    pred = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), 1)
    acc = (pred == y).mean()
    assert 0.2 < acc < 0.9, acc


def test_render_rejects_tiny_size():
    with pytest.raises(ValueError, match="at least 8×8"):
        render_scene(0, (4, 4))


def test_write_dataset_round_trip(tmp_path):
    root = tmp_path / "synth"
    summary = write_synthetic_dataset(root, n_train=4, n_val=2, size=(48, 64), seed=1)
    assert summary["n_train"] == 4 and summary["n_val"] == 2 and summary["size"] == [48, 64]
    assert abs(sum(summary["class_pixel_frequency"]["train"]) - 1) < 1e-4
    assert sorted(p.name for p in (root / "images" / "train").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left over
    classes = yaml.safe_load((root / "classes.yaml").read_text())
    assert tuple(classes["names"]) == CAMVID_CLASSES.names
    assert [tuple(c) for c in classes["palette"]] == list(CAMVID_CLASSES.palette)

    for name in ("folder", "synthetic"):
        ds = build_dataset(name, root, "train")
        assert len(ds) == 4 and ds.classes == CAMVID_CLASSES
    val = build_dataset("synthetic", root, "val", transform=EvalTransform())
    assert len(val) == 2
    # files on disk are exactly what the renderer produced (PNG is lossless)
    from rdd.data.synthetic.writers import _scene_seed

    image, mask = val.load(1)
    ref_img, ref_mask = render_scene(_scene_seed(1, 1, 1), (48, 64))
    np.testing.assert_array_equal(image, ref_img)
    np.testing.assert_array_equal(mask, ref_mask)
    assert val.validate()["num_samples"] == 2
    # and it feeds a DataLoader through the train transform
    train = build_dataset(
        "synthetic", root, "train", transform=TrainTransform((32, 32), scale_range=(0.5, 1.5))
    )
    x, y = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert x.shape == (4, 3, 32, 32) and y.shape == (4, 32, 32) and y.dtype == torch.int64

    # rewriting replaces the folder atomically (old content gone, same seed → same files)
    (root / "stale.txt").write_text("x")
    write_synthetic_dataset(root, n_train=1, n_val=1, size=(48, 64), seed=1)
    assert not (root / "stale.txt").exists()
    assert len(list((root / "images" / "train").iterdir())) == 1
    np.testing.assert_array_equal(
        build_dataset("synthetic", root, "val").load(0)[1], render_scene(_scene_seed(1, 1, 0), (48, 64))[1]
    )


def test_write_dataset_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one scene"):
        write_synthetic_dataset(tmp_path / "x", n_train=0, n_val=0)


def test_synthetic_dataset_missing_root_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_synthetic_dataset"):
        build_dataset("synthetic", tmp_path / "nothing_here", "train")


def test_write_video(tmp_path):
    video = tmp_path / "clip.mp4"
    masks, frames = tmp_path / "masks", tmp_path / "frames"
    n = 8
    summary = write_synthetic_video(
        video, masks, n_frames=n, size=(64, 96), seed=2, fps=15, images_dir=frames
    )
    assert summary["n_frames"] == n
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    count, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape
    cap.release()
    assert count == n and shape == (64, 96, 3)
    names = sorted(p.name for p in masks.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(n)]
    assert sorted(p.name for p in frames.iterdir()) == names
    m0 = cv2.imread(str(masks / names[0]), cv2.IMREAD_UNCHANGED)
    m1 = cv2.imread(str(masks / names[1]), cv2.IMREAD_UNCHANGED)
    assert m0.shape == (64, 96) and set(np.unique(m0).tolist()) <= set(range(11)) | {255}
    # consecutive frames of one moving scene: similar but not identical
    assert not np.array_equal(m0, m1) and (m0 == m1).mean() > 0.6
    # PNG frames are the lossless version of the video frames
    f0 = cv2.imread(str(frames / names[0]))
    cap = cv2.VideoCapture(str(video))
    ok, v0 = cap.read()
    cap.release()
    assert ok and np.abs(f0.astype(int) - v0.astype(int)).mean() < 12
    # deterministic: same arguments → same masks (the mp4 is optional)
    write_synthetic_video(None, tmp_path / "masks2", n_frames=n, size=(64, 96), seed=2, fps=15)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "masks2" / names[1]), cv2.IMREAD_UNCHANGED), m1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_video_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="n_frames must be >= 1"):
        write_synthetic_video(tmp_path / "a.mp4", tmp_path / "m", n_frames=0)
