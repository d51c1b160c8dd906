"""Inference modes (whole / slide / msflip) and evaluate() on tiny models and tiny images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rdd.evaluation import _window_starts, evaluate, predict_logits
from rdd.metrics import ConfusionMatrix
from rdd.models import create_model, export_wrapper


class Pointwise(nn.Module):
    """A real (if minimal) segmentation model: one 1×1 conv, so every pixel's logits depend on
    that pixel only — translation- and flip-equivariant, which makes slide == whole exact."""

    def __init__(self, k: int = 3, identity: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, k, 1)
        if identity:
            with torch.no_grad():
                self.conv.weight.copy_(torch.eye(k, 3).reshape(k, 3, 1, 1) * 5)
                self.conv.bias.zero_()

    def forward(self, x):
        return {"out": self.conv(x)}


class ListDataset(Dataset):
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("lraspp_mobilenetv2", num_classes=4, width_mult=0.25).eval()


def test_window_starts_cover_the_image():
    assert _window_starts(10, 4, 3) == [0, 3, 6]
    assert _window_starts(11, 4, 3) == [0, 3, 6, 7]  # last window aligned with the border
    assert _window_starts(4, 4, 3) == [0]


def test_slide_one_window_equals_whole(tiny_model):
    x = torch.randn(2, 3, 32, 48)
    whole = predict_logits(tiny_model, x)
    assert whole.shape == (2, 4, 32, 48)
    slide = predict_logits(tiny_model, x, mode="slide", crop_size=(32, 48), stride=(16, 16))
    torch.testing.assert_close(slide, whole)


def test_slide_overlap_average_equals_whole_for_pointwise_model():
    m = Pointwise().eval()
    x = torch.randn(1, 3, 23, 37)
    whole = predict_logits(m, x)
    for crop, stride in [((8, 8), (5, 3)), ((16, 20), None), ((23, 37), (1, 1))]:
        torch.testing.assert_close(predict_logits(m, x, "slide", crop_size=crop, stride=stride), whole)


def test_slide_pads_images_smaller_than_the_window(tiny_model):
    x = torch.randn(1, 3, 20, 24)
    out = predict_logits(tiny_model, x, "slide", crop_size=(32, 32))
    assert out.shape == (1, 4, 20, 24)
    ref = tiny_model(F.pad(x, (0, 8, 0, 12)))["out"][:, :, :20, :24]
    torch.testing.assert_close(out, ref)


def test_msflip_flip_equivariant_model_and_single_scale(tiny_model):
    m = Pointwise().eval()
    x = torch.randn(2, 3, 16, 20)
    ref = F.log_softmax(predict_logits(m, x), 1)
    torch.testing.assert_close(predict_logits(m, x, "msflip", scales=(1.0,), flip=True), ref)
    # a real model, one scale, no flip: log of its own softmax
    ref = F.log_softmax(tiny_model(x)["out"], 1)
    torch.testing.assert_close(predict_logits(tiny_model, x, "msflip", scales=(1.0,), flip=False), ref)
    out = predict_logits(tiny_model, x, "msflip", scales=(0.75, 1.0, 1.25), flip=True)
    assert out.shape == (2, 4, 16, 20)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2, 16, 20))
    # msflip + slide windows per scale
    out = predict_logits(tiny_model, x, "msflip", scales=(0.5, 1.0), crop_size=12, stride=8)
    assert out.shape == (2, 4, 16, 20) and torch.isfinite(out).all()


def test_predict_logits_accepts_tensor_returning_model_and_validates(tiny_model):
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(predict_logits(export_wrapper(tiny_model), x), predict_logits(tiny_model, x))
    with pytest.raises(ValueError, match="crop_size"):
        predict_logits(tiny_model, x, "slide")
    with pytest.raises(ValueError, match="mode"):
        predict_logits(tiny_model, x, "tta")
    with pytest.raises(ValueError, match="stride"):
        predict_logits(tiny_model, x, stride=4)


def _oracle_samples(sizes, k=3):
    """Images whose per-pixel argmax over the 3 channels is the label (+ some ignore)."""
    g = torch.Generator().manual_seed(1)
    out = []
    for h, w in sizes:
        y = torch.randint(0, k, (h, w), generator=g)
        x = F.one_hot(y, 3).permute(2, 0, 1).float() + 0.1 * torch.rand(3, h, w, generator=g)
        y[0] = 255
        out.append((x, y))
    return out


def test_evaluate_perfect_model_golden_and_mixed_sizes():
    ds = ListDataset(_oracle_samples([(9, 11), (12, 7), (5, 5)]))
    m = Pointwise(identity=True).train()
    r = evaluate(m, ds, num_classes=3, with_confusion=True)
    assert r["miou"] == 1.0 and r["pixel_acc"] == 1.0 and r["mean_acc"] == 1.0
    assert r["num_images"] == 3
    n_valid = sum(int((y != 255).sum()) for _, y in ds.samples)
    assert sum(map(sum, r["confusion"])) == n_valid
    assert m.training, "evaluate must restore the train/eval mode"
    # slide and msflip agree on a pointwise model
    assert evaluate(m, ds, 3, mode="slide", crop_size=4)["miou"] == 1.0
    assert evaluate(m, ds, 3, mode="msflip", scales=(1.0,))["miou"] == 1.0
    # a scrambled model gets a lower score
    with torch.no_grad():
        m.conv.weight.copy_(m.conv.weight[[1, 2, 0]])
    assert evaluate(m, ds, 3)["miou"] == 0.0


def test_evaluate_matches_manual_confusion_matrix_with_loader(tiny_model):
    samples = [(torch.randn(3, 16, 24), torch.randint(0, 4, (16, 24))) for _ in range(4)]
    loader = DataLoader(ListDataset(samples), batch_size=2)
    cm = ConfusionMatrix(4)
    with torch.no_grad():
        for x, y in loader:
            cm.update(tiny_model(x)["out"].argmax(1), y)
    r = evaluate(tiny_model, loader, num_classes=4, device="cpu")
    assert r["miou"] == pytest.approx(cm.compute()["miou"])
    assert r["iou"] == cm.compute()["iou"]
    assert evaluate(tiny_model, loader, 4, max_batches=1)["num_images"] == 2
    with pytest.raises(ValueError, match="classes"):
        evaluate(tiny_model, loader, num_classes=5)


def test_evaluate_resizes_logits_to_label_size():
    x = F.one_hot(torch.tensor([[0, 1], [2, 0]]), 3).permute(2, 0, 1).float()  # 3×2×2
    y = torch.tensor([[0, 1], [2, 0]]).repeat_interleave(2, 0).repeat_interleave(2, 1)  # 4×4
    # bilinear 2×2 → 4×4 (align_corners=False) weights the nearest input pixel by ≥ 9/16, so
    # the argmax is the nearest-neighbour upsampled label = y: a perfect score
    r = evaluate(Pointwise(identity=True), [(x, y)], num_classes=3)
    assert r["num_images"] == 1 and r["miou"] == 1.0


def test_slide_window_batching_does_not_change_the_result(tiny_model):
    x = torch.randn(2, 3, 24, 30)
    a = predict_logits(tiny_model, x, "slide", crop_size=16, stride=8, window_batch=1)
    b = predict_logits(tiny_model, x, "slide", crop_size=16, stride=8, window_batch=64)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_evaluate_on_camvid(camvid_root):
    from rdd.data import build_dataset

    ds = build_dataset("camvid", root=camvid_root, split="val")
    torch.manual_seed(0)
    m = create_model("lraspp_mobilenetv2", num_classes=11, width_mult=0.25)
    r = evaluate(m, ds, num_classes=11, max_batches=1)
    assert r["num_images"] == 1 and len(r["iou"]) == 11
    assert 0.0 <= r["miou"] <= 1.0 and 0.0 <= r["pixel_acc"] <= 1.0
