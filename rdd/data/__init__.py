"""Datasets, synthetic street scenes and transforms.

```python
from rdd.data import build_dataset, DATASETS, TrainTransform, EvalTransform
ds = build_dataset("camvid", root="../shared/data/camvid", split="train", transform=None)
image, mask = ds.load(0)     # uint8 H×W×3 RGB, uint8 H×W train ids (ignore 255)
x, y = ds[0]                 # float32 3×H×W, int64 H×W
```
"""

from rdd.data.ade20k import ADE20K, ADE20K_CLASSES  # registers "ade20k"
from rdd.data.base import SegmentationDataset, read_image, read_mask
from rdd.data.datasets import (
    CITYSCAPES_CLASSES,
    DATASETS,
    CamVid,
    Cityscapes,
    FolderDataset,
    SyntheticDataset,
    build_dataset,
    class_pixel_frequency,
    register_dataset,
)
from rdd.data.synthetic import render_scene, write_synthetic_dataset, write_synthetic_video
from rdd.data.transforms import EvalTransform, TrainTransform, color_jitter
from rdd.data.video import write_dataset_video
from rdd.data.voc import VOC_CLASSES, PascalVOC  # registers "voc"
from rdd.labels import read_classes_yaml

__all__ = [
    "ADE20K",
    "ADE20K_CLASSES",
    "CITYSCAPES_CLASSES",
    "DATASETS",
    "VOC_CLASSES",
    "CamVid",
    "Cityscapes",
    "EvalTransform",
    "FolderDataset",
    "PascalVOC",
    "SegmentationDataset",
    "SyntheticDataset",
    "TrainTransform",
    "build_dataset",
    "class_pixel_frequency",
    "color_jitter",
    "read_classes_yaml",
    "read_image",
    "read_mask",
    "register_dataset",
    "render_scene",
    "write_dataset_video",
    "write_synthetic_dataset",
    "write_synthetic_video",
]
