"""Dilated backbones for dense prediction: the contract shared by ResNet-18/34/50/101
(:mod:`rdd.models.resnet`) and MobileNetV2 (:mod:`rdd.models.mobilenetv2`), and their helpers.

Both families keep torchvision's ``state_dict`` key names *exactly* (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer2.0.downsample.0`` …; ``features.N.conv.M…`` for MobileNetV2), so the
ImageNet checkpoints published by torchvision load with
:func:`~rdd.models.weights.load_backbone_weights` (or the ``backbone_weights=`` argument of every
model builder). The classification parts are not built: ResNet has no ``fc`` and MobileNetV2
stops after ``features.17`` (the 1280-channel ``features.18`` 1×1 conv and ``classifier`` only
serve ImageNet classification and would cost ~1 GFLOP at 1/8 resolution); those keys are skipped
when loading.

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

from collections.abc import Callable

from torch import nn

NormLayer = Callable[[int], nn.Module]

__all__ = ["NormLayer", "make_divisible", "get_norm_layer", "check_width", "check_output_stride"]


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


def check_width(width_mult: float) -> float:
    w = float(width_mult)
    if not w > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
    return w


def check_output_stride(output_stride: int) -> int:
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    return int(output_stride)
