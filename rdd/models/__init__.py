"""Segmentation models: dilated ResNet / MobileNetV2 backbones; DeepLabV3, DeepLabV3+, PSPNet,
LR-ASPP heads.

```python
from rdd.models import create_model, list_models
model = create_model("lraspp_mobilenetv2", num_classes=11, width_mult=0.5)
out = model(x)["out"]          # x: N×3×H×W → N×K×H×W logits
```
See docs/DESIGN.md ("Models") for the contract.
"""

from .backbones import make_divisible
from .base import ExportWrapper, SegmentationModel, count_flops, count_params, export_wrapper, unwrap_model
from .heads import (
    ASPP,
    DeepLabV3Head,
    DeepLabV3PlusHead,
    FCNHead,
    LRASPPHead,
    PSPHead,
    PyramidPooling,
    adaptive_avg_pool2d_exportable,
    aspp_rates,
)
from .mobilenetv2 import MobileNetV2, mobilenetv2
from .registry import create_model, get_model_builder, list_models, register_model
from .resnet import ResNet, resnet
from .weights import TORCHVISION_URLS, load_backbone_weights

__all__ = [
    "create_model",
    "list_models",
    "register_model",
    "get_model_builder",
    "SegmentationModel",
    "export_wrapper",
    "ExportWrapper",
    "unwrap_model",
    "count_params",
    "count_flops",
    "ResNet",
    "MobileNetV2",
    "resnet",
    "mobilenetv2",
    "load_backbone_weights",
    "make_divisible",
    "TORCHVISION_URLS",
    "ASPP",
    "DeepLabV3Head",
    "DeepLabV3PlusHead",
    "PSPHead",
    "PyramidPooling",
    "FCNHead",
    "LRASPPHead",
    "adaptive_avg_pool2d_exportable",
    "aspp_rates",
]
