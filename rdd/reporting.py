"""Model comparison and RDD visualisations for the pipeline's ``evaluate`` stage.

* :func:`model_profile` – parameters, FLOPs (``torch.utils.flop_counter``) and CPU latency;
* :func:`comparison_table` – a Markdown table of mIoU / accuracy / size / speed, plus per-class IoU;
* :func:`miou_plot_rows` / :func:`save_bar_chart` – the mIoU-per-model bar chart (DVC plot data
  and a PNG);
* :func:`rdd_maps` / :func:`save_rdd_figure` / :func:`save_rdd_visualisations` – what RDD looks
  at on a validation frame: input, ground truth, teacher and student predictions, the TFE weight
  map ``w = exp(-KL(p_aux ‖ p_main))`` and the TSE XOR mask (Liang et al., arXiv 2407.03719).

Tables and plots need only numpy / matplotlib; torch is imported lazily by the model functions.
Every file is written atomically (:func:`rdd.spec.atomic_path`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rdd.runtime.timing import WARMUP_S, measure
from rdd.spec import ClassInfo, as_hw, atomic_path, colorize

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "cpu_latency",
    "model_profile",
    "comparison_table",
    "miou_plot_rows",
    "save_bar_chart",
    "rdd_maps",
    "save_rdd_figure",
    "save_rdd_visualisations",
]


# --------------------------------------------------------------------------- model profile
def cpu_latency(
    model: torch.nn.Module,
    input_size: int | Sequence[int],
    *,
    warmup: int = 3,
    runs: int = 10,
    threads: int | None = None,
    warmup_s: float = WARMUP_S,
    duration_s: float = 0.0,
) -> dict[str, float]:
    """Wall-clock latency (ms) of an eval-mode forward pass, batch 1, on the CPU.

    Measured with the project's protocol (:func:`rdd.runtime.timing.measure`): at least
    ``warmup`` untimed calls and ``warmup_s`` seconds of warm-up, then at least ``runs`` timed
    calls and ``duration_s`` seconds. Returns its statistics (``mean``, ``p50``, ``p90``, ``p99``,
    ``min``, ``runs``, ``throughput``, ...) in milliseconds; ``threads`` temporarily sets
    ``torch.set_num_threads``.
    """
    import copy

    import torch

    if runs < 1 or warmup < 0:
        raise ValueError(f"cpu_latency: runs must be >= 1 and warmup >= 0, got {runs}, {warmup}")
    m = copy.deepcopy(model).cpu().eval()
    x = torch.zeros(1, 3, *as_hw(input_size))
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        with torch.inference_mode():
            return measure(
                lambda: m(x), warmup_s=warmup_s, warmup_runs=warmup, duration_s=duration_s, min_runs=runs
            )
    finally:
        torch.set_num_threads(old_threads)


def model_profile(
    model: torch.nn.Module,
    input_size: int | Sequence[int],
    *,
    latency_runs: int = 10,
    latency_warmup: int = 3,
    threads: int | None = None,
) -> dict[str, Any]:
    """``{"params", "flops", "gflops", "input_size", "cpu_latency_ms": {...}}`` of ``model``.

    ``latency_runs=0`` skips the latency measurement (``cpu_latency_ms`` is then ``None``).
    """
    from rdd.models import count_flops, count_params

    flops = count_flops(model, input_size)
    lat = (
        cpu_latency(model, input_size, warmup=latency_warmup, runs=latency_runs, threads=threads)
        if latency_runs > 0
        else None
    )
    return {
        "params": int(count_params(model)),
        "flops": flops,
        "gflops": flops / 1e9,
        "input_size": list(as_hw(input_size)),
        "cpu_latency_ms": lat,
    }


# --------------------------------------------------------------------------- tables and plots
def _pct(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{100.0 * float(v):.{digits}f}"


def comparison_table(
    results: Mapping[str, Mapping[str, Any]],
    classes: ClassInfo | Sequence[str] | None = None,
    *,
    per_class: bool = True,
) -> str:
    """Markdown comparison of evaluated models.

    Args:
        results: ``{row name: metrics}`` in display order, each metrics dict holding ``miou``,
            ``pixel_acc`` (fractions), optional ``iou`` (per-class list, ``None`` = absent),
            ``model`` (architecture name), ``params``, ``gflops``, ``cpu_latency_ms`` (from
            :func:`model_profile`).
        classes: class names for the per-class table (omitted when ``None``).
        per_class: add a second table of per-class IoU (%).

    Returns:
        the Markdown text; mIoU, accuracies and IoUs are printed as percentages.
    """
    if not results:
        raise ValueError("comparison_table: no results to compare")
    lines = [
        "| model | architecture | mIoU (%) | pixel acc. (%) | params (M) | GFLOPs | CPU latency (ms) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in results.items():
        if "miou" not in m:
            raise ValueError(f"comparison_table: results[{name!r}] has no 'miou'")
        lat = m.get("cpu_latency_ms")
        lat_s = f"{lat['mean']:.1f}" if isinstance(lat, Mapping) and "mean" in lat else "–"
        params = f"{m['params'] / 1e6:.2f}" if m.get("params") is not None else "–"
        gflops = f"{m['gflops']:.3g}" if m.get("gflops") is not None else "–"
        lines.append(
            f"| {name} | {m.get('model', '–')} | {_pct(m['miou'])} | "
            f"{_pct(m.get('pixel_acc'))} | {params} | {gflops} | {lat_s} |"
        )
    text = "\n".join(lines) + "\n"
    if per_class and classes is not None:
        names = list(classes.names if isinstance(classes, ClassInfo) else classes)
        text += (
            "\nPer-class IoU (%):\n\n| model | "
            + " | ".join(names)
            + " |\n|---|"
            + "---:|" * len(names)
            + "\n"
        )
        for name, m in results.items():
            iou = list(m.get("iou") or [])
            if iou and len(iou) != len(names):
                raise ValueError(
                    f"comparison_table: results[{name!r}]['iou'] has {len(iou)} "
                    f"values for {len(names)} classes"
                )
            cells = [_pct(v, 1) for v in iou] if iou else ["–"] * len(names)
            text += f"| {name} | " + " | ".join(cells) + " |\n"
    return text


def miou_plot_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{"model": name, "miou": percent}`` for a DVC bar plot (``x: miou, y: model``)."""
    return [{"model": name, "miou": round(100.0 * float(m["miou"]), 3)} for name, m in results.items()]


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_bar_chart(
    results: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    title: str = "mIoU on the validation split",
) -> Path:
    """A horizontal bar chart (PNG) of mIoU (%) per model."""
    plt = _pyplot()
    rows = miou_plot_rows(results)
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(rows)), dpi=100)
    try:
        names = [r["model"] for r in rows][::-1]
        vals = [r["miou"] for r in rows][::-1]
        bars = ax.barh(names, vals, color="#4c72b0")
        ax.bar_label(bars, fmt="%.1f", padding=3)
        ax.set_xlabel("mIoU (%)")
        ax.set_xlim(0, max(100.0, max(vals) * 1.1))
        ax.set_title(title)
        return _save_png(fig, path)
    finally:
        plt.close(fig)


