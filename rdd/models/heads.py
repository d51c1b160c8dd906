"""Segmentation heads: DeepLabV3 (ASPP), DeepLabV3+ (ASPP + stride-4 decoder), PSPNet (pyramid
pooling), FCN (auxiliary) and LR-ASPP.

Every main head takes the backbone's stage dict (``{"low", "aux", "out"}``, see
:mod:`rdd.models.backbones`) and returns ``(feat, logits)``: the pre-classifier feature
(``N×C'×h×w``, used for feature distillation) and the class logits at feature resolution
(``N×K×h×w``). Upsampling to the input size is done once, in :class:`~rdd.models.base.SegmentationModel`.

All ops are chosen to export to ONNX with dynamic batch/height/width (opset 17, TorchScript
exporter): convolutions, batch norm, ReLU, global average pooling, sigmoid, MatMul and bilinear
``Resize`` whose output size is read from a tensor's shape at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import NormLayer

__all__ = [
    "ASPP",
    "DeepLabV3Head",
    "DeepLabV3PlusHead",
    "PSPHead",
    "PyramidPooling",
    "FCNHead",
    "LRASPPHead",
    "adaptive_avg_pool2d_exportable",
    "adaptive_pool_matrix",
    "aspp_rates",
]


def _resize(x: Tensor, like: Tensor) -> Tensor:
    """Bilinear resize of ``x`` (N×C×h×w) to the spatial size of ``like`` (…×H×W)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def conv_bn_relu(
    cin: int, cout: int, kernel_size: int = 1, dilation: int = 1, norm_layer: NormLayer = nn.BatchNorm2d
) -> nn.Sequential:
    pad = (kernel_size - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, padding=pad, dilation=dilation, bias=False),
        norm_layer(cout),
        nn.ReLU(inplace=True),
    )


def separable_conv_bn_relu(
    cin: int, cout: int, kernel_size: int = 3, norm_layer: NormLayer = nn.BatchNorm2d
) -> nn.Sequential:
    """Depthwise ``k×k`` conv-BN-ReLU → pointwise 1×1 conv-BN-ReLU (DeepLabV3+, §3.1)."""
    pad = (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cin, kernel_size, padding=pad, groups=cin, bias=False),
        norm_layer(cin),
        nn.ReLU(inplace=True),
        conv_bn_relu(cin, cout, 1, norm_layer=norm_layer),
    )


