"""DVC stage ``evaluate``: compare the teacher and the students on the validation split.

    python -m pipeline.evaluate [--params params.yaml] [--out-root outputs]

Reads ``evaluate``, ``data`` and ``rdd`` (the TSE mask in the figures), checks that every model
in ``evaluate.models`` was trained, then calls :func:`rdd.comparison.compare_models`, which
writes ``outputs/evaluate/`` (``metrics.json``, ``comparison.md``, ``miou.json``/``miou.png``,
``vis/``); the stage adds ``summary.json`` (mIoU % per model, the DVC metric).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline._cli import bad_params, stage_command, unloadable_files
from pipeline.config import Params, as_params, dataset_root, stage_artifact
from rdd.spec import write_json_atomic


def run_evaluate(params: Params, out_root: str | Path = "outputs") -> dict[str, Any]:
    """Run the evaluate stage in-process; returns the content of ``metrics.json``."""
    from rdd.comparison import compare_models

    with bad_params("evaluate"):  # every input exists before anything is loaded
        params = as_params(params)
        ev, data = params.evaluate, params.data
        artifacts = {m: stage_artifact(out_root, m) for m in ev.models}
        root = dataset_root(params, out_root, must_exist=True)
    out = Path(out_root) / "evaluate"
    with unloadable_files("evaluate"):
        metrics = compare_models(
            artifacts,
            out,
            dataset=data.dataset,
            root=root,
            split=data.val_split,
            dataset_kwargs=data.kwargs,
            eval_size=data.eval_size,
            cfg=ev,
            tse=params.rdd,
            log=click.echo,
        )
    write_json_atomic(out / "summary.json", summary(metrics))
    return metrics


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline ``dvc metrics show`` prints: mIoU (%) per model."""
    return {"miou": {s: round(100 * r["miou"], 2) for s, r in metrics["models"].items()}}


def _show(result: Any, out_root: str) -> str:
    return (Path(out_root) / "evaluate" / "comparison.md").read_text()


main = stage_command(
    "evaluate",
    run_evaluate,
    _show,
    help="Evaluate the trained models; write metrics, a comparison table, plots and RDD images.",
)


if __name__ == "__main__":
    main()
