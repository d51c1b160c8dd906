"""DVC stage ``evaluate``: compare the teacher and the students on the validation split.

    python -m pipeline.evaluate [--params params.yaml] [--out-root outputs]

Writes ``outputs/evaluate/``:

* ``metrics.json`` – per model: mIoU, per-class IoU, pixel / mean accuracy, parameters, FLOPs,
  CPU latency (DVC metrics);
* ``comparison.md`` – the same as a Markdown table (:func:`rdd.reporting.comparison_table`);
* ``miou.json`` + ``miou.png`` – mIoU per model (a DVC bar plot and a PNG);
* ``vis/rdd_XXXX.png`` – input, ground truth, teacher, student, TFE weight map and TSE mask for
  a few validation frames (:func:`rdd.reporting.save_rdd_visualisations`).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from pipeline._cli import bad_params, out_root_option, params_option, unloadable_files
from pipeline.config import (TRAIN_STAGES, ParamsError, dataset_root, load_params, section,
                             stage_dir)
from rdd.spec import as_hw

LABELS = {"teacher": "teacher", "baseline": "student (no KD)", "kd": "student + KD",
          "tfe_rdd": "student + TFE-RDD", "tse_rdd": "student + RDD"}
MODES = ("whole", "slide", "msflip")


def _int_at_least(v: Any, key: str, lo: int) -> int:
    """``v`` as an integer >= ``lo``, else a :class:`ParamsError` naming ``key``."""
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ParamsError(f"params.yaml: {key} must be an integer >= {lo}, got {v!r}")
    return v


def _size_or_null(v: Any, key: str) -> tuple[int, int] | None:
    """``v`` as a positive ``(H, W)`` (``H`` alone means square) or ``None``."""
    if v is None:
        return None
    items = v if isinstance(v, (list, tuple)) else [v]
    try:
        if any(isinstance(x, bool) or not isinstance(x, int) for x in items):
            raise ValueError
        return as_hw(v)
    except (TypeError, ValueError):
        raise ParamsError(f"params.yaml: {key} must be a positive size [H, W] (or H) or null, "
                          f"got {v!r}") from None


def _options(params: dict[str, Any], out_root: str | Path) -> dict[str, Any]:
    ev = section(params, "evaluate", required=False)
    known = {"models", "latency", "vis_frames", "mode", "crop_size", "batch_size"}
    unknown = sorted(set(ev) - known)
    if unknown:
        raise ParamsError(f"params.yaml: unknown key 'evaluate.{unknown[0]}' "
                          f"(expected one of: {', '.join(sorted(known))})")
    models = ev.get("models", ["teacher", "baseline", "kd", "tse_rdd"])
    if not isinstance(models, list) or not models:
        raise ParamsError(f"params.yaml: evaluate.models must be a non-empty list, got {models!r}")
    for m in models:
        if m not in TRAIN_STAGES:
            raise ParamsError(f"params.yaml: evaluate.models: unknown stage {m!r} "
                              f"(expected some of: {', '.join(TRAIN_STAGES)})")
    artifacts = {m: Path(stage_dir(out_root, m)) / "model.pt" for m in models}
    for m, p in artifacts.items():
        if not p.is_file():
            raise FileNotFoundError(f"evaluate.models: no trained model for stage {m!r} at {p} "
                                    f"(run `dvc repro {m}` first)")
    lat_cfg = ev.get("latency") or {}
    if not isinstance(lat_cfg, dict):
        raise ParamsError(f"params.yaml: evaluate.latency must be a mapping, got {lat_cfg!r}")
    lat_defaults = {"runs": 10, "warmup": 3, "threads": 1}
    unknown = sorted(set(lat_cfg) - set(lat_defaults))
    if unknown:
        raise ParamsError(f"params.yaml: unknown key 'evaluate.latency.{unknown[0]}' "
                          f"(expected one of: {', '.join(sorted(lat_defaults))})")
    lat = {**lat_defaults, **lat_cfg}
    for k, lo in (("runs", 1), ("warmup", 0), ("threads", 1)):
        _int_at_least(lat[k], f"evaluate.latency.{k}", lo)
    mode = ev.get("mode", "whole")
    if mode not in MODES:
        raise ParamsError(f"params.yaml: evaluate.mode must be one of {', '.join(MODES)}, got {mode!r}")
    vis = _int_at_least(ev.get("vis_frames", 4), "evaluate.vis_frames", 0)
    bs = _int_at_least(ev.get("batch_size", 1), "evaluate.batch_size", 1)
    crop_size = _size_or_null(ev.get("crop_size"), "evaluate.crop_size")
    if mode == "slide" and crop_size is None:
        raise ParamsError("params.yaml: evaluate.crop_size is required (a positive [H, W]) "
                          "when evaluate.mode is slide")
    data = section(params, "data")
    eval_size = _size_or_null(data.get("eval_size"), "data.eval_size")
    root = dataset_root(params, out_root)
    if not Path(root).is_dir():
        if data.get("dataset") == "synthetic":
            raise FileNotFoundError(f"data: the synthetic dataset is missing at {root} "
                                    "(run `dvc repro data` first)")
        raise FileNotFoundError(f"params.yaml: data.root: dataset {data.get('dataset')!r} not "
                                f"found, {root!r} is not a folder")
    val_split = data.get("val_split", "val")
    if not isinstance(val_split, str) or not val_split:
        raise ParamsError(f"params.yaml: data.val_split must be a non-empty string, "
                          f"got {val_split!r}")
    kwargs = data.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ParamsError(f"params.yaml: data.kwargs must be a mapping, got {kwargs!r}")
    rdd = section(params, "rdd", required=False)
    return {"artifacts": artifacts, "latency": lat, "mode": mode, "crop_size": crop_size,
            "vis_frames": vis, "batch_size": bs,
            "dataset": data.get("dataset"), "root": root,
            "val_split": val_split, "kwargs": kwargs,
            "eval_size": eval_size,
            "rdd": {"threshold": rdd.get("threshold", 0.7), "min_kept": rdd.get("min_kept", 0.048),
                    "mode": rdd.get("mode", "xor")}}


def run_evaluate(params: dict[str, Any], out_root: str | Path = "outputs") -> dict[str, Any]:
    """Run the evaluate stage in-process; returns the content of ``metrics.json``."""
    import torch

    from rdd.artifacts import load_artifact
    from rdd.data import EvalTransform, build_dataset
    from rdd.evaluation import evaluate
    from rdd.reporting import (comparison_table, miou_plot_rows, model_profile, save_bar_chart,
                               save_rdd_visualisations)
    from rdd.spec import ClassInfo, Normalization, write_json_atomic, write_text_atomic

    with bad_params("evaluate"):
        opts = _options(params, out_root)
    out = Path(out_root) / "evaluate"
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    results: dict[str, dict[str, Any]] = {}
    models: dict[str, Any] = {}
    classes = dataset = None
    for stage, path in opts["artifacts"].items():
        with unloadable_files("evaluate"):
            model, meta = load_artifact(path)
        classes = ClassInfo.from_dict(meta["classes"])
        norm = Normalization.from_dict(meta["normalization"])
        dataset = build_dataset(opts["dataset"], root=opts["root"], split=opts["val_split"],
                                transform=EvalTransform(size=opts["eval_size"], normalization=norm),
                                **opts["kwargs"])
        m = evaluate(model, dataset, classes.num_classes, classes.ignore_index, mode=opts["mode"],
                     device=device, crop_size=opts["crop_size"], batch_size=opts["batch_size"])
        size = opts["eval_size"] or dataset.load(0)[0].shape[:2]
        prof = model_profile(model.cpu(), size, latency_runs=opts["latency"]["runs"],
                             latency_warmup=opts["latency"]["warmup"],
                             threads=opts["latency"]["threads"])
        results[stage] = {"model": meta["model"], "miou": m["miou"], "pixel_acc": m["pixel_acc"],
                          "mean_acc": m.get("mean_acc"), "iou": m["iou"], **prof}
        models[stage] = model
        click.echo(f"evaluate: {stage:9s} mIoU {100 * m['miou']:.2f}%  "
                   f"({prof['params'] / 1e6:.2f} M params, {prof['gflops']:.3g} GFLOPs)")

    labelled = {LABELS[s]: r for s, r in results.items()}
    table = comparison_table(labelled, classes)
    header = (f"# Comparison on {opts['dataset']} / {opts['val_split']} "
              f"({len(dataset)} images, {opts['mode']} inference)\n\n")
    write_text_atomic(out / "comparison.md", header + table)
    write_json_atomic(out / "miou.json", miou_plot_rows(labelled))
    save_bar_chart(labelled, out / "miou.png")

    vis_dir = out / "vis"
    shutil.rmtree(vis_dir, ignore_errors=True)
    vis_dir.mkdir(parents=True)
    student = next((s for s in ("tse_rdd", "tfe_rdd", "kd", "baseline") if s in models), None)
    if opts["vis_frames"] and "teacher" in models and student is not None:
        n = len(dataset)
        k = min(opts["vis_frames"], n)
        indices = sorted({round(j * (n - 1) / max(k - 1, 1)) for j in range(k)})
        teacher_norm = Normalization.from_dict(load_artifact(opts["artifacts"]["teacher"])[1]
                                               ["normalization"])
        vis_ds = build_dataset(opts["dataset"], root=opts["root"], split=opts["val_split"],
                               transform=EvalTransform(size=opts["eval_size"],
                                                       normalization=teacher_norm),
                               **opts["kwargs"])
        save_rdd_visualisations(models["teacher"].to(device), models[student].to(device), vis_ds,
                                vis_dir, indices=indices, **opts["rdd"])

    metrics = {"dataset": opts["dataset"], "split": opts["val_split"], "num_images": len(dataset),
               "mode": opts["mode"],
               "models": {s: {**r, "iou": dict(zip(classes.names, r["iou"]))}
                          for s, r in results.items()}}
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


@click.command()
@params_option
@out_root_option
def main(params_path: str, out_root: str) -> None:
    """Evaluate the trained models; write metrics, a comparison table, plots and RDD images."""
    with bad_params("evaluate"):
        params = load_params(params_path)
    run_evaluate(params, out_root)
    click.echo((Path(out_root) / "evaluate" / "comparison.md").read_text())


if __name__ == "__main__":
    main()
