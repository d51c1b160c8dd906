"""Figures of the study reports (matplotlib, Agg backend, written atomically as PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdd.spec import atomic_path
from rdd.study.aggregate import mean_curve

__all__ = ["plot_curves", "plot_curve_panels", "plot_bars", "plot_mask_fractions", "plot_miou_vs_noise"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)


def _arm_curves(ax: Any, summary: Mapping[str, Any], arms: Sequence[str]) -> None:
    """Each arm's mean validation curve over seeds on ``ax``, with a ± std band."""
    for arm in arms:
        steps, m, sd = mean_curve(summary["curves"].get(arm) or {})
        if not steps:
            continue
        m, sd = 100 * m, 100 * sd
        n = sum(1 for c in summary["curves"][arm].values() if c["step"])
        ax.plot(steps, m, label=f"{arm} (n={n})")
        if n > 1:
            ax.fill_between(steps, m - sd, m + sd, alpha=0.2)


def plot_curves(summary: Mapping[str, Any], arms: Sequence[str], path: Path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    _arm_curves(ax, summary, arms)
    ax.set_xlabel("iteration")
    ax.set_ylabel("val mIoU (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_curve_panels(
    summary: Mapping[str, Any], panels: Sequence[tuple[str, Sequence[str]]], path: Path, title: str
) -> None:
    """One panel per training length (``(label, arms)``), mean ± std over seeds per arm, and
    the teacher's curve in a last panel when the summary has it."""
    plt = _plt()
    teacher = (summary.get("teacher") or {}).get("curve") or {}
    n = len(panels) + bool(teacher.get("step"))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.0), squeeze=False, sharey=True)
    for ax, (label, arms) in zip(axes[0], panels):
        _arm_curves(ax, summary, arms)
        ax.set_title(label)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if teacher.get("step"):
        ax = axes[0][-1]
        ax.plot(teacher["step"], np.array(teacher["miou"]) * 100, color="k")
        ax.set_title("teacher")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("val mIoU (%)")
    fig.suptitle(title)
    _save(fig, path)


def plot_bars(summary: Mapping[str, Any], arms: Sequence[str], path: Path, title: str) -> None:
    plt = _plt()
    rows = [(a, summary["arms"][a]) for a in arms if a in summary["arms"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 1.5), 4.0))
    x = np.arange(len(rows))
    ax.bar(
        x,
        [r["miou_mean"] * 100 for _, r in rows],
        yerr=[r["miou_std"] * 100 for _, r in rows],
        capsize=4,
        color="#4c72b0",
    )
    for i, (_, r) in enumerate(rows):
        for v in r["miou_runs"].values():
            ax.plot(i, v * 100, "k.", ms=5)
    ax.set_xticks(x, [f"{a}\n(n={r['n']})" for a, r in rows])
    ax.set_ylim(0, None)
    ax.set_ylabel("val mIoU (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def plot_mask_fractions(
    summary: Mapping[str, Any], arms_modes: Mapping[str, str], path: Path, title: str
) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, mode in arms_modes.items():
        for s, r in sorted((summary["runs"].get(arm) or {}).items()):
            c = r["tse_selected_frac"]
            if c["step"]:
                ax.plot(c["step"], np.array(c["value"]) * 100, label=f"{mode} ({arm}-s{s})", alpha=0.85)
    ax.set_xlabel("iteration")
    ax.set_ylabel("pixels selected by the TSE mask (% of valid)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_miou_vs_noise(
    per_rate: Mapping[str, Any], rates: Sequence[float], arms: Sequence[str], path: Path, title: str
) -> None:
    """Clean-val mIoU (mean ± std over seeds) against the train-label noise rate, per arm."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for a in arms:
        xs = [r for r in rates if a in per_rate[str(r)]["arms"]]
        if xs:
            ax.errorbar(
                [100 * r for r in xs],
                [100 * per_rate[str(r)]["arms"][a]["miou_mean"] for r in xs],
                yerr=[100 * per_rate[str(r)]["arms"][a]["miou_std"] for r in xs],
                marker="o",
                capsize=3,
                label=a,
            )
    ax.set_xlabel("corrupted train labels (%)")
    ax.set_ylabel("clean val mIoU (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
