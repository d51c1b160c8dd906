"""DVC stage ``export``: the RDD student → ONNX FP32 / INT8 (+ TensorRT where available).

    python -m pipeline.export [--params params.yaml] [--out-root outputs] [--stage tse_rdd]

Calls :func:`rdd.export.run_export` on ``outputs/<stage>/model.pt`` with calibration frames from
the train split and parity / accuracy frames from the val split; it writes
``outputs/export/model.onnx``, ``model_int8.onnx`` and ``export_metrics.json`` (TensorRT is
recorded as skipped when unavailable); the stage adds ``summary.json`` (gates and mIoU % per
precision, the DVC metric).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline._cli import bad_params, out_root_option, params_option, unloadable_files
from pipeline.config import STUDENT_STAGES, Params, as_params, load_params, split_datasets, stage_artifact
from rdd.spec import write_json_atomic


def run_export_stage(
    params: Params, out_root: str | Path = "outputs", stage: str = "tse_rdd"
) -> dict[str, Any]:
    """Run the export stage in-process; returns the export metrics."""
    from rdd.export.run import run_export

    with bad_params("export"):  # every check before loading anything
        params = as_params(params)
        artifact = stage_artifact(out_root, stage)
        calib, val = split_datasets(params, out_root)
    out = Path(out_root) / "export"
    with unloadable_files("export"):
        metrics = run_export(artifact, out, calib_dataset=calib, val_dataset=val, cfg=params.export)
    write_json_atomic(out / "summary.json", summary(metrics))
    return metrics


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline ``dvc metrics show`` prints: gates passed, mIoU (%) per precision."""
    return {
        "passed": metrics["passed"],
        "miou": {k: round(100 * v, 2) for k, v in metrics["miou"].items() if v is not None},
    }


@click.command()
@params_option
@out_root_option
@click.option(
    "--stage",
    default="tse_rdd",
    show_default=True,
    type=click.Choice(STUDENT_STAGES),
    help="Which trained student to export.",
)
def main(params_path: str, out_root: str, stage: str) -> None:
    """Export a trained student to ONNX FP32 / INT8 (+ TensorRT when available)."""
    with bad_params("export"):
        params = load_params(params_path)
    metrics = run_export_stage(params, out_root, stage)
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    click.echo("export: " + ", ".join(f"{k}={v}" for k, v in shown.items()))


if __name__ == "__main__":
    main()