def _save_png(fig: Any, path: str | os.PathLike) -> Path:
    """Lay out ``fig`` and write it as a PNG atomically."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


# --------------------------------------------------------------------------- RDD visualisation
def rdd_maps(
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    threshold: float = 0.7,
    min_kept: float = 0.048,
    mode: str = "xor",
    ignore_index: int = 255,
) -> dict[str, np.ndarray]:
    """The per-pixel quantities RDD computes on a batch (no gradients).

    Args:
        teacher: a model with an auxiliary head (``model(x, with_aux=True)["aux"]``).
        student: the student model.
        x: ``N×3×H×W`` normalised images; target: ``N×H×W`` train ids (ignore ``ignore_index``).

    Returns:
        numpy arrays, each ``N×H×W``: ``teacher_pred`` / ``student_pred`` (uint8 argmax),
        ``tfe_weights`` (float32 in (0, 1], :func:`rdd.losses.tfe_weights` of the teacher's main
        and aux heads) and ``tse_mask`` (bool, :func:`rdd.losses.tse_mask` with ``mode``).
    """
    import torch

    from rdd.losses import tfe_weights, tse_mask

    was = teacher.training, student.training
    teacher.eval()
    student.eval()
    try:
        if not getattr(teacher, "has_aux", False):
            raise ValueError("rdd_maps: the teacher has no auxiliary head (TFE-RDD needs one)")
        with torch.no_grad():
            t = teacher(x, with_aux=True)
            s_out = student(x)["out"]
            w = tfe_weights(t["out"], t["aux"])  # N×H×W
            m = tse_mask(
                s_out,
                t["out"],
                target,
                threshold=threshold,
                min_kept=min_kept,
                ignore_index=ignore_index,
                mode=mode,
            )  # N×H×W bool
    finally:
        teacher.train(was[0])
        student.train(was[1])
    return {
        "teacher_pred": t["out"].argmax(1).to(torch.uint8).cpu().numpy(),
        "student_pred": s_out.argmax(1).to(torch.uint8).cpu().numpy(),
        "tfe_weights": w.float().cpu().numpy(),
        "tse_mask": m.cpu().numpy().astype(bool),
    }


def save_rdd_figure(
    path: str | os.PathLike,
    *,
    image: np.ndarray,
    gt: np.ndarray,
    teacher_pred: np.ndarray,
    student_pred: np.ndarray,
    tfe_weights: np.ndarray,
    tse_mask: np.ndarray,
    classes: ClassInfo,
    title: str | None = None,
    mode: str = "xor",
) -> Path:
    """A 2×3 PNG panel: input | ground truth | teacher / student | TFE weights | TSE mask.

    ``image`` is uint8 ``H×W×3`` RGB; the label maps are ``H×W`` train ids; ``tfe_weights`` is
    float ``H×W`` in [0, 1]; ``tse_mask`` is bool ``H×W``. Shapes must agree.
    """
    hw = image.shape[:2]
    for name, a in (
        ("gt", gt),
        ("teacher_pred", teacher_pred),
        ("student_pred", student_pred),
        ("tfe_weights", tfe_weights),
        ("tse_mask", tse_mask),
    ):
        if a.shape != hw:
            raise ValueError(f"save_rdd_figure: {name} has shape {a.shape}, expected {hw}")
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5 * hw[0] / hw[1] + 0.8), dpi=100)
    try:
        panels = [
            ("input", image, {}),
            ("ground truth", colorize(gt, classes), {}),
            ("teacher", colorize(teacher_pred, classes), {}),
            ("student", colorize(student_pred, classes), {}),
            ("TFE weight exp(-KL(aux‖main))", tfe_weights, {"cmap": "magma", "vmin": 0, "vmax": 1}),
            (
                f"TSE mask ({mode}), {100 * tse_mask.mean():.1f}% px",
                tse_mask.astype(np.uint8),
                {"cmap": "gray", "vmin": 0, "vmax": 1},
            ),
        ]
        for ax, (label, arr, kw) in zip(axes.ravel(), panels):
            im = ax.imshow(arr, interpolation="nearest", **kw)
            ax.set_title(label, fontsize=9)
            ax.axis("off")
            if label.startswith("TFE"):
                fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
        if title:
            fig.suptitle(title, fontsize=10)
        return _save_png(fig, path)
    finally:
        plt.close(fig)


def save_rdd_visualisations(
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    dataset: Any,
    out_dir: str | os.PathLike,
    *,
    indices: Sequence[int],
    threshold: float = 0.7,
    min_kept: float = 0.048,
    mode: str = "xor",
    prefix: str = "rdd",
) -> list[Path]:
    """:func:`save_rdd_figure` for ``dataset`` samples ``indices`` → ``out_dir/{prefix}_{i}.png``.

    ``dataset`` follows :mod:`rdd.data` (``load(i)`` gives the raw image / mask, ``ds[i]`` the
    transformed tensors, ``classes``). Predictions are resized to the raw frame for display.
    """
    import torch
    import torch.nn.functional as F

    out_dir = Path(out_dir)
    device = next(student.parameters()).device
    paths = []
    for i in indices:
        image, gt = dataset.load(int(i))
        x, y = dataset[int(i)]
        maps = rdd_maps(
            teacher,
            student,
            x[None].to(device),
            torch.as_tensor(y)[None].to(device),
            threshold=threshold,
            min_kept=min_kept,
            mode=mode,
            ignore_index=dataset.classes.ignore_index,
        )
        hw = gt.shape[:2]
        if maps["teacher_pred"].shape[1:] != hw:  # eval size differs from the raw frame

            def rs(a: np.ndarray, nearest: bool) -> np.ndarray:
                t = torch.as_tensor(a[None].astype(np.float32))
                return F.interpolate(
                    t,
                    size=hw,  # noqa: B023 — rs is called in this iteration only
                    mode="nearest" if nearest else "bilinear",
                    align_corners=None if nearest else False,
                )[0, 0].numpy()

            maps = {
                "teacher_pred": rs(maps["teacher_pred"], True).astype(np.uint8),
                "student_pred": rs(maps["student_pred"], True).astype(np.uint8),
                "tfe_weights": rs(maps["tfe_weights"], False),
                "tse_mask": rs(maps["tse_mask"], True) > 0.5,
            }
        else:
            maps = {k: v[0] for k, v in maps.items()}
        paths.append(
            save_rdd_figure(
                out_dir / f"{prefix}_{int(i):04d}.png",
                image=image,
                gt=np.asarray(gt),
                **maps,
                classes=dataset.classes,
                mode=mode,
                title=f"validation frame {int(i)}",
            )
        )
    return paths
