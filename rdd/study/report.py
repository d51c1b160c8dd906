"""The study reports: markdown (one function per section) and the writers that tie
aggregation, figures, diagnostics and markdown together.

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

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rdd.spec import write_json_atomic, write_text_atomic
from rdd.study.aggregate import length_variants, paired_diff, summarize_study
from rdd.study.diagnostics import diagnose_study
from rdd.study.figures import plot_bars, plot_curve_panels, plot_curves, plot_mask_fractions
from rdd.study.markdown import paired, pct, pm, signed

__all__ = ["markdown_report", "write_study_report"]


# --------------------------------------------------------------------------- study report


def _setup_section(
    summary: Mapping[str, Any], params: Mapping[str, Any], study: Mapping[str, Any]
) -> list[str]:
    t = summary.get("teacher") or {}
    st, te = params.get("student", {}), params.get("teacher", {})
    data = params.get("data", {})
    return [
        "## Setup",
        "",
        f"- Teacher: `{te.get('model', {}).get('name')}` {te.get('model', {}).get('kwargs')}, "
        f"{te.get('optim', {}).get('iters')} iterations"
        + (f", {t.get('params', 0) / 1e6:.2f} M params" if t.get("params") else "")
        + ".",
        f"- Student (every arm): `{st.get('model', {}).get('name')}` "
        f"{st.get('model', {}).get('kwargs')}, "
        f"optim {st.get('optim')}, aux weight {st.get('loss', {}).get('aux_weight')}.",
        f"- Data: `{data.get('dataset')}` {data.get('train_split')} → {data.get('val_split')}; "
        f"crops {data.get('crop_size')} after scaling by {data.get('scale_range')} of the native "
        f"frame, flip {data.get('flip')}, jitter {data.get('jitter')}, "
        f"batch {data.get('batch_size')}; "
        f"evaluated at {data.get('eval_size') or 'native size'}.",
        f"- KD: pixel KD {params.get('kd')}; RDD: {params.get('rdd')}.",
        f"- Seeds: {study['seeds']} for {', '.join(study['main_arms'])}"
        + _extra_seeds(summary, study)
        + "; ablations: the seeds listed.",
        "",
    ]


def _extra_seeds(summary: Mapping[str, Any], study: Mapping[str, Any]) -> str:
    """``", and seeds [3, 4] for baseline, kd"``: the main arms' runs beyond ``study.seeds``
    (``""`` when there are none), grouped by their extra seeds."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for arm in study["main_arms"]:
        extra = sorted(set((summary.get("arms", {}).get(arm) or {}).get("seeds", [])) - set(study["seeds"]))
        if extra:
            groups.setdefault(tuple(extra), []).append(arm)
    return "".join(f", and seeds {list(k)} for {', '.join(v)}" for k, v in groups.items())


