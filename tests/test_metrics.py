"""ConfusionMatrix: golden values, numpy/torch agreement, merging, ignore, validation, properties."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rdd.metrics import ConfusionMatrix

# Hand example, K = 3, one 2×3 image (255 = ignore):
#   target = [[0, 0, 1],      pred = [[0, 1, 1],
#             [1, 2, 255]]            [2, 2, 0]]
# counted (gt, pred) pairs: (0,0) (0,1) (1,1) (1,2) (2,2); the (255, 0) pixel is skipped.
TARGET = np.array([[0, 0, 1], [1, 2, 255]], dtype=np.uint8)
PRED = np.array([[0, 1, 1], [2, 2, 0]], dtype=np.int64)
#            pred:  0  1  2          rows = ground truth
MATRIX = np.array(
    [
        [1, 1, 0],  # gt 0
        [0, 1, 1],  # gt 1
        [0, 0, 1],
    ]
)  # gt 2
# TP = [1, 1, 1]; GT totals = [2, 2, 1]; pred totals = [1, 2, 2]
# IoU = TP / (GT + pred - TP) = [1/2, 1/3, 1/2]        -> mIoU = 4/9
# pixel acc = 3/5; per-class acc = TP / GT = [1/2, 1/2, 1] -> mean acc = 2/3
IOU = [1 / 2, 1 / 3, 1 / 2]


def test_golden_values_numpy():
    cm = ConfusionMatrix(3).update(PRED, TARGET)
    np.testing.assert_array_equal(cm.matrix, MATRIX)
    r = cm.compute(with_confusion=True)
    assert r["iou"] == pytest.approx(IOU)
    assert r["miou"] == pytest.approx(4 / 9)
    assert r["pixel_acc"] == pytest.approx(3 / 5)
    assert r["mean_acc"] == pytest.approx(2 / 3)
    assert r["confusion"] == MATRIX.tolist()


def test_golden_values_torch_and_batch_shape():
    cm = ConfusionMatrix(3).update(torch.from_numpy(PRED)[None], torch.from_numpy(TARGET).long()[None])
    np.testing.assert_array_equal(cm.matrix, MATRIX)
    assert cm.compute()["miou"] == pytest.approx(4 / 9)


def test_absent_class_is_none_and_excluded_from_mean():
    # K = 4: class 3 appears in neither pred nor target -> None, mean unchanged.
    r = ConfusionMatrix(4).update(PRED, TARGET).compute()
    assert r["iou"][3] is None
    assert r["iou"][:3] == pytest.approx(IOU)
    assert r["miou"] == pytest.approx(4 / 9)
    # Predicting class 3 where the GT is 2: class 3 now present (in pred only) -> IoU 0, and
    # class 2 loses its TP: IoU_2 = 0 / (1 + 1 - 0) = 0... (gt 2 row = [0, 0, 0, 1]).
    pred = PRED.copy()
    pred[1, 1] = 3
    r = ConfusionMatrix(4).update(pred, TARGET).compute()
    # TP = [1, 1, 0, 0]; GT = [2, 2, 1, 0]; pred totals = [1, 2, 1, 1]
    # IoU = [1/2, 1/3, 0/(1+1-0)=0, 0/(0+1-0)=0]; mean over 4 classes
    assert r["iou"] == pytest.approx([1 / 2, 1 / 3, 0.0, 0.0])
    assert r["miou"] == pytest.approx((1 / 2 + 1 / 3) / 4)
    # mean_acc averages over classes present in GT only: [1/2, 1/2, 0] -> 1/3
    assert r["mean_acc"] == pytest.approx(1 / 3)


def test_ignore_pixels_not_counted_whatever_the_prediction():
    t = np.full((4, 4), 255, np.int64)
    t[0, 0] = 1
    p = np.full((4, 4), 99, np.int64)  # out of range where ignored: must not matter
    p[0, 0] = 1
    cm = ConfusionMatrix(2).update(p, t)
    assert cm.matrix.sum() == 1 and cm.matrix[1, 1] == 1
    cm_t = ConfusionMatrix(2).update(torch.from_numpy(p), torch.from_numpy(t))
    np.testing.assert_array_equal(cm_t.matrix, cm.matrix)
    # custom ignore index
    cm2 = ConfusionMatrix(3, ignore_index=254).update(np.array([0, 1]), np.array([254, 1]))
    assert cm2.matrix.sum() == 1


def test_empty_matrix_gives_nan():
    r = ConfusionMatrix(3).compute()
    assert math.isnan(r["miou"]) and math.isnan(r["pixel_acc"]) and r["iou"] == [None] * 3


def test_merge_equals_one_big_update_and_reset():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 5, (4, 7, 9))
    t[rng.random(t.shape) < 0.2] = 255
    p = rng.integers(0, 5, (4, 7, 9))
    big = ConfusionMatrix(5).update(p, t)
    parts = [ConfusionMatrix(5).update(p[i], t[i]) for i in range(4)]
    # mix numpy and torch accumulators
    parts[1] = ConfusionMatrix(5).update(torch.from_numpy(p[1]), torch.from_numpy(t[1]))
    merged = ConfusionMatrix(5)
    for c in parts:
        merged.merge(c)
    np.testing.assert_array_equal(merged.matrix, big.matrix)
    assert merged.compute() == big.compute()
    seq = ConfusionMatrix(5)
    for i in range(4):
        seq.update(torch.from_numpy(p[i]), torch.from_numpy(t[i]))
    np.testing.assert_array_equal(seq.matrix, big.matrix)
    seq.reset()
    assert seq.matrix.sum() == 0
    with pytest.raises(ValueError, match="merge"):
        merged.merge(ConfusionMatrix(4))


def test_all_reduce_is_noop_without_distributed():
    cm = ConfusionMatrix(3).update(PRED, TARGET)
    np.testing.assert_array_equal(cm.all_reduce().matrix, MATRIX)


def test_all_reduce_single_process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        cm = ConfusionMatrix(3).update(torch.from_numpy(PRED), torch.from_numpy(TARGET).long())
        np.testing.assert_array_equal(cm.all_reduce().matrix, MATRIX)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    "pred,target,match",
    [
        (np.zeros((2, 3), int), np.zeros((3, 2), int), "shape"),
        (np.zeros((2, 3), float), np.zeros((2, 3), int), "integer"),
        (np.zeros((2, 3), int), np.full((2, 3), 7), "target holds ids"),
        (np.full((2, 3), 3), np.zeros((2, 3), int), "pred holds ids"),
        (np.full((2, 3), -1), np.zeros((2, 3), int), "pred holds ids"),
        (torch.zeros(2, 3, dtype=torch.long), np.zeros((2, 3), int), "both"),
        (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), "integer"),
        (torch.zeros(2, 3, dtype=torch.long), torch.full((2, 3), 5), "target holds ids"),
    ],
)
def test_validation_errors(pred, target, match):
    with pytest.raises(ValueError, match=match):
        ConfusionMatrix(3).update(pred, target)


def test_constructor_validation():
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)
    with pytest.raises(ValueError, match="collides"):
        ConfusionMatrix(3, ignore_index=1)


def test_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises
        "import numpy as np\nfrom rdd.metrics import ConfusionMatrix\n"
        "cm = ConfusionMatrix(2); cm.update(np.array([0, 1]), np.array([0, 1])); cm.all_reduce()\n"
        "assert cm.compute()['miou'] == 1.0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


labels = arrays(
    np.int64, st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)), elements=st.integers(0, 3)
)


@settings(max_examples=40, deadline=None)
@given(labels)
def test_property_perfect_prediction(t):
    r = ConfusionMatrix(4).update(t, t).compute()
    assert r["miou"] == 1.0 and r["pixel_acc"] == 1.0 and r["mean_acc"] == 1.0
    present = set(np.unique(t).tolist())
    assert [c for c, v in enumerate(r["iou"]) if v is not None] == sorted(present)


@settings(max_examples=40, deadline=None)
@given(labels, st.integers(0, 2**31 - 1))
def test_property_numpy_torch_agree_and_bounds(t, seed):
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 4, t.shape)
    t = np.where(rng.random(t.shape) < 0.3, 255, t)
    a = ConfusionMatrix(4).update(p, t)
    b = ConfusionMatrix(4).update(torch.from_numpy(p).int(), torch.from_numpy(t).to(torch.uint8))
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert a.matrix.sum() == int((t != 255).sum())
    r = a.compute()
    for key in ("miou", "pixel_acc", "mean_acc"):
        assert math.isnan(r[key]) or 0.0 <= r[key] <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_bincount_on_device():
    cm = ConfusionMatrix(3).update(torch.from_numpy(PRED).cuda(), torch.from_numpy(TARGET).long().cuda())
    assert cm._torch.device.type == "cuda"
    np.testing.assert_array_equal(cm.matrix, MATRIX)
