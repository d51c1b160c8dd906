"""Tests for rdd.models: one shared test class per registered model (smp style), backbones,
heads' math, registry and profiling helpers. Tiny widths and images keep it CPU-cheap."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rdd.artifacts import load_artifact, save_artifact
from rdd.models import (
    LRASPPHead,
    SegmentationModel,
    adaptive_avg_pool2d_exportable,
    aspp_rates,
    count_flops,
    count_params,
    create_model,
    export_wrapper,
    get_model_builder,
    list_models,
    load_backbone_weights,
    make_divisible,
    mobilenetv2,
    register_model,
    resnet,
)
from rdd.spec import ClassInfo, Normalization

EXPECTED_MODELS = {
    f"{h}_resnet{d}" for h in ("deeplabv3", "deeplabv3plus", "pspnet") for d in (18, 34, 50, 101)
}
EXPECTED_MODELS |= {"deeplabv3_mobilenetv2", "lraspp_mobilenetv2"}
SIZES = [(64, 64), (90, 120)]  # the second is not a multiple of 32


def _randomise_bn(model: nn.Module, seed: int = 0, logit_scale: float = 5.0) -> None:
    """Non-trivial BN statistics and affine maps, so eval-mode tests exercise the folded BN.

    For a :class:`SegmentationModel` the classifier convs are then rescaled so the largest logit
    on a random image is ``logit_scale`` (trained models' logits are O(1–10); random deep nets'
    can reach 100+, and an absolute parity tolerance only means something at a known scale).
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    if isinstance(model, SegmentationModel):
        was_training = model.training
        with torch.no_grad():
            peak = model.eval()(torch.randn(1, 3, 64, 64, generator=g))["out"].abs().max()
            for head in (model.head, model.aux_head):
                for m in head.modules() if head is not None else ():
                    if isinstance(m, nn.Conv2d) and m.out_channels == model.num_classes:
                        m.weight.mul_(logit_scale / peak)
                        if m.bias is not None:
                            m.bias.mul_(logit_scale / peak)
        model.train(was_training)


# ------------------------------------------------------------------------ shared model tests
class _ModelTest:
    """Subclassed once per registered model. Set ``name`` (and optionally ``kwargs``)."""

    name: str = ""
    kwargs: dict = {"width_mult": 0.25}
    num_classes = 5

    def build(self, **overrides) -> SegmentationModel:
        return create_model(self.name, self.num_classes, **{**self.kwargs, **overrides})

    @pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
    def test_forward_backward(self, size):
        model = self.build().train()
        x = torch.randn(2, 3, *size)
        out = model(x)
        expected = {"out", "feats"} | ({"aux"} if model.has_aux else set())
        assert set(out) == expected
        assert out["out"].shape == (2, self.num_classes, *size)
        if model.has_aux:
            assert out["aux"].shape == (2, self.num_classes, *size)
        assert set(out["feats"]) == {"backbone", "head"}
        assert out["feats"]["backbone"].shape[1] == model.backbone.out_channels["out"]
        assert out["feats"]["head"].shape[1] == model.head.out_channels
        loss = F.cross_entropy(out["out"], torch.randint(0, self.num_classes, (2, *size)))
        if model.has_aux:
            loss = loss + 0.4 * F.cross_entropy(out["aux"], torch.zeros(2, *size, dtype=torch.long))
        loss.backward()
        no_grad = [n for n, p in model.named_parameters() if p.grad is None]
        assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    def test_train_vs_eval_keys(self):
        model = self.build()
        x = torch.randn(1, 3, 64, 64)
        model.eval()
        with torch.no_grad():
            assert set(model(x)) == {"out"}
            assert set(model(x, with_feats=True)) == {"out", "feats"}
            if model.has_aux:
                assert set(model(x, with_aux=True)) == {"out", "aux"}
            else:
                with pytest.raises(ValueError, match="aux=False"):
                    model(x, with_aux=True)
        model.train()
        assert set(model(torch.randn(2, 3, 64, 64), with_aux=False, with_feats=False)) == {"out"}

    def test_attributes_and_rebuild(self):
        model = self.build()
        assert model.model_name == self.name
        assert model.num_classes == self.num_classes
        assert model.model_kwargs["num_classes"] == self.num_classes
        assert model.model_kwargs["width_mult"] == self.kwargs["width_mult"]
        assert model.model_kwargs["backbone_weights"] is None
        clone = create_model(model.model_name, **model.model_kwargs)
        clone.load_state_dict(model.state_dict(), strict=True)
        assert clone.model_kwargs == model.model_kwargs

    def test_save_load_roundtrip(self, tmp_path):
        model = self.build()
        _randomise_bn(model)
        model.eval()
        save_artifact(
            tmp_path / "model.pt",
            model,
            classes=ClassInfo(tuple("abcde")),
            normalization=Normalization(),
            input_size=(64, 64),
        )
        loaded, meta = load_artifact(tmp_path / "model.pt")
        assert not loaded.training and meta["model"] == self.name
        x = torch.randn(1, 3, 70, 50)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x)["out"], model(x)["out"], rtol=0, atol=0)

    def test_onnx_parity(self):
        ort = pytest.importorskip("onnxruntime")
        model = self.build()
        _randomise_bn(model)
        wrapper = export_wrapper(model)
        assert not wrapper.training
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (torch.randn(1, 3, 64, 64),),
                buf,
                dynamo=False,
                opset_version=17,
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={
                    "image": {0: "batch", 2: "height", 3: "width"},
                    "logits": {0: "batch", 2: "height", 3: "width"},
                },
            )
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
        for shape in [(1, 3, 64, 64), (2, 3, 90, 120)]:  # export size and a different one
            x = torch.randn(*shape)
            with torch.no_grad():
                ref = wrapper(x).numpy()
            got = sess.run(["logits"], {"image": x.numpy()})[0]
            assert got.shape == (shape[0], self.num_classes, *shape[2:])
            assert np.abs(ref).max() < 50  # parity at a meaningful logit scale
            assert np.abs(got - ref).max() <= 1e-4


