"""Dilated backbones for dense prediction: ResNet-18/34/50/101 and MobileNetV2.

Both families keep torchvision's ``state_dict`` key names *exactly* (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer2.0.downsample.0`` …; ``features.N.conv.M…`` for MobileNetV2), so the
ImageNet checkpoints published by torchvision load with :func:`load_backbone_weights` (or the
``backbone_weights=`` argument of every model builder). The classification parts are not built:
ResNet has no ``fc`` and MobileNetV2 stops after ``features.17`` (the 1280-channel ``features.18``
1×1 conv and ``classifier`` only serve ImageNet classification and would cost ~1 GFLOP at 1/8
resolution); those keys are skipped when loading.

The output stride (8, 16 or 32) is reached as in DeepLabV3 (Chen et al., 2017): the strides of the
last stage(s) are replaced by dilation, so the receptive field is kept while the feature map stays
large. A ``width_mult`` scales every channel count (``64·w``, ``128·w``…), which gives the tiny
variants used by the tests and the quick pipeline; ImageNet weights only exist for ``width_mult=1``.

Every backbone's ``forward`` returns a dict of named stages::

    {"low": N×C_low×H/4 (ResNet) or H/8 (MobileNetV2),
     "aux": N×C_aux×H/s×W/s   (ResNet layer3; MobileNetV2 features.13 — input of the FCN aux head),
     "out": N×C_out×H/s×W/s   (last stage, s = output_stride)}

with ``out_channels`` / ``strides`` dicts describing them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from rdd.serialization import fetch_url, is_url, load_torch_file, sha256_file

NormLayer = Callable[[int], nn.Module]

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "InvertedResidual",
    "MobileNetV2",
    "make_divisible",
    "resnet",
    "mobilenetv2",
    "load_backbone_weights",
    "get_norm_layer",
    "RESNET_LAYERS",
    "TORCHVISION_URLS",
]

#: Blocks per stage, as in He et al. (2016), Table 1.
RESNET_LAYERS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}

#: torchvision's ImageNet checkpoints (for convenience; pass any URL or local path instead).
TORCHVISION_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "mobilenetv2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
}


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10 %.

    This is the rounding used by MobileNetV2 (Sandler et al., 2018) for ``width_mult``.
    """
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def get_norm_layer(norm_layer: str | NormLayer | None) -> NormLayer:
    """``None``/``"batchnorm"`` → ``nn.BatchNorm2d``; ``"syncbatchnorm"`` → ``nn.SyncBatchNorm``;
    a callable ``C -> nn.Module`` is returned unchanged."""
    if norm_layer is None or norm_layer == "batchnorm":
        return nn.BatchNorm2d
    if norm_layer == "syncbatchnorm":
        return nn.SyncBatchNorm
    if callable(norm_layer):
        return norm_layer
    raise ValueError(f"norm_layer must be 'batchnorm', 'syncbatchnorm' or a callable, got {norm_layer!r}")


def _check_width(width_mult: float) -> float:
    w = float(width_mult)
    if not w > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
    return w


def _check_output_stride(output_stride: int) -> int:
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    return int(output_stride)


# ----------------------------------------------------------------------------------- ResNet
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
        width_mult = _check_width(width_mult)
        output_stride = _check_output_stride(output_stride)
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


# ------------------------------------------------------------------------------ MobileNetV2
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
        width_mult = _check_width(width_mult)
        output_stride = _check_output_stride(output_stride)
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


# ---------------------------------------------------------------------------- weight loading
#: Key prefixes of torchvision classification checkpoints that a backbone does not build.
IGNORED_PREFIXES = ("fc.", "classifier.", "features.18.")


def split_sha256(source: str | os.PathLike) -> tuple[str, str | None]:
    """``"https://host/w.pth#sha256=<64 hex>"`` → ``("https://host/w.pth", "<64 hex>")``.

    The ``#sha256=`` fragment (as in pip requirement URLs) is how ``model.kwargs.backbone_weights``
    asks for a digest check; a plain path or URL gives ``(source, None)``.
    """
    src = str(source)
    if is_url(src) and "#" in src:
        base, frag = src.split("#", 1)
        if frag.startswith("sha256="):
            return base, frag[len("sha256=") :]
        raise ValueError(
            f"backbone weights {src}: unknown URL fragment #{frag} (expected #sha256=<64 hex digits>)"
        )
    return src, None


def _read_state_dict(source: str | os.PathLike, sha256: str | None = None) -> Mapping[str, Tensor]:
    src, frag_sha = split_sha256(source)
    if sha256 is not None and frag_sha is not None and sha256.lower() != frag_sha.lower():
        raise ValueError(f"backbone weights {source}: the URL's #sha256 differs from sha256={sha256}")
    sha256 = sha256 or frag_sha
    if is_url(src):
        # downloaded into the torch hub cache, then read exactly like a local file
        path = fetch_url(src, sha256=sha256, what="backbone weights")
    else:
        path = Path(src).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        got = sha256_file(path) if sha256 is not None else None
        if got is not None and got != sha256.lower():
            raise ValueError(
                f"backbone weights {path}: sha256 mismatch: expected {sha256}, the file has {got}"
            )
    # weights_only=True: a crafted pickle is refused before anything in it runs
    obj = load_torch_file(
        path, what=f"backbone weights {src}, cached at" if is_url(src) else "backbone weights"
    )
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        raise ValueError(
            f"backbone weights {src}: expected a state dict (str → Tensor), got {type(obj).__name__}"
        )
    return obj


def load_backbone_weights(
    backbone: nn.Module, source: str | os.PathLike, *, sha256: str | None = None, max_report: int = 5
) -> None:
    """Load a torchvision-format state dict into ``backbone``, strictly.

    ``source`` is a local path or an ``http(s)://`` / ``file://`` URL, downloaded once into
    ``$TORCH_HOME/hub/checkpoints`` (:func:`rdd.serialization.fetch_url`); either way the file is
    read with ``torch.load(weights_only=True)`` (:func:`rdd.serialization.load_torch_file`), so a
    crafted pickle is refused (``TorchFileError``) before anything in it runs. ``sha256`` (or a
    ``#sha256=<hex>`` URL fragment) must then match the file's digest, else ``ValueError``.

    ``fc.*``, ``classifier.*`` and ``features.18.*`` are ignored; a leading ``module.`` (DDP) is
    stripped; missing ``num_batches_tracked`` buffers (old checkpoints) are accepted. Anything else
    — missing or unexpected keys, wrong shapes — raises ``ValueError`` naming the file and the
    first mismatching keys.
    """
    width = getattr(backbone, "width_mult", 1.0)
    if width != 1.0:
        raise ValueError(
            f"backbone weights {source}: ImageNet weights exist only for width_mult=1.0, "
            f"this backbone has width_mult={width}"
        )
    state = _read_state_dict(source, sha256)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    own = backbone.state_dict()
    for k in own:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros_like(own[k])
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", wrong),
        ):
            if keys:
                more = f" (+{len(keys) - max_report} more)" if len(keys) > max_report else ""
                parts.append(f"{len(keys)} {label}: {keys[:max_report]}{more}")
        raise ValueError(
            f"backbone weights {source} do not match {type(backbone).__name__}: " + "; ".join(parts)
        )
    backbone.load_state_dict(state, strict=True)
