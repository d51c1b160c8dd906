"""Pascal VOC 2012 segmentation (+ the SBD ``train_aug`` set): :class:`PascalVOC`, registered as
``"voc"``, and its 21 classes (:data:`VOC_CLASSES`, VOC colour map)."""

from __future__ import annotations

import os
from pathlib import Path

from rdd.data.base import SegmentationDataset, Transform, build_lut, require_dir
from rdd.data.datasets import nonempty, register_dataset
from rdd.spec import ClassInfo, voc_colormap

__all__ = ["PascalVOC", "VOC_CLASSES", "voc_palette"]


def voc_palette(k: int = 21) -> tuple[tuple[int, int, int], ...]:
    """Pascal VOC's colour map (class 0 = black)."""
    return voc_colormap(k)


VOC_CLASSES = ClassInfo(
    names=(
        "background",
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "diningtable",
        "dog",
        "horse",
        "motorbike",
        "person",
        "pottedplant",
        "sheep",
        "sofa",
        "train",
        "tvmonitor",
    ),
    palette=voc_palette(21),
)


@register_dataset("voc")
class PascalVOC(SegmentationDataset):
    """Pascal VOC 2012 segmentation (21 classes, 255 = object border = ignore)::

        root/JPEGImages/*.jpg  root/SegmentationClass/*.png (palette PNGs)
        root/ImageSets/Segmentation/{train,val,trainval}.txt

    ``root`` may be ``VOC2012/``, ``VOCdevkit/`` or their parent. Split ``train_aug`` (SBD
    augmented set, 10 582 images) reads masks from ``SegmentationClassAug/`` and the list from
    ``ImageSets/Segmentation/train_aug.txt`` (or ``ImageSets/SegmentationAug/train_aug.txt``);
    list lines are either an id or ``/JPEGImages/x.jpg /SegmentationClassAug/x.png``.
    """

    HINT = (
        "Download VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/"
        "voc2012/ and extract it (expected JPEGImages/, SegmentationClass/, "
        "ImageSets/Segmentation/); for train_aug also add SBD's SegmentationClassAug/ and "
        "train_aug.txt."
    )

    def __init__(
        self, root: str | os.PathLike, split: str = "train", transform: Transform | None = None
    ) -> None:
        root = self._resolve_root(Path(root))
        aug = split.endswith("_aug")
        mask_dir = require_dir(
            root / ("SegmentationClassAug" if aug else "SegmentationClass"), "VOC mask folder", self.HINT
        )
        listing = self._find_list(root, split)
        files = []
        for n, line in enumerate(listing.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            stem = Path(parts[0]).stem
            img = root / "JPEGImages" / f"{stem}.jpg"
            ann = mask_dir / f"{stem}.png"
            if not img.is_file():
                raise FileNotFoundError(f"{listing}:{n}: image file not found: {img}")
            if not ann.is_file():
                raise FileNotFoundError(f"{listing}:{n}: image {img} has no mask; expected {ann}")
            files.append((img, ann))
        super().__init__(
            nonempty(files, "voc", split, listing),
            VOC_CLASSES,
            transform,
            lut=build_lut(identity=21),
            name=f"voc/{split}",
        )
        self.root, self.split = root, split

    @classmethod
    def _resolve_root(cls, root: Path) -> Path:
        for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
            if (cand / "JPEGImages").is_dir():
                return cand
        raise FileNotFoundError(
            f"Pascal VOC 2012 not found under {root} (no JPEGImages/ in it, "
            f"VOC2012/ or VOCdevkit/VOC2012/). {cls.HINT}"
        )

    @classmethod
    def _find_list(cls, root: Path, split: str) -> Path:
        cands = [
            root / "ImageSets" / "Segmentation" / f"{split}.txt",
            root / "ImageSets" / "SegmentationAug" / f"{split}.txt",
            root / f"{split}.txt",
        ]
        for c in cands:
            if c.is_file():
                return c
        raise FileNotFoundError(
            f"voc: no list file for split {split!r}; looked for {', '.join(map(str, cands))}. {cls.HINT}"
        )