class TestDeepLabV3ResNet18(_ModelTest):
    name = "deeplabv3_resnet18"


@pytest.mark.slow
class TestDeepLabV3ResNet34(_ModelTest):
    name = "deeplabv3_resnet34"
    kwargs = {"width_mult": 0.25, "output_stride": 16}


@pytest.mark.slow
class TestDeepLabV3ResNet50(_ModelTest):
    name = "deeplabv3_resnet50"


@pytest.mark.slow
class TestDeepLabV3ResNet101(_ModelTest):
    name = "deeplabv3_resnet101"
    kwargs = {"width_mult": 0.125}


class TestDeepLabV3PlusResNet18(_ModelTest):
    name = "deeplabv3plus_resnet18"

    def test_decoder_predicts_at_stride_4_from_the_low_stage(self):
        """The logits come from the stride-4 decoder (not the stride-16 ASPP alone), and the low
        stage feeds them: a change confined to one stride-4 cell moves the logits there."""
        model = self.build().eval()
        _randomise_bn(model)
        x = torch.randn(1, 3, 64, 96)
        stages = model.backbone(x)
        assert stages["low"].shape[-2:] == (16, 24) and stages["out"].shape[-2:] == (4, 6)
        with torch.no_grad():
            _, logits = model.head(stages)
            assert logits.shape == (1, self.num_classes, 16, 24)
            low = stages["low"].clone()
            low[..., 8, 12] += 3.0
            _, moved = model.head({**stages, "low": low})
        diff = (moved - logits).abs().amax(dim=1)[0]  # 16×24
        assert diff[8, 12] > 1e-3
        assert diff[0, 0] == 0 and diff[15, 23] == 0  # beyond the two 3×3 convs' reach


@pytest.mark.slow
class TestDeepLabV3PlusResNet34(_ModelTest):
    name = "deeplabv3plus_resnet34"
    kwargs = {"width_mult": 0.25, "output_stride": 8}


@pytest.mark.slow
class TestDeepLabV3PlusResNet50(_ModelTest):
    name = "deeplabv3plus_resnet50"
    kwargs = {"width_mult": 0.125}


@pytest.mark.slow
class TestDeepLabV3PlusResNet101(_ModelTest):
    name = "deeplabv3plus_resnet101"
    kwargs = {"width_mult": 0.125, "aux": False}


class TestPSPNetResNet18(_ModelTest):
    name = "pspnet_resnet18"


@pytest.mark.slow
class TestPSPNetResNet34(_ModelTest):
    name = "pspnet_resnet34"


@pytest.mark.slow
class TestPSPNetResNet50(_ModelTest):
    name = "pspnet_resnet50"
    kwargs = {"width_mult": 0.125, "output_stride": 16, "aux": False}


@pytest.mark.slow
class TestPSPNetResNet101(_ModelTest):
    name = "pspnet_resnet101"
    kwargs = {"width_mult": 0.125}


