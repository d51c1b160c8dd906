"""DVC stage ``video``: a short labelled clip for ``deploy/infer.py``.

* ``synthetic`` – a moving street scene rendered by :func:`rdd.data.write_synthetic_video`
  (same size as the dataset, seed ``prepare.synthetic.seed + 1`` so it is not a training frame);
* any other dataset – the first ``prepare.video.n_frames`` frames of the validation split in file-name
  order (:func:`rdd.data.write_dataset_video`; CamVid's val split is one 15 fps drive).

Writes ``outputs/video/video.mp4``, its per-frame masks ``outputs/video/masks/frame_%06d.png`` and
``outputs/video/video.json``. No training stage depends on it, so changing the clip re-trains nothing.

    python -m pipeline.video [--params params.yaml] [--out-root outputs]
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pipeline._cli import bad_params, stage_command
from pipeline.config import Params, as_params, dataset_root


def prepare_video(params: Params, out_root: str | Path = "outputs") -> dict[str, Any]:
    """Run the video stage in-process; returns what ``video.json`` records."""
    from rdd.data import build_dataset, write_dataset_video, write_synthetic_video
    from rdd.spec import write_json_atomic

    with bad_params("video"):
        params = as_params(params)
    data, video = params.data, params.prepare.video
    with bad_params("video"):
        root = dataset_root(params, out_root, must_exist=data.dataset != "synthetic")
    out = Path(out_root) / "video"
    out.mkdir(parents=True, exist_ok=True)
    video_path, masks_dir = out / "video.mp4", out / "masks"
    shutil.rmtree(masks_dir, ignore_errors=True)
    if data.dataset == "synthetic":
        syn = params.prepare.synthetic
        write_synthetic_video(
            video_path, masks_dir, n_frames=video.n_frames, size=syn.size, seed=syn.seed + 1, fps=video.fps
        )
        summary = {
            "path": str(video_path),
            "masks_dir": str(masks_dir),
            "n_frames": video.n_frames,
            "fps": video.fps,
            "size": list(syn.size),
        }
    else:
        with bad_params("video"):
            val = build_dataset(data.dataset, root=root, split=data.val_split, **data.kwargs)
        summary = write_dataset_video(val, video_path, masks_dir, n_frames=video.n_frames, fps=video.fps)
    summary["source"] = data.dataset
    write_json_atomic(out / "video.json", summary)
    return summary


def _show(s: dict[str, Any], out_root: str) -> str:
    return f"video: {s['path']} ({s['n_frames']} frames at {s['fps']:g} fps, masks in {s['masks_dir']})"


main = stage_command(
    "video",
    prepare_video,
    _show,
    help="Write a short labelled video (+ per-frame masks) for deploy/infer.py.",
)


if __name__ == "__main__":
    main()
