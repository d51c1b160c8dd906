"""Model registry: ``register_model``, ``create_model``, ``list_models`` and the builders.

A builder is a small function with keyword-only arguments returning a
:class:`~rdd.models.base.SegmentationModel`; every registered name is written out below as a
``def`` of that name (timm / torchvision style), the ResNet ones as three-line calls of
:func:`_resnet_model`. :func:`register_model` wraps it so that every model it
builds carries ``model_name`` and the *complete* ``model_kwargs`` (defaults filled in,
``backbone_weights`` recorded as ``None``), hence ``create_model(m.model_name, **m.model_kwargs)``
rebuilds the same architecture; every argument is bounded by :mod:`rdd.models.limits`.
Each signature starts on its ``def`` line (``# fmt: skip``), so ``grep "def deeplabv3_resnet18(*"`` finds it.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from .backbones import NormLayer, get_norm_layer, make_divisible
from .base import SegmentationModel
from .heads import DeepLabV3Head, DeepLabV3PlusHead, FCNHead, LRASPPHead, PSPHead, aspp_rates
from .limits import KWARG_LIMITS, check_model_kwargs
from .mobilenetv2 import mobilenetv2
from .resnet import resnet

__all__ = [
    "register_model",
    "create_model",
    "list_models",
    "get_model_builder",
    "KWARG_LIMITS",  # defined in rdd.models.limits; rdd.models.registry.KWARG_LIMITS is the documented name
    "check_model_kwargs",
]

_MODELS: dict[str, Callable[..., SegmentationModel]] = {}


def register_model(fn: Callable[..., SegmentationModel] | None = None, *, name: str | None = None):
    """Decorator registering a keyword-only builder under ``name`` (default: its ``__name__``)."""

    def deco(f: Callable[..., SegmentationModel]) -> Callable[..., SegmentationModel]:
        key = name or f.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered")
        sig = inspect.signature(f)
        bad = [p.name for p in sig.parameters.values() if p.kind is not p.KEYWORD_ONLY]
        if bad or "num_classes" not in sig.parameters:
            raise TypeError(
                f"builder {key!r} must take keyword-only arguments including num_classes (positional: {bad})"
            )
        unbounded = [p for p in sig.parameters if p not in KWARG_LIMITS]
        if unbounded:
            raise TypeError(
                f"builder {key!r}: arguments {unbounded} have no bound in rdd.models.registry.KWARG_LIMITS"
            )

        @functools.wraps(f)
        def builder(**kwargs: Any) -> SegmentationModel:
            try:
                bound = sig.bind(**kwargs)
            except TypeError as e:
                raise ValueError(
                    f"model {key!r}: {e}; accepted keyword arguments: {list(sig.parameters)}"
                ) from None
            bound.apply_defaults()
            check_model_kwargs(bound.arguments)
            model = f(**bound.arguments)
            model.model_name = key
            model.model_kwargs = {
                k: (None if k == "backbone_weights" else v) for k, v in bound.arguments.items()
            }
            return model

        _MODELS[key] = builder
        return builder

    return deco(fn) if fn is not None else deco


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def get_model_builder(name: str) -> Callable[..., SegmentationModel]:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {list_models()}")
    return _MODELS[name]


def create_model(name: str, num_classes: int, **kwargs: Any) -> SegmentationModel:
    """Build the registered model ``name`` with ``num_classes`` outputs.

    ``kwargs`` are the builder's keyword arguments (``width_mult``, ``output_stride``, ``aux``,
    ``backbone_weights``, ``norm_layer``); unknown names raise ``ValueError``.
    """
    return get_model_builder(name)(num_classes=num_classes, **kwargs)


# ------------------------------------------------------------------------------- builders
def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return num_classes


def _resnet_model(
    head: str,
    depth: int,
    *,
    num_classes: int,
    width_mult: float,
    output_stride: int,
    aux: bool,
    backbone_weights,
    norm_layer,
) -> SegmentationModel:
    _check_num_classes(num_classes)
    norm = get_norm_layer(norm_layer)
    backbone = resnet(
        depth, width_mult=width_mult, output_stride=output_stride, norm_layer=norm, weights=backbone_weights
    )
    c = backbone.out_channels
    if head == "deeplabv3":
        main: Any = DeepLabV3Head(
            c["out"],
            num_classes,
            channels=make_divisible(256 * width_mult),
            rates=aspp_rates(output_stride),
            norm_layer=norm,
        )
    elif head == "deeplabv3plus":
        main = DeepLabV3PlusHead(
            c["low"],
            c["out"],
            num_classes,
            channels=make_divisible(256 * width_mult),
            low_channels=make_divisible(48 * width_mult),
            rates=aspp_rates(output_stride),
            norm_layer=norm,
        )
    else:
        main = PSPHead(c["out"], num_classes, channels=make_divisible(512 * width_mult), norm_layer=norm)
    aux_head = FCNHead(c["aux"], num_classes, norm_layer=norm) if aux else None
    return SegmentationModel(backbone, main, aux_head, num_classes=num_classes)


@register_model
def deeplabv3_resnet18(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 8,
                       aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                       norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3 (ASPP) on a dilated ResNet-18; FCN auxiliary head on layer3 when ``aux``."""
    return _resnet_model(
        "deeplabv3",
        18,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def deeplabv3_resnet34(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 8,
                       aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                       norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3 (ASPP) on a dilated ResNet-34; FCN auxiliary head on layer3 when ``aux``."""
    return _resnet_model(
        "deeplabv3",
        34,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def deeplabv3_resnet50(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 8,
                       aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                       norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3 (ASPP) on a dilated ResNet-50; FCN auxiliary head on layer3 when ``aux``."""
    return _resnet_model(
        "deeplabv3",
        50,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def deeplabv3_resnet101(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 8,
                        aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                        norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3 (ASPP) on a dilated ResNet-101; FCN auxiliary head on layer3 when ``aux``."""
    return _resnet_model(
        "deeplabv3",
        101,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def deeplabv3plus_resnet18(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 16,
                           aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                           norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3+ (ASPP + stride-4 decoder) on a dilated ResNet-18; FCN aux head on layer3."""
    return _resnet_model(
        "deeplabv3plus",
        18,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def deeplabv3plus_resnet34(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 16,
                           aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                           norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3+ (ASPP + stride-4 decoder) on a dilated ResNet-34; FCN aux head on layer3."""
    return _resnet_model(
        "deeplabv3plus",
        34,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def deeplabv3plus_resnet50(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 16,
                           aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                           norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3+ (ASPP + stride-4 decoder) on a dilated ResNet-50; FCN aux head on layer3."""
    return _resnet_model(
        "deeplabv3plus",
        50,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def deeplabv3plus_resnet101(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 16,
                            aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                            norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3+ (ASPP + stride-4 decoder) on a dilated ResNet-101; FCN aux head on layer3."""
    return _resnet_model(
        "deeplabv3plus",
        101,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def pspnet_resnet18(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 8,
                    aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                    norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """PSPNet (pyramid pooling) on a dilated ResNet-18; FCN auxiliary head on layer3 when ``aux``."""
    return _resnet_model(
        "pspnet",
        18,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def pspnet_resnet34(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 8,
                    aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                    norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """PSPNet (pyramid pooling) on a dilated ResNet-34; FCN auxiliary head on layer3 when ``aux``."""
    return _resnet_model(
        "pspnet",
        34,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def pspnet_resnet50(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 8,
                    aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                    norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """PSPNet (pyramid pooling) on a dilated ResNet-50; FCN auxiliary head on layer3 when ``aux``."""
    return _resnet_model(
        "pspnet",
        50,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def pspnet_resnet101(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 8,
                     aux: bool = True, backbone_weights: str | os.PathLike | None = None,
                     norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """PSPNet (pyramid pooling) on a dilated ResNet-101; FCN auxiliary head on layer3 when ``aux``."""
    return _resnet_model(
        "pspnet",
        101,
        num_classes=num_classes,
        width_mult=width_mult,
        output_stride=output_stride,
        aux=aux,
        backbone_weights=backbone_weights,
        norm_layer=norm_layer,
    )


@register_model
def deeplabv3_mobilenetv2(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 16,
                          aux: bool = False, backbone_weights: str | os.PathLike | None = None,
                          norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """DeepLabV3 (ASPP, 256·w channels) on a dilated MobileNetV2; aux FCN head on features.13."""
    _check_num_classes(num_classes)
    norm = get_norm_layer(norm_layer)
    backbone = mobilenetv2(
        width_mult=width_mult, output_stride=output_stride, norm_layer=norm, weights=backbone_weights
    )
    c = backbone.out_channels
    head = DeepLabV3Head(
        c["out"],
        num_classes,
        channels=make_divisible(256 * width_mult),
        rates=aspp_rates(output_stride),
        norm_layer=norm,
    )
    aux_head = FCNHead(c["aux"], num_classes, norm_layer=norm) if aux else None
    return SegmentationModel(backbone, head, aux_head, num_classes=num_classes)


@register_model
def lraspp_mobilenetv2(*, num_classes: int, width_mult: float = 1.0, output_stride: int = 16,
                       aux: bool = False, backbone_weights: str | os.PathLike | None = None,
                       norm_layer: str | NormLayer | None = None) -> SegmentationModel:  # fmt: skip
    """The real-time student: LR-ASPP (see :class:`~rdd.models.heads.LRASPPHead`) on MobileNetV2
    (deep feature at ``output_stride``, stride-8 skip from features.6); aux FCN head on
    features.13 when ``aux``."""
    _check_num_classes(num_classes)
    norm = get_norm_layer(norm_layer)
    backbone = mobilenetv2(
        width_mult=width_mult, output_stride=output_stride, norm_layer=norm, weights=backbone_weights
    )
    c = backbone.out_channels
    head = LRASPPHead(
        c["low"], c["out"], num_classes, channels=make_divisible(128 * width_mult), norm_layer=norm
    )
    aux_head = FCNHead(c["aux"], num_classes, norm_layer=norm) if aux else None
    return SegmentationModel(backbone, head, aux_head, num_classes=num_classes)