class TestDeepLabV3MobileNetV2(_ModelTest):
    name = "deeplabv3_mobilenetv2"
    kwargs = {"width_mult": 0.25, "aux": True}


class TestLRASPPMobileNetV2(_ModelTest):
    name = "lraspp_mobilenetv2"
    kwargs = {"width_mult": 0.25}

    def test_full_resolution_eval(self):
        model = self.build(width_mult=0.5).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 360, 480))
        assert set(out) == {"out"} and out["out"].shape == (1, self.num_classes, 360, 480)


def test_every_registered_model_has_a_test_class():
    tested = {cls.name for cls in _ModelTest.__subclasses__()}
    assert set(list_models()) == EXPECTED_MODELS == tested


# ---------------------------------------------------------------------------------- backbones
# torchvision's full state dicts have 2 more entries (fc.weight/bias) for ResNet — 122, 218, 320,
# 626 — and 8 more for MobileNetV2 (features.18: conv + 5 BN entries; classifier.1 weight/bias):
# 314. Counts per ResNet: stem 1 conv + 5 BN entries = 6; BasicBlock 2×6 = 12; Bottleneck 3×6 = 18;
# downsample 6 (layers 2-4 for BasicBlock nets, 1-4 for Bottleneck nets).
#   resnet18: 6 + 8·12 + 3·6 = 120      resnet34: 6 + 16·12 + 3·6 = 216
#   resnet50: 6 + 16·18 + 4·6 = 318     resnet101: 6 + 33·18 + 4·6 = 624
#   mobilenetv2 features.0-17: 6 + 12 (t=1 block: 2 convs + 2 BNs) + 16·18 = 306
BACKBONE_KEYS = {
    18: (
        120,
        {
            "conv1.weight": (64, 3, 7, 7),
            "bn1.num_batches_tracked": (),
            "layer1.0.conv1.weight": (64, 64, 3, 3),
            "layer2.0.downsample.0.weight": (128, 64, 1, 1),
            "layer2.0.downsample.1.running_var": (128,),
            "layer4.1.bn2.bias": (512,),
        },
    ),
    34: (216, {"layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.2.bn2.running_mean": (512,)}),
    50: (
        318,
        {
            "layer1.0.downsample.0.weight": (256, 64, 1, 1),
            "layer4.2.conv3.weight": (2048, 512, 1, 1),
            "layer3.5.bn3.running_mean": (1024,),
        },
    ),
    101: (624, {"layer3.22.conv2.weight": (256, 256, 3, 3), "layer4.0.downsample.1.weight": (2048,)}),
}


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_resnet_state_dict_matches_torchvision_names(depth):
    count, expected = BACKBONE_KEYS[depth]
    with torch.device("meta"):
        sd = resnet(depth).state_dict()
    assert len(sd) == count
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("fc.") for k in sd)


def test_mobilenetv2_state_dict_matches_torchvision_names():
    sd = mobilenetv2().state_dict()
    assert len(sd) == 306
    expected = {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.0.1.running_mean": (32,),
        "features.1.conv.0.0.weight": (32, 1, 3, 3),
        "features.1.conv.1.weight": (16, 32, 1, 1),
        "features.1.conv.2.num_batches_tracked": (),
        "features.2.conv.0.0.weight": (96, 16, 1, 1),
        "features.2.conv.1.0.weight": (96, 1, 3, 3),
        "features.2.conv.3.running_var": (24,),
        "features.17.conv.2.weight": (320, 960, 1, 1),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith(("features.18.", "classifier.")) for k in sd)


