"""DVC stage ``video``: a short labelled clip for ``deploy/infer.py``.

* ``synthetic`` – a moving street scene rendered by :func:`rdd.data.write_synthetic_video`
  (same size as the dataset, seed ``data.synthetic.seed + 1`` so it is not a training frame);
* any other dataset – the first ``data.video.n_frames`` frames of the validation split in file-name
  order (:func:`rdd.data.write_dataset_video`; CamVid's val split is one 15 fps drive).

Writes ``outputs/video/video.mp4``, its per-frame masks ``outputs/video/masks/frame_%06d.png`` and
``outputs/video/video.json``. No training stage depends on it, so changing the clip re-trains nothing.

    python -m pipeline.video [--params params.yaml] [--out-root outputs]
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from pipeline._cli import bad_params, out_root_option, params_option
from pipeline.config import ParamsError, dataset_root, load_params, section


def _options(params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``data.video`` (and the dataset it is cut from) before any work."""
    data = section(params, "data")
    video = data.get("video") or {}
    unknown = set(video) - {"n_frames", "fps"}
    if unknown:
        raise ParamsError(f"params.yaml: unknown key 'data.video.{sorted(unknown)[0]}' "
                          "(expected n_frames, fps)")
    n_frames, fps = video.get("n_frames", 60), video.get("fps", 10)
    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
        raise ParamsError(f"params.yaml: data.video.n_frames must be an integer >= 1, got {n_frames!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
        raise ParamsError(f"params.yaml: data.video.fps must be > 0, got {fps!r}")
    return {"dataset": data.get("dataset"), "val_split": data.get("val_split", "val"),
            "kwargs": data.get("kwargs") or {}, "synthetic": data.get("synthetic") or {},
            "n_frames": n_frames, "fps": float(fps)}


def prepare_video(params: dict[str, Any], out_root: str | Path = "outputs") -> dict[str, Any]:
    """Run the video stage in-process; returns what ``video.json`` records."""
    from rdd.data import build_dataset, write_dataset_video, write_synthetic_video
    from rdd.spec import as_hw, write_json_atomic

    with bad_params("video"):
        opts = _options(params)
        root = dataset_root(params, out_root)
        if opts["dataset"] != "synthetic" and not Path(root).is_dir():
            raise FileNotFoundError(f"data.root: dataset {opts['dataset']!r} not found at "
                                    f"{str(root)!r}")
    out = Path(out_root) / "video"
    out.mkdir(parents=True, exist_ok=True)
    video_path, masks_dir = out / "video.mp4", out / "masks"
    shutil.rmtree(masks_dir, ignore_errors=True)
    if opts["dataset"] == "synthetic":
        syn = opts["synthetic"]
        size = as_hw(syn.get("size", (180, 240)))
        write_synthetic_video(video_path, masks_dir, n_frames=opts["n_frames"], size=size,
                              seed=int(syn.get("seed", 0)) + 1, fps=opts["fps"])
        summary = {"path": str(video_path), "masks_dir": str(masks_dir),
                   "n_frames": opts["n_frames"], "fps": opts["fps"], "size": list(size)}
    else:
        with bad_params("video"):
            val = build_dataset(opts["dataset"], root=root, split=opts["val_split"], **opts["kwargs"])
        summary = write_dataset_video(val, video_path, masks_dir, n_frames=opts["n_frames"],
                                      fps=opts["fps"])
    summary["source"] = opts["dataset"]
    write_json_atomic(out / "video.json", summary)
    return summary


@click.command()
@params_option
@out_root_option
def main(params_path: str, out_root: str) -> None:
    """Write a short labelled video (+ per-frame masks) for deploy/infer.py."""
    with bad_params("video"):
        params = load_params(params_path)
    s = prepare_video(params, out_root)
    click.echo(f"video: {s['path']} ({s['n_frames']} frames at {s['fps']:g} fps, masks in "
               f"{s['masks_dir']})")


if __name__ == "__main__":
    main()
