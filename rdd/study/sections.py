"""The study report's markdown: one function per section and :func:`markdown_report`, a pure
function of the summary (see :mod:`rdd.study.report`); the sections on paired gaps across
training lengths and methods are :mod:`rdd.study.gaps`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rdd.study.aggregate import declared_iters, length_variants, paired_diff
from rdd.study.gaps import lengths_section, rdd_adds_section
from rdd.study.markdown import paired, pct, pm, signed

__all__ = ["markdown_report"]


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


def _changed_keys(spec: Mapping[str, Any], ref: Mapping[str, Any]) -> list[str]:
    """The keys of two arm declarations whose values differ (absent counts as a value)."""
    a, b = dict(spec or {}), dict(ref or {})
    return [k for k in sorted(set(a) | set(b)) if k not in a or k not in b or a[k] != b[k]]


def _changes(spec: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """What an arm's declaration changes against another's: ``extra_kd: [...]; no rdd``."""
    a = dict(spec or {})
    return "; ".join(f"{k}: {json.dumps(a[k])}" if k in a else f"no {k}" for k in _changed_keys(spec, ref))


def _ablation_section(
    summary: Mapping[str, Any], params: Mapping[str, Any], study: Mapping[str, Any], ablations: Sequence[str]
) -> list[str]:
    if not ablations:
        return []
    a = summary["arms"]
    arms = study["arms"]
    pc = (study.get("paper") or {}).get("cityscapes") or {}
    # the paper's ablations change only the rdd section; any other arm is a run of its own
    # (``at_w10``: the AT weight, chosen at the short length), set against KD below
    own = [x for x in ablations if "rdd" in arms and set(_changed_keys(arms[x], arms["rdd"])) - {"rdd"}]
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
    for x in ["rdd", *[x for x in ablations if x not in own]]:
        if x not in a:
            continue
        r = a[x]
        what = (
            f"the rdd section as is: {json.dumps(params.get('rdd'))} (reference)"
            if x == "rdd"
            else "rdd with " + json.dumps(arms[x].get("rdd"))
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
    own = [x for x in own if x in a]
    if own and "kd" in arms:
        L += [
            "Other arms at the study's default length, each against KD on the same seeds:",
            "",
            "| arm | what it changes in the kd arm | val mIoU (%) | runs | Δ vs KD (same seeds) |",
            "|---|---|---:|---:|---:|",
        ]
        for x in own:
            g = paired_diff(summary["runs"], x, "kd") if "kd" in a else None
            L.append(
                f"| {x} | {_changes(arms[x], arms['kd'])} | {pct(a[x]['miou_mean'])} | {a[x]['n']} | "
                f"{signed(g['paired_mean'] if g else None)} |"
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
        for v in length_variants(arms, declared_iters(study["arms"])).values()
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
    L += lengths_section(summary, fig_dir)
    L += rdd_adds_section(summary, study)
    L += _per_class_section(summary, main)
    L += _ablation_section(summary, params, study, ablations)
    L += _cost_section(summary, arms)
    L += _mask_section(summary, arms, fig_dir)
    L += _diagnostics_section(diagnostics)
    if summary.get("missing"):
        L += [f"Missing runs (not trained yet): {', '.join(summary['missing'])}.", ""]
    return "\n".join(L) + "\n"