@pytest.mark.parametrize("os_", [8, 16, 32])
def test_output_stride_via_dilation(os_):
    x = torch.randn(1, 3, 64, 96)
    net = resnet(18, width_mult=0.125, output_stride=os_).eval()
    mb = mobilenetv2(width_mult=0.25, output_stride=os_).eval()
    with torch.no_grad():
        r, m = net(x), mb(x)
    assert r["out"].shape[-2:] == (64 // os_, 96 // os_)
    assert m["out"].shape[-2:] == (64 // os_, 96 // os_)
    assert r["low"].shape[-2:] == (16, 24) and m["low"].shape[-2:] == (8, 12)
    assert net.strides["out"] == mb.strides["out"] == os_
    if os_ == 8:  # DeepLabV3: first block of a dilated stage keeps the previous rate
        assert net.layer3[0].conv1.dilation == (1, 1) and net.layer3[1].conv1.dilation == (2, 2)
        assert net.layer4[0].conv1.dilation == (2, 2) and net.layer4[1].conv2.dilation == (4, 4)


def test_width_mult_scales_resnet_channels():
    net = resnet(50, width_mult=0.25)
    assert net.conv1.out_channels == 16
    assert net.out_channels == {"low": 64, "aux": 256, "out": 512}


def _as_torchvision_checkpoint(sd: dict, extra: dict) -> dict:
    """What torchvision publishes: our keys + classifier keys, old files lack num_batches_tracked."""
    out = {k: v.clone() for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    out.update(extra)
    return out


def test_backbone_weights_from_path_strict_reload(tmp_path):
    src = resnet(18)
    _randomise_bn(src)
    ckpt = _as_torchvision_checkpoint(
        src.state_dict(), {"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    )
    path = tmp_path / "resnet18.pth"
    torch.save(ckpt, path)
    model = create_model("deeplabv3_resnet18", num_classes=3, backbone_weights=path)
    got = model.backbone.state_dict()
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(got[k], v), k
    assert model.model_kwargs["backbone_weights"] is None


def test_backbone_weights_from_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    src = mobilenetv2()
    ckpt = _as_torchvision_checkpoint(
        src.state_dict(),
        {"features.18.0.weight": torch.zeros(1280, 320, 1, 1), "classifier.1.bias": torch.zeros(1000)},
    )
    path = tmp_path / "mobilenet_v2-test.pth"
    torch.save(ckpt, path)
    model = create_model("lraspp_mobilenetv2", num_classes=3, backbone_weights=path.as_uri())
    assert torch.equal(model.backbone.features[17].conv[2].weight, src.features[17].conv[2].weight)


def test_backbone_weights_wrong_file_errors(tmp_path):
    net = resnet(18)
    other = tmp_path / "resnet34.pth"
    torch.save(resnet(34, width_mult=0.125).state_dict(), other)
    with pytest.raises(ValueError, match=r"resnet34\.pth.*unexpected keys.*layer1\.2") as e:
        load_backbone_weights(net, other)
    assert "shape mismatches" in str(e.value) and "conv1.weight" in str(e.value)
    wrong_width = tmp_path / "narrow.pth"
    torch.save(resnet(18, width_mult=0.5).state_dict(), wrong_width)
    with pytest.raises(ValueError, match=r"narrow\.pth.*shape mismatches.*conv1\.weight"):
        load_backbone_weights(net, wrong_width)
    missing = tmp_path / "partial.pth"
    torch.save({k: v for k, v in net.state_dict().items() if not k.startswith("layer4")}, missing)
    with pytest.raises(ValueError, match=r"partial\.pth.*missing keys.*layer4\.0\.conv1\.weight"):
        load_backbone_weights(net, missing)
    not_sd = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_sd)
    with pytest.raises(ValueError, match=r"list\.pth.*expected a state dict"):
        load_backbone_weights(net, not_sd)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pth.*torch\.load"):
        load_backbone_weights(net, garbage)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_backbone_weights(net, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="width_mult=0.5"):
        create_model("lraspp_mobilenetv2", num_classes=3, width_mult=0.5, backbone_weights=other)


# ------------------------------------------------------------------------------------- heads
def test_aspp_rates_scale_with_output_stride():
    assert aspp_rates(16) == (6, 12, 18)
    assert aspp_rates(8) == (12, 24, 36)
    assert aspp_rates(32) == (3, 6, 9)
    with pytest.raises(ValueError):
        aspp_rates(4)
    model = create_model("deeplabv3_resnet18", 3, width_mult=0.125, output_stride=16)
    assert [b[0].dilation[0] for b in model.head.aspp.convs[1:4]] == [6, 12, 18]


def test_aspp_image_pooling_branch_works_at_batch_one():
    """One image per rank: the pooled branch must still depend on the image (a BatchNorm after
    the broadcast sees a constant map → variance 0 → it outputs β for every image and its
    running_var collapses, blowing up eval outputs), and it must behave the same in eval."""
    torch.manual_seed(0)
    model = create_model("deeplabv3_resnet18", 3, width_mult=0.125).train()
    pool = model.head.aspp.convs[-1]
    seen: list[torch.Tensor] = []
    hook = pool.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    imgs = [torch.rand(1, 3, 48, 48, generator=g) * (1 + 2 * i) for i in range(8)]
    for x in imgs:  # batch-1 training steps
        loss = model(x)["out"].logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    hook.remove()
    assert all(torch.isfinite(o).all() for o in seen)
    # per image a constant map (C'×1×1 broadcast), but different across images
    assert not torch.allclose(seen[0], seen[-1], atol=1e-4), "image-pooling branch is constant"
    assert max(float((a - b).abs().max()) for a, b in zip(seen, seen[1:])) > 1e-3
    # train == eval for the branch, so eval outputs stay on the training scale
    feat = torch.randn(1, pool.conv.in_channels, 6, 6, generator=g).relu()
    with torch.no_grad():
        y_train = pool.train()(feat)
        y_eval = pool.eval()(feat)
    torch.testing.assert_close(y_eval, y_train, rtol=0, atol=0)
    assert float(y_eval.abs().max()) < 100 * float(feat.abs().max()) + 1
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in pool.modules())
    assert not list(pool.buffers())  # no running statistics to collapse


def test_make_divisible_golden():
    assert make_divisible(32 * 0.25) == 8
    assert make_divisible(16 * 0.25) == 8  # never below the divisor
    assert make_divisible(24 * 0.5) == 16  # 12 rounds half up
    assert make_divisible(96 * 0.35) == 32  # 33.6 → 32 (within 10 %)
    assert make_divisible(20) == 24 and make_divisible(18) == 24 and make_divisible(17) == 16


def test_adaptive_pool_golden():
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    # bins=2 over 3 → windows [0, 2) and [1, 3) in each direction
    expected = torch.tensor([[[[2.0, 3.0], [5.0, 6.0]]]])
    torch.testing.assert_close(adaptive_avg_pool2d_exportable(x, 2), expected)
    torch.testing.assert_close(adaptive_avg_pool2d_exportable(x, 1), torch.tensor([[[[4.0]]]]))


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 50), w=st.integers(1, 50), bins=st.sampled_from([1, 2, 3, 6]))
def test_adaptive_pool_matches_pytorch(h, w, bins):
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    torch.testing.assert_close(
        adaptive_avg_pool2d_exportable(x, bins), F.adaptive_avg_pool2d(x, bins), rtol=1e-5, atol=1e-5
    )


def test_adaptive_pool_low_precision_windows():
    """Window bounds are computed in float32: in bf16, 385/6 = 64.17 rounds to 64.0 and the bins
    shift (max error 0.044 here instead of 6e-4)."""
    x = torch.randn(1, 2, 8, 385)
    got = adaptive_avg_pool2d_exportable(x.bfloat16(), 6).float()
    torch.testing.assert_close(got, F.adaptive_avg_pool2d(x, 6), rtol=0, atol=1e-2)


def test_lraspp_formula():
    """logits = W_low·low + W_high·resize(cbr(high) ⊙ σ(W_g·GAP(high)))."""
    head = LRASPPHead(4, 6, 3, channels=5).eval()
    low, high = torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)
    with torch.no_grad():
        feat, logits = head({"low": low, "out": high})
        gate = torch.sigmoid(F.conv2d(high.mean((2, 3), keepdim=True), head.scale[1].weight))
        x = F.interpolate(head.cbr(high) * gate, size=(8, 8), mode="bilinear", align_corners=False)
        ref = head.low_classifier(low) + head.high_classifier(x)
    torch.testing.assert_close(feat, x)
    torch.testing.assert_close(logits, ref)
    assert gate.shape == (2, 5, 1, 1)


