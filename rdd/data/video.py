"""A labelled clip from a dataset split, for the real-time runner (``deploy/infer.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rdd.spec import atomic_path


def write_dataset_video(
    dataset, path: str | Path, masks_dir: str | Path, *, n_frames: int, fps: float
) -> dict[str, Any]:
    """Join the first ``n_frames`` samples of ``dataset`` (in image file-name order) into an mp4.

    The label masks go to ``masks_dir/frame_000000.png`` … (train ids, 255 = ignore), the layout
    ``deploy/infer.py --labels`` matches by frame index. Frames of another size than the first
    are resized to it (image bilinear, mask ``INTER_NEAREST_EXACT``, as ``EvalTransform``). The
    video is written to a temporary file and renamed; CamVid's val split is 101 consecutive frames
    of one drive, so this is a real 15 fps sequence there.
    """
    path, masks_dir = Path(path), Path(masks_dir)
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    order = sorted(range(len(dataset.files)), key=lambda i: Path(dataset.files[i][0]).name)
    order = order[:n_frames]
    if not order:
        raise ValueError(f"cannot write {path}: the dataset split is empty")
    masks_dir.mkdir(parents=True, exist_ok=True)
    size = None
    with atomic_path(path) as tmp:
        writer = None
        try:
            for j, i in enumerate(order):
                image, mask = dataset.load(i)
                mask = np.asarray(mask, np.uint8)
                if size is None:
                    size = image.shape[:2]
                    writer = cv2.VideoWriter(
                        str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0])
                    )
                    if not writer.isOpened():
                        raise RuntimeError(f"OpenCV cannot write an mp4 video to {path}")
                if image.shape[:2] != size:
                    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                    mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                with atomic_path(masks_dir / f"frame_{j:06d}.png") as mtmp:  # tmp ends in .png
                    if not cv2.imwrite(str(mtmp), mask):
                        raise RuntimeError(f"cannot write {masks_dir / f'frame_{j:06d}.png'}")
        finally:
            if writer is not None:
                writer.release()
    return {
        "path": str(path),
        "masks_dir": str(masks_dir),
        "n_frames": len(order),
        "fps": float(fps),
        "size": list(size),
    }
