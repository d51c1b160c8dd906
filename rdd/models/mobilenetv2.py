"""Dilated MobileNetV2 (Sandler et al., 2018): ``features.0`` … ``features.17`` with torchvision's
``state_dict`` key names (``features.N.conv.M…``).

The 1280-channel ``features.18`` and the ``classifier`` are not built; the output stride follows
DeepLabV3 (the contract is in :mod:`rdd.models.backbones`).
"""

from __future__ import annotations

import os

from torch import Tensor, nn

from .backbones import NormLayer, check_output_stride, check_width, get_norm_layer, make_divisible
from .weights import load_backbone_weights

__all__ = ["ConvBNAct", "InvertedResidual", "MobileNetV2", "mobilenetv2", "MOBILENETV2_SETTING"]


class ConvBNAct(nn.Sequential):
    """conv → norm (→ ReLU6); children ``0``/``1``/``2`` as torchvision's Conv2dNormActivation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        pad = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, pad, dilation=dilation, groups=groups, bias=False),
            norm_layer(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand → 3×3 depthwise (stride, dilation) → 1×1 linear projection."""

    def __init__(
        self,
        inp: int,
        oup: int,
        stride: int,
        expand_ratio: int,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(inp, hidden, 1, norm_layer=norm_layer))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, dilation=dilation, norm_layer=norm_layer),
            nn.Conv2d(hidden, oup, 1, bias=False),
            norm_layer(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


#: (expansion t, channels c, repeats n, stride s) — Sandler et al. (2018), Table 2.
MOBILENETV2_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """MobileNetV2 feature extractor (``features.0`` … ``features.17``) with dilation.

    Stages: ``features.6`` (32·w ch, stride 8) → ``"low"``; ``features.13`` (96·w ch, stride 16 or
    less) → ``"aux"``; ``features.17`` (320·w ch, ``output_stride``) → ``"out"``. Once the running
    stride reaches ``output_stride`` the remaining strides become dilation (as in the DeepLabV3
    MobileNetV2 of the paper); the block that loses its stride keeps the previous rate.
    """

    LOW, AUX = 6, 13

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        output_stride: int = 32,
        norm_layer: str | NormLayer | None = None,
        round_nearest: int = 8,
    ):
        super().__init__()
        width_mult = check_width(width_mult)
        output_stride = check_output_stride(output_stride)
        norm = get_norm_layer(norm_layer)
        self.width_mult, self.output_stride = width_mult, output_stride

        cin = make_divisible(32 * width_mult, round_nearest)
        layers: list[nn.Module] = [ConvBNAct(3, cin, stride=2, norm_layer=norm)]
        current_stride, rate = 2, 1
        strides: list[int] = [2]
        for t, c, n, s in MOBILENETV2_SETTING:
            cout = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                dilation = rate
                if stride > 1 and current_stride >= output_stride:
                    rate *= stride
                    stride = 1
                current_stride *= stride
                layers.append(InvertedResidual(cin, cout, stride, t, dilation=dilation, norm_layer=norm))
                strides.append(current_stride)
                cin = cout
        self.features = nn.Sequential(*layers)
        chans = [
            m.out_channels if isinstance(m, InvertedResidual) else m[0].out_channels for m in self.features
        ]
        self.out_channels = {"low": chans[self.LOW], "aux": chans[self.AUX], "out": chans[-1]}
        self.strides = {"low": strides[self.LOW], "aux": strides[self.AUX], "out": strides[-1]}

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feats: dict[str, Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self.LOW:
                feats["low"] = x  # N×32w×H/8×W/8
            elif i == self.AUX:
                feats["aux"] = x  # N×96w×H/s'×W/s'
        feats["out"] = x  # N×320w×H/os×W/os
        return feats


def mobilenetv2(
    *,
    width_mult: float = 1.0,
    output_stride: int = 32,
    norm_layer: str | NormLayer | None = None,
    weights: str | os.PathLike | None = None,
) -> MobileNetV2:
    """Build a :class:`MobileNetV2` and optionally load torchvision-format ImageNet ``weights``."""
    model = MobileNetV2(width_mult=width_mult, output_stride=output_stride, norm_layer=norm_layer)
    if weights is not None:
        load_backbone_weights(model, weights)
    return model
