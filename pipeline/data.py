"""DVC stage ``data``: prepare the dataset named in ``params.yaml``.

* ``synthetic`` – generated into ``outputs/data/synthetic`` (:mod:`rdd.data.synthetic`);
* ``camvid`` / ``cityscapes`` / ``voc`` / ``ade20k`` / ``folder`` – checked in place at
  ``data.root`` (nothing is copied); a missing root stops the stage with a hint on how to get it.

Reads ``data`` and ``prepare`` (``check``, ``synthetic``). Writes ``outputs/data/dataset.json``
(what was found). The labelled clip for ``deploy/infer.py``
is the separate ``video`` stage (:mod:`pipeline.video`), so that changing it re-trains nothing.

    python -m pipeline.data [--params params.yaml] [--out-root outputs]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline._cli import bad_params, stage_command
from pipeline.config import Params, as_params, dataset_root


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


def prepare_data(params: Params, out_root: str | Path = "outputs") -> dict[str, Any]:
    """Run the data stage in-process; returns what ``dataset.json`` records."""
    from rdd.spec import write_json_atomic

    with bad_params("data"):
        params = as_params(params)
    data, prep = params.data, params.prepare
    with bad_params("data"):
        if data.dataset == "synthetic":
            for key in ("train_split", "val_split"):
                if getattr(data, key) not in ("train", "val"):
                    raise params.error(
                        f"data.{key} must be 'train' or 'val' for the synthetic "
                        f"dataset, got {getattr(data, key)!r}"
                    )
        root = dataset_root(params, out_root, must_exist=data.dataset != "synthetic")
    out = Path(out_root) / "data"
    out.mkdir(parents=True, exist_ok=True)
    if data.dataset == "synthetic":
        from rdd.data.synthetic import write_synthetic_dataset

        syn = prep.synthetic
        write_synthetic_dataset(root, n_train=syn.n_train, n_val=syn.n_val, size=syn.size, seed=syn.seed)
    splits = {}
    with bad_params("data"):
        for key in ("train_split", "val_split"):
            split = getattr(data, key)
            if split in splits:
                continue
            try:
                splits[split] = _check_split(data.dataset, root, split, data.kwargs, prep.check)
            except FileNotFoundError as e:
                raise FileNotFoundError(f"data.{key} = {split!r}: {e}") from None
    summary = {"dataset": data.dataset, "root": str(root), "splits": splits}
    write_json_atomic(out / "dataset.json", summary)
    return summary


def _show(summary: dict[str, Any], out_root: str) -> str:
    counts = ", ".join(f"{k}: {v['num_samples']}" for k, v in summary["splits"].items())
    return f"data: {summary['dataset']} at {summary['root']} ({counts})"


main = stage_command("data", prepare_data, _show, help="Prepare (synthetic) or check (real) the dataset.")


if __name__ == "__main__":
    main()