def test_deeplab_trains_with_batch_size_one():
    model = create_model("deeplabv3_mobilenetv2", 3, width_mult=0.25).train()
    model(torch.randn(1, 3, 64, 64))["out"].sum().backward()


# ----------------------------------------------------------------------------------- registry
def test_unknown_model_and_bad_kwargs():
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*lraspp_mobilenetv2"):
        create_model("nope", 3)
    with pytest.raises(ValueError, match=r"lraspp_mobilenetv2.*colour.*accepted"):
        create_model("lraspp_mobilenetv2", 3, colour=1)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("lraspp_mobilenetv2", 0)
    with pytest.raises(ValueError, match="output_stride"):
        create_model("deeplabv3_resnet18", 3, output_stride=4)
    with pytest.raises(ValueError, match="width_mult"):
        create_model("deeplabv3_resnet18", 3, width_mult=0)


def test_every_registered_name_is_a_written_out_builder():
    """Each name in list_models() is a ``def`` of that name (no generated builders), keyword-only
    and documented, so ``grep "def deeplabv3_resnet18"`` finds the teacher's builder."""
    import inspect

    import rdd.models.registry as R

    src = inspect.getsource(R)
    for name in list_models():
        fn = get_model_builder(name)
        assert f"\ndef {name}(*, num_classes: int" in src, name
        assert getattr(R, name) is fn and fn.__name__ == name and fn.__doc__, name
        params = inspect.signature(fn).parameters.values()
        assert all(p.kind is p.KEYWORD_ONLY and not p.name.startswith("_") for p in params), name