# --------------------------------------------------------------------------------- DeepLabV3
def aspp_rates(output_stride: int, base: Sequence[int] = (6, 12, 18)) -> tuple[int, ...]:
    """Atrous rates scaled to the output stride: (6, 12, 18) at 16, (12, 24, 36) at 8, (3, 6, 9) at 32.

    DeepLabV3 (Chen et al., 2017, §4.1) doubles the rates when the output stride halves, so the
    field of view in *input* pixels is constant.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    return tuple(int(r * 16 // output_stride) for r in base)


class ASPPPooling(nn.Module):
    """Image-level branch: global average pool → 1×1 conv (with bias) → ReLU → resize to h×w.

    **No normalisation layer, by design.** The branch's value is one vector per image
    (N×C'×1×1), so batch statistics over it are degenerate at small per-rank batches:

    * BatchNorm *before* the broadcast sees N values per channel and cannot train at N = 1
      (PyTorch raises);
    * BatchNorm *after* the broadcast (a map that is constant per image) at N = 1 gets batch
      variance 0: in training the branch outputs ``β`` whatever the image, ``running_var``
      collapses towards 0, and in eval the tiny running variance amplifies per-image deviations
      by orders of magnitude;
    * GroupNorm on the pooled vector normalises across channels of one image, which removes the
      per-image mean/scale of the context vector — the very signal this branch carries.

    A 1×1 conv with bias + ReLU has none of these problems, is independent of the batch size
    and of ``model.eval()``, and exports to ``GlobalAveragePool → Conv → Relu → Resize``. The
    following ``project`` conv-BN-ReLU of :class:`ASPP` normalises the concatenated branches over
    N·h·w positions, which is well posed. The parameter keys are ``conv.weight`` / ``conv.bias``
    (torchvision's ``ASPPPooling`` has ``1.weight`` + a ``2.*`` BatchNorm, which is dropped here).

    ``AdaptiveAvgPool2d(1)`` exports to ``GlobalAveragePool`` and the broadcast back is a bilinear
    ``Resize`` to the feature's run-time shape, so the graph stays valid for any input size.
    ``norm_layer`` is accepted for signature compatibility with the other branches and unused.
    """

    def __init__(self, cin: int, cout: int, norm_layer: NormLayer | None = None):
        super().__init__()
        del norm_layer  # deliberately unused, see the class docstring
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(cin, cout, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.conv(self.pool(x)))  # N×C'×1×1
        return _resize(y, x)  # N×C'×h×w (constant per image)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling: 1×1, three 3×3 atrous convs, image pooling → concat → 1×1."""

    def __init__(
        self,
        cin: int,
        rates: Sequence[int],
        cout: int = 256,
        dropout: float = 0.5,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        branches: list[nn.Module] = [conv_bn_relu(cin, cout, 1, norm_layer=norm_layer)]
        branches += [conv_bn_relu(cin, cout, 3, dilation=r, norm_layer=norm_layer) for r in rates]
        branches.append(ASPPPooling(cin, cout, norm_layer))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * cout, cout, 1, bias=False),
            norm_layer(cout),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([b(x) for b in self.convs], dim=1))  # N×cout×h×w


class DeepLabV3Head(nn.Module):
    """ASPP → 3×3 conv-BN-ReLU (the pre-classifier feature) → 1×1 classifier, on ``feats["out"]``."""

    def __init__(
        self,
        cin: int,
        num_classes: int,
        *,
        channels: int = 256,
        rates: Sequence[int] = (12, 24, 36),
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        self.aspp = ASPP(cin, rates, channels, norm_layer=norm_layer)
        self.conv = conv_bn_relu(channels, channels, 3, norm_layer=norm_layer)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.out_channels = channels

    def forward(self, feats: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        feat = self.conv(self.aspp(feats["out"]))  # N×C'×h×w
        return feat, self.classifier(feat)  # N×K×h×w


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ (Chen et al., "Encoder-Decoder with Atrous Separable Convolution", ECCV 2018, §3.2).

    ``ASPP(feats["out"])`` (``channels``) is upsampled to the stride-4 ``feats["low"]``, concatenated
    with a 1×1 projection of it (``low_channels``, 48 in the paper), refined by two 3×3
    depthwise-separable conv-BN-ReLU (the paper's decoder; the pre-classifier feature) and
    classified at stride 4. The decoder recovers
    the boundaries and thin structures a stride-16 ASPP alone blurs; the paper uses it with
    output stride 16, the default here.
    """

    def __init__(
        self,
        low_cin: int,
        cin: int,
        num_classes: int,
        *,
        channels: int = 256,
        low_channels: int = 48,
        rates: Sequence[int] = (6, 12, 18),
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        self.aspp = ASPP(cin, rates, channels, norm_layer=norm_layer)
        self.low_proj = conv_bn_relu(low_cin, low_channels, 1, norm_layer=norm_layer)
        self.fuse = nn.Sequential(
            separable_conv_bn_relu(channels + low_channels, channels, norm_layer=norm_layer),
            separable_conv_bn_relu(channels, channels, norm_layer=norm_layer),
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.out_channels = channels

    def forward(self, feats: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        low = self.low_proj(feats["low"])  # N×48×h4×w4
        high = _resize(self.aspp(feats["out"]), low)  # N×C'×h4×w4
        feat = self.fuse(torch.cat([high, low], dim=1))  # N×C'×h4×w4
        return feat, self.classifier(feat)  # N×K×h4×w4


# ------------------------------------------------------------------------------------ PSPNet
def adaptive_pool_matrix(idx: Tensor, bins: int) -> Tensor:
    """Row-stochastic ``bins×n`` matrix ``P`` with ``P @ v`` = adaptive average pooling of ``v``.

    ``idx`` is ``arange(n)`` as float (``n`` may be dynamic). Bin ``i`` averages the positions
    ``[floor(i·n/b), ceil((i+1)·n/b))`` — exactly PyTorch's ``adaptive_avg_pool`` windows.
    """
    n = idx[-1:] + 1.0  # (1,), dynamic length
    i = torch.arange(bins, dtype=idx.dtype, device=idx.device)  # (b,)
    start = torch.floor(i * n / bins)  # (b,)
    end = torch.ceil((i + 1.0) * n / bins)  # (b,)
    inside = (idx[None, :] >= start[:, None]) & (idx[None, :] < end[:, None])  # b×n
    m = inside.to(idx.dtype)
    return m / m.sum(dim=1, keepdim=True)


def adaptive_avg_pool2d_exportable(x: Tensor, bins: int) -> Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` written as two MatMuls so it exports with dynamic H, W.

    ``torch.onnx`` can only export adaptive pooling with output size > 1 when the input size is
    static and divisible; here the pooling windows are built from the run-time shape (Range,
    comparisons, Cast, ReduceSum, Div) and applied as ``P_h @ x @ P_wᵀ``.
    ``x``: N×C×H×W → N×C×bins×bins.
    """
    if bins == 1:
        return x.mean(dim=(2, 3), keepdim=True)
    # window bounds in float32 even under fp16/bf16 autocast (i·n must be an exact integer)
    h = torch.arange(x.shape[-2], dtype=torch.float32, device=x.device)  # (H,)
    w = torch.arange(x.shape[-1], dtype=torch.float32, device=x.device)  # (W,)
    ph = adaptive_pool_matrix(h, bins).to(x.dtype)  # b×H
    pw = adaptive_pool_matrix(w, bins).to(x.dtype)  # b×W
    return torch.matmul(torch.matmul(ph, x), pw.transpose(0, 1))  # N×C×b×b


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module (Zhao et al., 2017): pool to b×b for b in ``bins``,
    1×1 conv-BN-ReLU to ``C/len(bins)`` channels, resize back, concat with the input."""

    def __init__(self, cin: int, bins: Sequence[int] = (1, 2, 3, 6), norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        red = max(1, cin // len(self.bins))
        self.stages = nn.ModuleList(conv_bn_relu(cin, red, 1, norm_layer=norm_layer) for _ in self.bins)
        self.out_channels = cin + red * len(self.bins)

    def forward(self, x: Tensor) -> Tensor:
        outs = [x]
        for b, stage in zip(self.bins, self.stages):
            y = stage(adaptive_avg_pool2d_exportable(x, b))  # N×C/4×b×b
            outs.append(_resize(y, x))  # N×C/4×h×w
        return torch.cat(outs, dim=1)  # N×2C×h×w


class PSPHead(nn.Module):
    """Pyramid pooling → 3×3 conv-BN-ReLU (pre-classifier feature) → dropout → 1×1 classifier.

    Note: PSPNet's batch-norm inside the 1×1 bin branch sees only N·b² values per channel; the
    1×1 bin with batch size 1 cannot train (PyTorch raises), so train PSPNet with batch ≥ 2.
    """

    def __init__(
        self,
        cin: int,
        num_classes: int,
        *,
        channels: int = 512,
        bins: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        self.ppm = PyramidPooling(cin, bins, norm_layer)
        self.bottleneck = conv_bn_relu(self.ppm.out_channels, channels, 3, norm_layer=norm_layer)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.out_channels = channels

    def forward(self, feats: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        feat = self.bottleneck(self.ppm(feats["out"]))  # N×C'×h×w
        return feat, self.classifier(self.dropout(feat))  # N×K×h×w


# ------------------------------------------------------------------------------- FCN (aux)
class FCNHead(nn.Module):
    """Auxiliary FCN head (PSPNet's deep supervision): 3×3 conv-BN-ReLU (C/4) → dropout → 1×1."""

    def __init__(
        self, cin: int, num_classes: int, *, dropout: float = 0.1, norm_layer: NormLayer = nn.BatchNorm2d
    ):
        super().__init__()
        inter = max(8, cin // 4)
        self.block = nn.Sequential(
            conv_bn_relu(cin, inter, 3, norm_layer=norm_layer),
            nn.Dropout(dropout),
            nn.Conv2d(inter, num_classes, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)  # N×K×h×w


# ----------------------------------------------------------------------------------- LR-ASPP
class LRASPPHead(nn.Module):
    """Lite Reduced ASPP (Howard et al., "Searching for MobileNetV3", 2019, §6.2).

    ``logits = W_low · low + W_high · resize(cbr(high) ⊙ σ(W_g · GAP(high)))`` where ``high`` is
    the last (dilated) stage and ``low`` the stride-8 stage.

    Why this is the real-time head of the project (``lraspp_mobilenetv2``):

    * **cheap** – one 1×1 conv of the deep feature (128 ch) plus a squeeze-and-excitation-style
      global gate replaces ASPP's three 3×3 atrous convs on 256 channels: a few tens of MFLOPs
      at 360×480 instead of several GFLOPs, with a stride-8 skip that recovers thin structures;
    * **export-friendly ops only** – Conv, BatchNorm (folded at export), ReLU,
      GlobalAveragePool, Sigmoid, Mul, Add and bilinear Resize. All are native in ONNX Runtime's
      CPU kernels, quantise cleanly to INT8 (QDQ around convs; sigmoid/mul stay in float or use
      QLinear kernels) and map to TensorRT layers without plugins;
    * **dynamic shapes** – the global pooling uses ``GlobalAveragePool`` (no fixed 49×49 kernel as
      in the paper's training crops), so the same graph runs at any resolution.

    ``feat`` (returned for distillation) is the gated deep feature resized to the low stage: N×C'×h×w.
    """

    def __init__(
        self,
        low_channels: int,
        high_channels: int,
        num_classes: int,
        *,
        channels: int = 128,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        self.cbr = conv_bn_relu(high_channels, channels, 1, norm_layer=norm_layer)
        self.scale = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, channels, 1, bias=False), nn.Sigmoid()
        )
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(channels, num_classes, 1)
        self.out_channels = channels

    def forward(self, feats: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        low, high = feats["low"], feats["out"]
        x = self.cbr(high) * self.scale(high)  # N×C'×h16×w16 ⊙ N×C'×1×1
        feat = _resize(x, low)  # N×C'×h8×w8
        return feat, self.low_classifier(low) + self.high_classifier(feat)  # N×K×h8×w8
