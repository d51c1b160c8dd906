"""Trained models side by side on a validation split (the library half of the ``evaluate`` stage).

:func:`compare_models` loads each artifact once, scores it with :func:`rdd.evaluation.evaluate`,
profiles it (:func:`rdd.reporting.model_profile`) and writes to ``out_dir``:

* ``metrics.json`` – per model: mIoU, per-class IoU, pixel / mean accuracy, parameters, FLOPs,
  CPU latency;
* ``comparison.md`` – the same as a Markdown table (:func:`rdd.reporting.comparison_table`);
* ``miou.json`` + ``miou.png`` – mIoU per model (a DVC bar plot and a PNG);
* ``vis/rdd_XXXX.png`` – input, ground truth, teacher, student, TFE weight map and TSE mask for
  a few validation frames (:func:`rdd.reporting.save_rdd_visualisations`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rdd.config.params import EvaluateConfig
from rdd.config.sections import TSEConfig

__all__ = ["compare_models", "LABELS"]

LABELS = {
    "teacher": "teacher",
    "baseline": "student (no KD)",
    "kd": "student + KD",
    "tfe_rdd": "student + TFE-RDD",
    "tse_rdd": "student + RDD",
}


def compare_models(
    artifacts: Mapping[str, str | Path],
    out_dir: str | Path,
    *,
    dataset: str,
    root: str | Path,
    split: str,
    dataset_kwargs: Mapping[str, Any] | None = None,
    eval_size: tuple[int, int] | None = None,
    cfg: EvaluateConfig = EvaluateConfig(),
    tse: TSEConfig = TSEConfig(),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score, profile and compare ``artifacts`` (name → ``model.pt``); returns ``metrics.json``.

    Args:
        artifacts: stage name (a key of :data:`LABELS`) → artifact path, in table order.
        out_dir: folder written (created).
        dataset, root, split, dataset_kwargs: the validation split (:func:`rdd.data.build_dataset`).
        eval_size: ``(H, W)`` frames are resized to (``None``: native size).
        cfg: inference mode, latency protocol and figures (``params.yaml``: ``evaluate``).
        tse: the TSE mask drawn in the figures (``params.yaml``: ``rdd``).
        log: one line per model.
    """
    import torch

    from rdd.artifacts import load_artifact
    from rdd.data import EvalTransform, build_dataset
    from rdd.evaluation import evaluate
    from rdd.reporting import (
        comparison_table,
        miou_plot_rows,
        model_profile,
        save_bar_chart,
        save_rdd_visualisations,
    )
    from rdd.spec import ClassInfo, Normalization, write_json_atomic, write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kwargs = dict(dataset_kwargs or {})

    results: dict[str, dict[str, Any]] = {}
    models: dict[str, Any] = {}
    datasets: dict[str, Any] = {}
    classes = ds = None
    for stage, path in artifacts.items():
        model, meta = load_artifact(path)
        classes = ClassInfo.from_dict(meta["classes"])
        norm = Normalization.from_dict(meta["normalization"])
        ds = build_dataset(
            dataset,
            root=root,
            split=split,
            transform=EvalTransform(size=eval_size, normalization=norm),
            **kwargs,
        )
        m = evaluate(
            model,
            ds,
            classes.num_classes,
            classes.ignore_index,
            mode=cfg.mode,
            device=device,
            crop_size=cfg.crop_size,
            batch_size=cfg.batch_size,
        )
        size = tuple(eval_size or ds.load(0)[0].shape[:2])
        prof = model_profile(model.cpu(), size, latency_runs=0)
        if cfg.latency.runs > 0:  # the project's one latency harness, as rdd-bench times builds
            from rdd.runtime.backends import open_build
            from rdd.runtime.measure.harness import time_builds

            st = time_builds(
                {"m": open_build(path, backend="torch", threads=cfg.latency.threads)},
                size,
                warmup_runs=cfg.latency.warmup,
                min_runs=cfg.latency.runs,
                duration_s=0.0,
                rounds=1,
            )["m"]
            prof["cpu_latency_ms"] = {k: v for k, v in st.items() if k != "round_p50"}
        results[stage] = {
            "model": meta["model"],
            "miou": m["miou"],
            "pixel_acc": m["pixel_acc"],
            "mean_acc": m.get("mean_acc"),
            "iou": m["iou"],
            **prof,
        }
        models[stage], datasets[stage] = model, ds
        log(
            f"evaluate: {stage:9s} mIoU {100 * m['miou']:.2f}%  "
            f"({prof['params'] / 1e6:.2f} M params, {prof['gflops']:.3g} GFLOPs)"
        )

    labelled = {LABELS[s]: r for s, r in results.items()}
    table = comparison_table(labelled, classes)
    header = f"# Comparison on {dataset} / {split} ({len(ds)} images, {cfg.mode} inference)\n\n"
    write_text_atomic(out / "comparison.md", header + table)
    write_json_atomic(out / "miou.json", miou_plot_rows(labelled))
    save_bar_chart(labelled, out / "miou.png")

    vis_dir = out / "vis"
    shutil.rmtree(vis_dir, ignore_errors=True)
    vis_dir.mkdir(parents=True)
    student = next((s for s in ("tse_rdd", "tfe_rdd", "kd", "baseline") if s in models), None)
    if cfg.vis_frames and "teacher" in models and student is not None:
        n = len(ds)
        k = min(cfg.vis_frames, n)
        indices = sorted({round(j * (n - 1) / max(k - 1, 1)) for j in range(k)})
        save_rdd_visualisations(
            models["teacher"].to(device),
            models[student].to(device),
            datasets["teacher"],
            vis_dir,
            indices=indices,
            threshold=tse.threshold,
            min_kept=tse.min_kept,
            mode=tse.mode,
        )

    metrics = {
        "dataset": dataset,
        "split": split,
        "num_images": len(ds),
        "mode": cfg.mode,
        "models": {s: {**r, "iou": dict(zip(classes.names, r["iou"]))} for s, r in results.items()},
    }
    write_json_atomic(out / "metrics.json", metrics)
    return metrics