def test_register_model_decorator():
    with pytest.raises(ValueError, match="already registered"):
        register_model(lambda *, num_classes: None, name="lraspp_mobilenetv2")
    with pytest.raises(TypeError, match="keyword-only"):
        register_model(lambda num_classes: None, name="positional_builder")
    assert "positional_builder" not in list_models()


def test_bad_input_shape():
    model = create_model("lraspp_mobilenetv2", 3, width_mult=0.25).eval()
    with pytest.raises(ValueError, match="N×3×H×W"):
        model(torch.randn(1, 1, 32, 32))


def test_export_wrapper_returns_tensor():
    model = create_model("lraspp_mobilenetv2", 3, width_mult=0.25).train()
    wrapper = export_wrapper(model)
    out = wrapper(torch.randn(1, 3, 40, 56))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 40, 56)
    assert not model.training


# ---------------------------------------------------------------------------------- profiling
def test_count_params_and_flops_golden():
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    assert count_params(conv) == 4 * 3 * 9
    assert count_flops(conv, (8, 8)) == 2 * 4 * 27 * 64  # one MAC = 2 FLOPs
    conv.weight.requires_grad_(False)
    assert count_params(conv, trainable_only=True) == 0
    model = create_model("lraspp_mobilenetv2", 3, width_mult=0.25).train()
    assert count_flops(model, 64) > 0 and model.training  # mode restored


def test_backbone_weights_crafted_file_runs_nothing(tmp_path, monkeypatch, hostile_pickle):
    """A crafted pickle as a local file and as a ``file://`` URL: refused, payload never runs."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    evil = tmp_path / "resnet18-evil.pth"
    marker = hostile_pickle(evil, lambda p: {"conv1.weight": p})
    net = resnet(18)
    for source in (evil, evil.as_uri()):
        with pytest.raises(ValueError) as e:
            load_backbone_weights(net, source)
        msg = str(e.value)
        assert not marker.exists()
        assert "\n" not in msg and "resnet18-evil.pth" in msg and "refused" in msg, msg
    with pytest.raises(ValueError, match="refused"):
        create_model("deeplabv3_resnet18", num_classes=3, backbone_weights=evil.as_uri())
    assert not marker.exists()


def test_backbone_weights_url_sha256(tmp_path, monkeypatch):
    """``#sha256=`` on a URL (or ``sha256=``): a match loads; a mismatch is an error and the
    download does not stay in the cache."""
    import hashlib

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    src = resnet(18, width_mult=1.0)
    path = tmp_path / "resnet18-test.pth"
    torch.save(src.state_dict(), path)
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    net = resnet(18)
    load_backbone_weights(net, f"{path.as_uri()}#sha256={good}")
    assert torch.equal(net.conv1.weight, src.conv1.weight)
    cache = tmp_path / "hub" / "hub" / "checkpoints"
    assert [p.name.endswith("resnet18-test.pth") for p in cache.iterdir()] == [True]
    for p in cache.iterdir():
        p.unlink()
    bad = "0" * 64
    with pytest.raises(ValueError, match=f"resnet18-test.pth: sha256 mismatch: expected {bad}"):
        load_backbone_weights(resnet(18), f"{path.as_uri()}#sha256={bad}")
    assert list(cache.iterdir()) == []  # nothing unverified is cached
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_backbone_weights(resnet(18), path, sha256=bad)
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        load_backbone_weights(resnet(18), f"{path.as_uri()}#sha256=abc")
    with pytest.raises(ValueError, match="unknown URL fragment"):
        load_backbone_weights(resnet(18), f"{path.as_uri()}#md5=abc")


def test_count_flops_and_parameters_conv_golden():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=True)
    # 2 FLOPs per multiply-add: 2 · (3·3·3) MACs per output · 4 channels · 8·8 positions
    assert count_flops(conv, (8, 8)) == 2 * 27 * 4 * 64 == 13824
    assert count_params(conv) == 4 * 27 + 4
    assert conv.training  # mode restored