def _main_section(
    summary: Mapping[str, Any], study: Mapping[str, Any], rows: Sequence[str], fig_dir: str
) -> list[str]:
    a, t = summary["arms"], summary.get("teacher") or {}
    L = [
        "## Main result",
        "",
        "| model | runs | val mIoU (%) mean ± std | every run (seed order) | ONNX Runtime mIoU (mean) | "
        "Δ vs baseline | Δ vs KD | s / iter |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    if t:
        L.append(
            f"| teacher `{t.get('model')}` | 1 | {pct(t.get('miou'))} | – | – | – | – | "
            f"{t.get('time_per_iter_s') or math.nan:.2f} |"
        )
    for x in rows:
        if x not in a:
            continue
        r = a[x]
        base_b, base_k = _reference(summary, x, "baseline"), _reference(summary, x, "kd")
        dv_b = paired_diff(summary["runs"], x, base_b) if x != base_b else None
        dv_k = paired_diff(summary["runs"], x, base_k) if x not in (base_k, base_b) else None
        runs = ", ".join(f"{100 * v:.2f}" for v in r["miou_runs"].values())

        def delta(g: Mapping[str, Any] | None) -> str:
            if not g:
                return "–"
            n = len(g["paired_seeds"])
            return signed(g["paired_mean"]) + (f" (n={n})" if n != r["n"] or n == 1 else "")  # noqa: B023

        L.append(
            f"| {x} | {r['n']} | {pm(r['miou_mean'], r['miou_std'])} | {runs} | "
            f"{pct(r['miou_onnx_mean'])} | {delta(dv_b)} | {delta(dv_k)} | "
            f"{r['time_per_iter_s'] or math.nan:.3f} |"
        )
    pcv = (study.get("paper") or {}).get("camvid") or {}
    if pcv:
        L.append(
            "| *paper, CamVid (R101 → R18, ImageNet-pretrained)* | – | "
            + " · ".join(f"{k} {v}" for k, v in pcv.items())
            + " | – | – | "
            + (f"{pcv['rdd'] - pcv['baseline']:+.2f} (RDD)" if {"rdd", "baseline"} <= set(pcv) else "–")
            + " | – | – |"
        )
    L += [
        "",
        "Δ columns are paired by seed (mean of per-seed differences over the seeds both "
        "arms have; n is shown where that is not every run of the row) against the baseline "
        "and KD arm of the row's own training length. s / iter is measured "
        "inside each run; see *Cost* for why it is only indicative.",
        "",
    ]
    g = summary["gains"]
    for key, label in (
        ("rdd_vs_kd", "RDD − KD"),
        ("rdd_vs_baseline", "RDD − baseline"),
        ("kd_vs_baseline", "KD − baseline"),
    ):
        v = g.get(key)
        if v and v["paired_seeds"]:
            L.append(
                f"- {label}, paired by seed over seeds {v['paired_seeds']}: "
                f"{paired(v)} points "
                f"({v['paired_wins']} of {len(v['paired_seeds'])} seeds positive)."
            )
    L.append("")
    L += [
        f"![validation mIoU per arm]({fig_dir}/miou_curves.png)",
        "",
        f"![mean ± std per arm]({fig_dir}/miou_bars.png)",
        "",
    ]
    return L


def _reference(summary: Mapping[str, Any], arm: str, base: str) -> str:
    """The arm ``base`` at ``arm``'s training length (``kd_long`` → ``baseline_long``)."""
    for group in (summary.get("lengths") or {}).values():
        if arm in group["arms"].values():
            return group["arms"].get(base, base)
    return base


_LENGTH_METHODS = ("baseline", "kd", "rdd", "or")  # compared at every training length
_GAP_LABELS = {
    ("rdd", "kd"): "RDD − KD",
    ("rdd", "baseline"): "RDD − baseline",
    ("kd", "baseline"): "KD − baseline",
    ("rdd", "or"): "RDD (XOR) − RDD-OR",
}


def _gap_cell(g: Mapping[str, Any] | None) -> str:
    """A paired gain with its spread, t test and sign count: ``+1.26 ± 0.79 (t = 2.77, df 2,
    p = 0.11; 3/3 > 0)``."""
    if not g or not g["paired_seeds"]:
        return "–"
    n = len(g["paired_seeds"])
    t = g.get("t")
    test = "" if t is None or math.isnan(t) else f"t = {t:.2f}, df {g['df']}, p = {g['p']:.3f}; "
    return f"{paired(g)} ({test}{g['paired_wins']}/{n} > 0)"


def _length_label(group: Mapping[str, Any]) -> str:
    it = group.get("iters") or []
    return (" / ".join(str(i) for i in it) + " it") if it else "–"


def _lengths_section(summary: Mapping[str, Any], fig_dir: str) -> list[str]:
    """Each method at every training length: mIoU, the paired gaps with their t tests, the share
    of the teacher − baseline gap recovered and how flat the curves are at the end."""
    lengths = {
        k: v
        for k, v in (summary.get("lengths") or {}).items()
        if any(a in summary["arms"] for a in v["arms"].values())
    }
    if len(lengths) < 2:
        return []
    a = summary["arms"]
    order = sorted(lengths, key=lambda k: (max(lengths[k]["iters"] or [0]), k))
    heads = [_length_label(lengths[k]) for k in order]
    methods = [m for m in _LENGTH_METHODS if any(m in lengths[k]["arms"] for k in order)]
    count = {2: "Two", 3: "Three", 4: "Four"}.get(len(order), str(len(order)))
    L = [
        f"## {count} training lengths",
        "",
        "The same arms on the same recipe, seeds and initial weights, trained for "
        + ", ".join(heads[:-1])
        + " and "
        + heads[-1]
        + " (poly LR over each length, warm-up scaled with it). "
        "val mIoU (%), mean ± std over seeds (n):",
        "",
        "| arm | " + " | ".join(heads) + " |",
        "|---|" + "---:|" * len(order),
    ]
    for m in methods:
        cells = []
        for k in order:
            x = lengths[k]["arms"].get(m)
            r = a.get(x) if x else None
            cells.append("–" if r is None else f"{pm(r['miou_mean'], r['miou_std'])} (n={r['n']})")
        L.append(f"| {m} | " + " | ".join(cells) + " |")
    t = summary.get("teacher") or {}
    if t.get("miou") is not None:
        L.append(f"| teacher | {pct(t['miou'])} (one model, {t.get('iters')} it) |" + " |" * (len(order) - 1))
    L += [
        "",
        "Paired gaps in points: mean ± std of the per-seed differences, the paired t "
        "statistic (df = seeds − 1) with its two-sided p, and how many seeds are positive:",
        "",
        "| gap | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(order),
    ]
    for (x, y), label in _GAP_LABELS.items():
        cells = [_gap_cell(summary["gains"].get(f"{x}{k}_vs_{y}{k}")) for k in order]
        if any(c != "–" for c in cells):
            L.append(f"| {label} | " + " | ".join(cells) + " |")
    rec = summary.get("gap_recovered") or {}
    rows = []
    for m in ("kd", "rdd", "or"):
        cells = []
        for k in order:
            v = rec.get(lengths[k]["arms"].get(m, ""))
            cells.append("–" if not v else pm(v["mean"], v["std"]) + "%")
        if any(c != "–" for c in cells):
            rows.append(f"| {m} | " + " | ".join(cells) + " |")
    if rows:
        L += [
            "",
            "Share of the teacher − baseline gap recovered, per seed "
            "`(arm − baseline) / (teacher − baseline)`, mean ± std (%):",
            "",
            "| arm | " + " | ".join(heads) + " |",
            "|---|" + "---:|" * len(order),
            *rows,
        ]
    L += [
        "",
        "How flat each mean validation curve is over the last fifth of its training "
        "(range = max − min of the evaluated points there; change = last − first), points:",
        "",
        "| curve | steps | range | change | last |",
        "|---|---|---:|---:|---:|",
    ]
    tails = [("teacher", t.get("curve_tail"))]
    for k in order:
        tails += [(x, lengths[k]["curve_tail"].get(x)) for x in lengths[k]["arms"].values()]
    for nm, c in tails:
        if c:
            L.append(
                f"| {nm} | {c['from_step']}–{c['to_step']} ({c['points']} evals) | "
                f"{pct(c['range'])} | {signed(c['change'])} | {pct(c['last'])} |"
            )
    L += ["", f"![validation curves at each training length]({fig_dir}/miou_curves_lengths.png)", ""]
    return L


def _rdd_adds_section(summary: Mapping[str, Any], study: Mapping[str, Any]) -> list[str]:
    """What RDD adds to each KD method of the study (arms that differ only by RDD, paired by
    seed): the paper's Table 8 question, and the answer a user choosing a method needs."""
    adds = {
        k: v
        for k, v in (summary.get("rdd_adds") or {}).items()
        if v.get("paired_seeds") and v["with"] in study["main_arms"]
    }
    if not adds:
        return []
    a = summary["arms"]
    L = [
        "## What RDD adds to each distillation method",
        "",
        "Arms that differ only by RDD (TFE for the first share of the iterations, then TSE with "
        "the arm's mask), paired by seed: mean ± std of the per-seed differences in points, the "
        "paired t test, and how many seeds RDD wins:",
        "",
        "| without RDD | with RDD | without: mIoU (%) | with: mIoU (%) | RDD adds | seeds > 0 |",
        "|---|---|---:|---:|---|---:|",
    ]
    for v in adds.values():
        w, wo = a[v["with"]], a[v["without"]]
        L.append(
            f"| {v['without']} | {v['with']} | {pm(wo['miou_mean'], wo['miou_std'])} "
            f"(n={wo['n']}) | {pm(w['miou_mean'], w['miou_std'])} (n={w['n']}) | "
            f"{_gap_cell(v)} | {v['paired_wins']}/{len(v['paired_seeds'])} |"
        )
    L.append("")
    return L


def _per_class_section(summary: Mapping[str, Any], main: Sequence[str]) -> list[str]:
    a, t = summary["arms"], summary.get("teacher") or {}
    names = summary.get("class_names")
    rows = [("teacher", t.get("iou"))] + [(x, a[x]["iou_mean"]) for x in main if x in a]
    k = max((len(v) for _, v in rows if v), default=0)
    if not k:
        return []
    names = names or [str(i) for i in range(k)]
    L = [
        "### Per-class IoU (%), mean over seeds",
        "",
        "| model | " + " | ".join(names[:k]) + " |",
        "|---|" + "---:|" * k,
    ]
    for nm, v in rows:
        if v:
            L.append(f"| {nm} | " + " | ".join(pct(x, 1) for x in v) + " |")
    L.append("")
    return L


def _ablation_section(
    summary: Mapping[str, Any], params: Mapping[str, Any], study: Mapping[str, Any], ablations: Sequence[str]
) -> list[str]:
    if not ablations:
        return []
    a = summary["arms"]
    pc = (study.get("paper") or {}).get("cityscapes") or {}
    L = [
        "## Ablations",
        "",
        "Paper figures are Cityscapes (DeepLabV3-R101 → R18, ImageNet-pretrained, 40k "
        "iterations); ours are this study's schedule. Compare the *ordering*, not the values.",
        "",
        "| arm | what changes | ours: val mIoU (%) | runs | Δ vs our RDD (same seeds) | "
        "paper (Cityscapes) | Δ vs paper RDD |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for x in ["rdd", *ablations]:
        if x not in a:
            continue
        r = a[x]
        what = (
            f"the rdd section as is: {json.dumps(params.get('rdd'))} (reference)"
            if x == "rdd"
            else "rdd with " + json.dumps(study["arms"][x].get("rdd"))
        )
        g = paired_diff(summary["runs"], x, "rdd") if x != "rdd" else None
        d = g["paired_mean"] if g else None
        pv = pc.get(x)
        dp = f"{pv - pc['rdd']:+.2f}" if pv is not None and "rdd" in pc and x != "rdd" else "–"
        L.append(
            f"| {x} | {what} | {pct(r['miou_mean'])} | {r['n']} | {signed(d)} | "
            f"{pv if pv is not None else '–'} | "
            f"{dp} |"
        )
    L.append("")
    return L


def _cost_section(summary: Mapping[str, Any], arms: Sequence[str]) -> list[str]:
    a = summary["arms"]
    if not ("kd" in a and "rdd" in a and a["kd"]["time_per_iter_s"] and a["rdd"]["time_per_iter_s"]):
        return []
    ov = a["rdd"]["time_per_iter_s"] / a["kd"]["time_per_iter_s"] - 1
    L = [
        "## Cost",
        "",
        "Seconds per training iteration (training time only, validation excluded) as "
        "measured inside each run, per seed:",
        "",
        "| arm | s / iter per run | mean |",
        "|---|---|---:|",
    ]
    for x in arms:
        if x in a and a[x]["time_per_iter_s"]:
            per = ", ".join("–" if v is None else f"{v:.3f}" for v in a[x]["time_per_iter_runs"].values())
            L.append(f"| {x} | {per} | {a[x]['time_per_iter_s']:.3f} |")
    L += [
        "",
        f"RDD's overhead over KD on these runs: {100 * ov:+.1f}% (mean over mean). The runs "
        "shared the machine with other runs (two or three training processes on two cores), "
        "so these figures carry the load of whatever ran alongside; "
        "`benchmarks/train_step.py` measures the overhead in isolation.",
        "",
    ]
    return L


def _mask_section(summary: Mapping[str, Any], arms: Sequence[str], fig_dir: str) -> list[str]:
    """The TSE mask fractions; each arm's mask mode is the one its runs logged."""
    a = summary["arms"]
    mf = [(x, a[x]["tse_selected_frac_mean"]) for x in arms if x in a and a[x]["tse_selected_frac_mean"]]
    if not mf:
        return []
    return [
        "## What the TSE mask selects",
        "",
        "Mean over the logged TSE iterations of the fraction of valid pixels in the mask: "
        + ", ".join(f"{x} ({a[x].get('tse_mode')}) {100 * v:.1f}%" for x, v in mf)
        + ".",
        "",
        f"![TSE mask fraction over training]({fig_dir}/tse_mask_fraction.png)",
        "",
    ]


def _diagnostics_section(diagnostics: Mapping[str, Any] | None) -> list[str]:
    if not diagnostics:
        return []
    L = [
        "## Difficulty diagnostics on the validation frames",
        "",
        "Computed after training with the final models (`rdd.study.difficulty_diagnostics`): "
        "fractions of valid pixels, and the share of each set where the teacher's "
        "prediction disagrees with the label (teacher error or label noise).",
        "",
        "| student | teacher-hard | student-hard | XOR | OR | AND | teacher error on AND | "
        "on XOR | TFE weight (teacher right / wrong) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for nm, d in diagnostics.items():
        L.append(
            f"| {nm} | {pct(d['teacher_hard_frac'], 1)} | {pct(d['student_hard_frac'], 1)} | "
            f"{pct(d['xor_frac'], 1)} | {pct(d['or_frac'], 1)} | {pct(d['and_frac'], 1)} | "
            f"{pct(d['teacher_error_on_and'], 1)} | {pct(d['teacher_error_on_xor'], 1)} | "
            f"{d['tfe_weight_mean_teacher_right']:.3f} / "
            f"{d['tfe_weight_mean_teacher_wrong']:.3f} |"
        )
    L.append("")
    return L


def markdown_report(
    summary: Mapping[str, Any],
    params: Mapping[str, Any],
    study: Mapping[str, Any],
    *,
    fig_dir: str,
    diagnostics: Mapping[str, Any] | None = None,
    notes: str = "",
) -> str:
    """The study report (markdown) of a :func:`rdd.study.summarize_study` summary; figures are
    referenced relative to the report (``fig_dir``)."""
    arms = list(study["arms"])
    main = [x for x in study["main_arms"] if x in summary["arms"]]
    # a main arm at another schedule (``baseline_xlong``) is a length point, not an ablation
    lengths = [
        x
        for v in length_variants(arms).values()
        for b, x in v.items()
        if x != b and b in study["main_arms"] and x not in study["main_arms"]
    ]
    ablations = [x for x in arms if x not in study["main_arms"] and x not in lengths]
    L: list[str] = [f"# {study.get('title', 'Study')}", ""]
    if notes:
        L += [notes.strip(), ""]
    L += _setup_section(summary, params, study)
    L += _main_section(
        summary, study, main + [x for x in lengths if x in summary["arms"]] + ablations, fig_dir
    )
    L += _lengths_section(summary, fig_dir)
    L += _rdd_adds_section(summary, study)
    L += _per_class_section(summary, main)
    L += _ablation_section(summary, params, study, ablations)
    L += _cost_section(summary, arms)
    L += _mask_section(summary, arms, fig_dir)
    L += _diagnostics_section(diagnostics)
    if summary.get("missing"):
        L += [f"Missing runs (not trained yet): {', '.join(summary['missing'])}.", ""]
    return "\n".join(L) + "\n"


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
                _length_label(g),
                [x for base, x in g["arms"].items() if base in _LENGTH_METHODS and x in summary["curves"]],
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
