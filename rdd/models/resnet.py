"""Dilated ResNet-18/34/50/101 (He et al., 2016) with torchvision's ``state_dict`` key names.

``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0`` … as in torchvision, without
``fc``; the output stride follows DeepLabV3 (the contract is in :mod:`rdd.models.backbones`).
"""

from __future__ import annotations

import os

from torch import Tensor, nn

from .backbones import NormLayer, check_output_stride, check_width, get_norm_layer, make_divisible
from .weights import load_backbone_weights

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet", "RESNET_LAYERS"]

#: Blocks per stage, as in He et al. (2016), Table 1.
RESNET_LAYERS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class _ResidualBlock(nn.Module):
    """``relu(residual(x) + identity)`` with torchvision's constructor arguments; each kind of
    block builds its convolutions in :meth:`_build` (same module names as torchvision)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        first_dilation: int | None = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ):
        super().__init__()
        self._build(
            inplanes,
            planes,
            stride,
            dilation,
            dilation if first_dilation is None else first_dilation,
            norm_layer,
        )
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def _build(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        dilation: int,
        first_dilation: int,
        norm_layer: NormLayer,
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _residual(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self._residual(x) + identity)


class BasicBlock(_ResidualBlock):
    """Two 3×3 convs + identity (ResNet-18/34). Unlike torchvision, dilation > 1 is supported."""

    expansion = 1

    def _build(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        dilation: int,
        first_dilation: int,
        norm_layer: NormLayer,
    ) -> None:
        self.conv1 = conv3x3(inplanes, planes, stride, first_dilation)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = norm_layer(planes)

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(_ResidualBlock):
    """1×1 → 3×3 (stride, dilation) → 1×1 ×4 + identity (ResNet-50/101, torchvision "v1.5")."""

    expansion = 4

    def _build(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        dilation: int,
        first_dilation: int,
        norm_layer: NormLayer,
    ) -> None:
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride, first_dilation)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class ResNet(nn.Module):
    """ResNet feature extractor with DeepLabV3-style dilation.

    ``output_stride=8`` dilates layer3 (×2) and layer4 (×4); ``16`` dilates layer4 (×2); ``32`` is
    the plain classification network. As in torchvision's ``replace_stride_with_dilation``, the
    first block of a dilated stage uses the previous dilation and the following blocks the new one.

    Args:
        depth: 18, 34, 50 or 101.
        width_mult: channel multiplier (stem ``64·w``, stages ``64·w·2^i`` before expansion).
        output_stride: 8, 16 or 32.
        norm_layer: normalisation constructor (default ``nn.BatchNorm2d``).
    """

    def __init__(
        self,
        depth: int = 50,
        *,
        width_mult: float = 1.0,
        output_stride: int = 32,
        norm_layer: str | NormLayer | None = None,
    ):
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth!r}")
        width_mult = check_width(width_mult)
        output_stride = check_output_stride(output_stride)
        norm = get_norm_layer(norm_layer)
        kind, layers = RESNET_LAYERS[depth]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.depth, self.width_mult, self.output_stride = depth, width_mult, output_stride
        self._norm = norm

        planes = [make_divisible(64 * width_mult * 2**i) for i in range(4)]
        self.inplanes = make_divisible(64 * width_mult)
        self.dilation = 1
        dilate = {8: (False, True, True), 16: (False, False, True), 32: (False, False, False)}
        d2, d3, d4 = dilate[output_stride]

        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2, dilate=d2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2, dilate=d3)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2, dilate=d4)
        del self.inplanes, self.dilation

        e = block.expansion
        self.out_channels = {"low": planes[0] * e, "aux": planes[2] * e, "out": planes[3] * e}
        self.strides = {"low": 4, "aux": min(16, output_stride), "out": output_stride}

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride), self._norm(planes * block.expansion)
            )
        layers = [
            block(
                self.inplanes,
                planes,
                stride,
                downsample,
                dilation=self.dilation,
                first_dilation=previous_dilation,
                norm_layer=self._norm,
            )
        ]
        self.inplanes = planes * block.expansion
        layers += [
            block(self.inplanes, planes, dilation=self.dilation, norm_layer=self._norm)
            for _ in range(1, blocks)
        ]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # N×C×H/4×W/4
        low = self.layer1(x)  # N×C1×H/4×W/4
        x = self.layer2(low)  # H/8
        aux = self.layer3(x)  # H/min(16, os)
        out = self.layer4(aux)  # H/os
        return {"low": low, "aux": aux, "out": out}


def resnet(
    depth: int,
    *,
    width_mult: float = 1.0,
    output_stride: int = 32,
    norm_layer: str | NormLayer | None = None,
    weights: str | os.PathLike | None = None,
) -> ResNet:
    """Build a :class:`ResNet` and optionally load torchvision-format ImageNet ``weights``."""
    model = ResNet(depth, width_mult=width_mult, output_stride=output_stride, norm_layer=norm_layer)
    if weights is not None:
        load_backbone_weights(model, weights)
    return model
