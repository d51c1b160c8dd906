"""The study reports: the writers that tie aggregation, figures, diagnostics and markdown
together (the markdown of a study: :mod:`rdd.study.sections`).

* :func:`write_study_report` — an arm × seed study: ``summary.json`` (every run, mean ± sample
  std per arm, paired gains, diagnostics), ``metrics.json`` (headline figures for ``dvc
  metrics``), ``miou_by_arm.json`` (the bar chart's data for ``dvc plots``), the markdown report
  and its figures in ``<report stem>/``;
* :func:`write_sweep_report` — the label-noise sweep: one study per noise rate.

The markdown is a pure function of the summary (:func:`markdown_report`, :func:`sweep_markdown`),
so a committed report can be regenerated from its committed ``summary.json``. mIoU values are
fractions in the JSON files and percentages in the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rdd.spec import write_json_atomic, write_text_atomic
from rdd.study.aggregate import summarize_study
from rdd.study.diagnostics import diagnose_study
from rdd.study.figures import plot_bars, plot_curve_panels, plot_curves, plot_mask_fractions
from rdd.study.gaps import LENGTH_METHODS, length_label
from rdd.study.sections import markdown_report

__all__ = ["markdown_report", "write_study_report"]


def _plot_study(summary: Mapping[str, Any], study: Mapping[str, Any], fig_dir: Path) -> None:
    """The study's figures: curves of the main arms, bars of every arm, and the TSE mask fraction
    over training of one run per mask mode (the main ``rdd`` arm first, its first seed)."""
    title = study.get("title", "study")
    plot_curves(summary, list(study["main_arms"]), fig_dir / "miou_curves.png", f"{title}: validation mIoU")
    plot_bars(summary, list(study["arms"]), fig_dir / "miou_bars.png", "final val mIoU, mean ± std")
    lengths = summary.get("lengths") or {}
    if sum(any(x in summary["arms"] for x in g["arms"].values()) for g in lengths.values()) > 1:
        panels = [
            (
                length_label(g),
                [x for base, x in g["arms"].items() if base in LENGTH_METHODS and x in summary["curves"]],
            )
            for _, g in sorted(lengths.items(), key=lambda kv: max(kv[1]["iters"] or [0]))
            if g["iters"]
        ]
        plot_curve_panels(
            summary,
            panels,
            fig_dir / "miou_curves_lengths.png",
            f"{title}: validation mIoU, mean ± std over seeds",
        )
    modes = {x: r["tse_mode"] for x, r in summary["arms"].items() if r.get("tse_mode")}
    pick: dict[str, str] = {}
    for x in sorted(modes, key=lambda k: k != "rdd"):
        if modes[x] not in pick.values():
            pick[x] = modes[x]
    if pick:
        first = {
            x: {
                s: r
                for s, r in summary["runs"][x].items()
                if s == str(min(int(k) for k in summary["runs"][x]))
            }
            for x in pick
        }
        plot_mask_fractions(
            {"runs": first},
            pick,
            fig_dir / "tse_mask_fraction.png",
            "fraction of pixels the TSE mask selects",
        )


def _headline_metrics(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The small metrics file for ``dvc metrics show/diff``."""
    return {
        "teacher_miou": (summary.get("teacher") or {}).get("miou"),
        **{f"{x}_miou_mean": r["miou_mean"] for x, r in summary["arms"].items()},
        **{
            f"{x}_miou_std": r["miou_std"]
            for x, r in summary["arms"].items()
            if not math.isnan(r["miou_std"])
        },
        **{f"{k}_paired": g["paired_mean"] for k, g in summary["gains"].items() if g},
    }


def write_study_report(
    params: Mapping[str, Any],
    study: Mapping[str, Any],
    *,
    out_root: str | Path,
    report_path: str | Path,
    summary_path: str | Path,
    diagnostics_arms: Sequence[str] = ("kd", "rdd"),
    diagnostics_seed: int | None = None,
    data_root: str | Path | None = None,
    models_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Summarise, plot, diagnose and write the report; returns ``{"runs", "missing"}``.

    ``data_root`` is the dataset folder (for the difficulty diagnostics on the val split;
    default ``params["data"]["root"]``); ``models_dir`` the study's committed ONNX files, which
    stand in for students whose weights are not on this machine."""
    out_root, report_path, summary_path = Path(out_root), Path(report_path), Path(summary_path)
    summary = summarize_study(study, out_root)
    fig_dir = report_path.parent / report_path.stem
    fig_dir.mkdir(parents=True, exist_ok=True)
    _plot_study(summary, study, fig_dir)
    # DVC bar-chart data
    bars = [
        {"arm": x, "miou": round(100 * r["miou_mean"], 3), "std": round(100 * r["miou_std"], 3), "n": r["n"]}
        for x, r in summary["arms"].items()
    ]
    write_json_atomic(summary_path.parent / "miou_by_arm.json", bars)
    diagnostics = diagnose_study(
        params,
        out_root,
        summary,
        diagnostics_arms,
        diagnostics_seed,
        data_root if data_root is not None else params["data"].get("root"),
        models_dir=models_dir,
    )
    summary["diagnostics"] = diagnostics
    write_json_atomic(summary_path, {k: v for k, v in summary.items() if k != "curves"})
    write_json_atomic(summary_path.parent / "metrics.json", _headline_metrics(summary))
    write_text_atomic(
        report_path,
        markdown_report(
            summary,
            params,
            study,
            fig_dir=fig_dir.name,
            diagnostics=diagnostics,
            notes=study.get("notes", ""),
        ),
    )
    n = sum(len(v) for v in summary["runs"].values())
    return {"runs": n, "missing": len(summary["missing"])}
