"""ADE20K SceneParsing (MIT Scene Parsing Benchmark): :class:`ADE20K`, registered as
``"ade20k"``, and its 150 classes (:data:`ADE20K_CLASSES`; raw id 0 'other' is ignored)."""

from __future__ import annotations

import os
from pathlib import Path

from rdd.data.base import (
    IGNORE_INDEX,
    SegmentationDataset,
    Transform,
    build_lut,
    list_images,
    pair_by_stem,
    require_dir,
)
from rdd.data.datasets import check_split, nonempty, register_dataset
from rdd.spec import ClassInfo

__all__ = ["ADE20K", "ADE20K_CLASSES", "ADE20K_NAMES"]

ADE20K_NAMES = (
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest_of_drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool_table",
    "pillow",
    "screen_door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee_table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen_island",
    "computer",
    "swivel_chair",
    "boat",
    "bar",
    "arcade_machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television_receiver",
    "airplane",
    "dirt_track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer_belt",
    "canopy",
    "washer",
    "plaything",
    "swimming_pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade_name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic_light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt_screen",
    "plate",
    "monitor",
    "bulletin_board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
)
assert len(ADE20K_NAMES) == 150
ADE20K_CLASSES = ClassInfo(names=ADE20K_NAMES)


@register_dataset("ade20k")
class ADE20K(SegmentationDataset):
    """ADE20K SceneParsing (150 classes; raw 0 'other' → ignore 255, raw c → c − 1)::

        root/ADEChallengeData2016/images/{training,validation}/*.jpg
        root/ADEChallengeData2016/annotations/{training,validation}/*.png

    ``root`` may also be the ``ADEChallengeData2016`` folder itself. Splits: train / val.
    """

    SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}
    HINT = (
        "Download ADEChallengeData2016.zip from http://sceneparsing.csail.mit.edu and unzip "
        "it into root (expected ADEChallengeData2016/images/ and annotations/)."
    )

    def __init__(
        self, root: str | os.PathLike, split: str = "train", transform: Transform | None = None
    ) -> None:
        root = Path(root)
        check_split("ade20k", split, tuple(self.SPLITS))
        base = root if (root / "images").is_dir() else root / "ADEChallengeData2016"
        require_dir(base, "ADE20K root (ADEChallengeData2016)", self.HINT)
        sub = self.SPLITS[split]
        img_dir = require_dir(base / "images" / sub, "ADE20K image folder", self.HINT)
        ann_dir = require_dir(base / "annotations" / sub, "ADE20K annotation folder", self.HINT)
        files = pair_by_stem(list_images(img_dir), ann_dir, what=f"ade20k/{split}")
        lut = build_lut({0: IGNORE_INDEX, **{c: c - 1 for c in range(1, 151)}}, ignore_values=())
        super().__init__(
            nonempty(files, "ade20k", split, img_dir),
            ADE20K_CLASSES,
            transform,
            lut=lut,
            name=f"ade20k/{split}",
        )
        self.root, self.split = root, split
