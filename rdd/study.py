"""Student studies: aggregate arm × seed runs into a summary, plots and a markdown report.

A study (``studies/<name>/``, run by :mod:`pipeline.study`) trains every *arm* (baseline, KD, RDD,
ablations) with several seeds into ``<out_root>/runs/<arm>-s<seed>/``; each run holds the
engine's ``metrics.json``, its DVCLive logs and ``export/export_metrics.json`` (the exported ONNX
graph scored by ONNX Runtime). This module only reads those files (plus, for the difficulty
diagnostics, the teacher's and students' weights) and writes:

* ``summary.json`` — every run, mean ± sample standard deviation per arm, paired gains;
* ``<report>.md`` with figures in ``<report stem>/`` (validation-mIoU curves per arm, a bar chart
  with error bars, the fraction of pixels the TSE mask selects over training per mask mode);
* ``miou_by_arm.json`` — the bar chart's data for ``dvc plots``.

mIoU values are fractions in [0, 1] in the JSON files and percentages in the report.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rdd.spec import atomic_path, write_json_atomic

__all__ = ["run_folder", "read_tsv", "load_run", "summarize_study", "mean_std", "paired_diff",
           "difficulty_diagnostics", "markdown_report", "write_study_report", "write_sweep_report"]


def run_folder(out_root: str | Path, arm: str, seed: int) -> Path:
    """``<out_root>/runs/<arm>-s<seed>``: where :mod:`pipeline.study` trains one arm × seed."""
    return Path(out_root) / "runs" / f"{arm}-s{seed}"


def read_tsv(path: str | Path) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of a DVCLive metric file (``step<TAB>name`` header); empty if absent."""
    path = Path(path)
    if not path.is_file():
        return [], []
    steps, vals = [], []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if "step" not in header or len(header) < 2:
            raise ValueError(f"{path}: expected a DVCLive TSV with a 'step' column, got {header}")
        si = header.index("step")
        vi = next(i for i in range(len(header)) if i != si and header[i] != "timestamp")
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == len(header):
                steps.append(int(float(parts[si])))
                vals.append(float(parts[vi]))
    return steps, vals


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None


def load_run(run_dir: str | Path) -> dict[str, Any] | None:
    """One run's figures (``None`` when it has no ``metrics.json`` or did not complete)."""
    run_dir = Path(run_dir)
    m = _read_json(run_dir / "metrics.json")
    if m is None or not m.get("completed", True):
        return None
    e = _read_json(run_dir / "export" / "export_metrics.json") or {}
    live = run_dir / "dvclive" / "plots" / "metrics"
    curve = read_tsv(live / "val" / "miou.tsv")
    sel = read_tsv(live / "rdd" / "tse_selected_frac.tsv")
    tfe = read_tsv(live / "rdd" / "tfe_weight_mean.tsv")
    return {
        "miou": m.get("miou"), "iou": m.get("iou"), "pixel_acc": m.get("pixel_acc"),
        "miou_onnx": (e.get("miou") or {}).get("ort_fp32"),
        "onnx_parity_max_abs": (e.get("parity") or {}).get("max_abs_logit_diff"),
        "time_per_iter_s": m.get("time_per_iter_s"), "train_time_s": m.get("train_time_s"),
        "iters": m.get("iters"), "params": m.get("params"), "method": m.get("method"),
        "curve": {"step": curve[0], "miou": curve[1]},
        "tse_selected_frac": {"step": sel[0], "value": sel[1]},
        "tfe_weight_mean": {"step": tfe[0], "value": tfe[1]},
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (NaN for fewer than two values: unknown, not 0)."""
    v = [float(x) for x in values]
    if not v:
        return math.nan, math.nan
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else math.nan)


def _nanmean0(a: np.ndarray) -> list[float | None]:
    """Column means ignoring NaN (a class absent from a run's val predictions and labels)."""
    out = []
    for col in a.T:
        ok = col[~np.isnan(col)]
        out.append(float(ok.mean()) if ok.size else None)
    return out


def paired_diff(runs: Mapping[str, Mapping[Any, Mapping[str, Any]]], a: str, b: str
                ) -> dict[str, Any] | None:
    """``a − b`` mIoU on the seeds both arms have (``None`` when they share none)."""
    if a not in runs or b not in runs:
        return None
    common = sorted(set(runs[a]) & set(runs[b]), key=int)
    if not common:
        return None
    diffs = [runs[a][s]["miou"] - runs[b][s]["miou"] for s in common]
    m, sd = mean_std(diffs)
    return {"paired_mean": m, "paired_std": sd, "paired_seeds": [int(s) for s in common],
            "paired_wins": sum(d > 0 for d in diffs)}


def summarize_study(study: Mapping[str, Any], out_root: str | Path) -> dict[str, Any]:
    """Collect every run of ``study`` (the validated ``study`` params section) under ``out_root``.

    Main arms are read for every seed in ``study.seeds``; the other arms for every seed found on
    disk. Gains are paired by seed (``rdd − kd`` on the seeds both have) and reported with the
    unpaired difference of means.
    """
    out_root = Path(out_root)
    runs: dict[str, dict[int, dict]] = {}
    missing: list[str] = []
    for arm in study["arms"]:
        found = {int(p.name.rsplit("-s", 1)[1]) for p in (out_root / "runs").glob(f"{arm}-s*")
                 if p.name.rsplit("-s", 1)[0] == arm and p.name.rsplit("-s", 1)[1].isdigit()}
        expected = study["seeds"] if arm in study["main_arms"] else study.get("ablation_seeds", [])
        seeds = sorted(set(expected) | found)
        for s in seeds:
            r = load_run(run_folder(out_root, arm, s))
            if r is None:
                missing.append(f"{arm}-s{s}")
            else:
                runs.setdefault(arm, {})[s] = r
    arms: dict[str, Any] = {}
    for arm, by_seed in runs.items():
        mious = [r["miou"] for r in by_seed.values()]
        m, sd = mean_std(mious)
        onnx = [r["miou_onnx"] for r in by_seed.values() if r["miou_onnx"] is not None]
        tpi = [r["time_per_iter_s"] for r in by_seed.values() if r["time_per_iter_s"]]
        ious = np.array([[math.nan if v is None else v for v in r["iou"]]
                         for r in by_seed.values() if r["iou"]], dtype=float)
        sel = [float(np.mean(r["tse_selected_frac"]["value"])) for r in by_seed.values()
               if r["tse_selected_frac"]["value"]]
        arms[arm] = {
            "n": len(mious), "seeds": sorted(by_seed), "miou_mean": m, "miou_std": sd,
            "miou_runs": {str(s): by_seed[s]["miou"] for s in sorted(by_seed)},
            "miou_onnx_mean": mean_std(onnx)[0] if onnx else None,
            "iou_mean": _nanmean0(ious) if ious.size else None,
            "time_per_iter_s": mean_std(tpi)[0] if tpi else None,
            "tse_selected_frac_mean": mean_std(sel)[0] if sel else None,
            "time_per_iter_runs": {str(s): by_seed[s]["time_per_iter_s"] for s in sorted(by_seed)},
        }

    def gain(a: str, b: str) -> dict[str, Any] | None:
        g = paired_diff(runs, a, b)
        if g is not None:
            g["mean_diff"] = arms[a]["miou_mean"] - arms[b]["miou_mean"]
        return g

    teacher = _read_json(out_root / "teacher" / "metrics.json")
    tjson = _read_json(out_root / "teacher" / "model.json") or {}
    return {
        "class_names": (tjson.get("classes") or {}).get("names"),
        "teacher": None if teacher is None else {
            k: teacher.get(k) for k in ("miou", "iou", "pixel_acc", "params", "iters",
                                        "time_per_iter_s", "train_time_s", "model")},
        "arms": arms,
        "gains": {"rdd_vs_baseline": gain("rdd", "baseline"), "rdd_vs_kd": gain("rdd", "kd"),
                  "kd_vs_baseline": gain("kd", "baseline")},
        "runs": {arm: {str(s): {k: v for k, v in r.items() if k not in ("curve",)}
                       for s, r in by_seed.items()} for arm, by_seed in runs.items()},
        "curves": {arm: {str(s): r["curve"] for s, r in by_seed.items()}
                   for arm, by_seed in runs.items()},
        "missing": missing,
    }


# --------------------------------------------------------------------------- diagnostics

def difficulty_diagnostics(teacher: Any, student: Any, frames: Iterable[Any], *,
                           normalization: Any, threshold: float, min_kept: float,
                           ignore_index: int = 255, batch_size: int = 8,
                           clean_masks: Sequence[np.ndarray] | None = None) -> dict[str, float]:
    """What RDD's maps look like on labelled frames (no training; both models in eval mode).

    Per frame batch (``N×H×W``, the same batching rule as training): teacher-hard and
    student-hard masks (:func:`rdd.losses.hard_pixel_mask`, Eq. of TSE-RDD), their XOR / OR /
    AND, and the TFE weights ``exp(−KL(p_aux‖p_main))`` of the teacher (:func:`rdd.losses.tfe_weights`).
    Returns fractions of the valid pixels, plus how often the *label* disagrees with the
    teacher's prediction on each set (``teacher_error_on_*``) — the share of a set that is either
    a teacher mistake or label noise — and the mean TFE weight on pixels the teacher gets right
    vs wrong.

    With ``clean_masks`` (the true labels of frames whose ``mask`` is noisy, same order and
    size) it also reports, per set, ``noisy_share_on_<set>`` (the share of the set whose label is
    corrupted: is "hard for both" mostly noise?) and ``noisy_recall_<set>`` (the share of all
    corrupted pixels that fall in the set), plus ``noisy_frac`` overall.
    """
    import torch

    from rdd.export.frames import iter_batches
    from rdd.losses import hard_pixel_mask, tfe_weights

    sums: dict[str, float] = {}
    n_valid = 0
    frames = list(frames)
    if clean_masks is not None:
        clean_masks = [np.asarray(m) for m in clean_masks]
        if len(clean_masks) != len(frames) or any(
                c.shape != f.mask.shape for c, f in zip(clean_masks, frames)):
            raise ValueError("difficulty_diagnostics: clean_masks must match the frames' masks "
                             "one to one, with the same sizes")
    start = 0

    def add(k: str, v: float) -> None:
        sums[k] = sums.get(k, 0.0) + float(v)

    for batch in iter_batches(frames, batch_size):
        x = torch.from_numpy(normalization.apply(np.stack([f.image for f in batch])))
        y = torch.from_numpy(np.stack([f.mask for f in batch]).astype(np.int64))
        with torch.inference_mode():
            t = teacher(x, with_aux=True)
            s = student(x)
        t_out, s_out = t["out"].float(), (s["out"] if isinstance(s, dict) else s).float()
        valid = y != ignore_index
        th = hard_pixel_mask(t_out, y, threshold, min_kept, ignore_index)
        sh = hard_pixel_mask(s_out, y, threshold, min_kept, ignore_index)
        w = tfe_weights(t_out, t["aux"])
        t_wrong = (t_out.argmax(1) != y) & valid
        noisy = None
        if clean_masks is not None:
            c = torch.from_numpy(np.stack(clean_masks[start:start + len(batch)]).astype(np.int64))
            noisy = (c != y) & valid
            add("noisy", noisy.sum())
        start += len(batch)
        sets = {"teacher_hard": th, "student_hard": sh, "xor": th ^ sh, "or": th | sh,
                "and": th & sh, "teacher_only_hard": th & ~sh, "student_only_hard": sh & ~th,
                "neither": valid & ~(th | sh)}
        n_valid += int(valid.sum())
        for k, m in sets.items():
            add(f"{k}_count", m.sum())
            add(f"{k}_twrong", (m & t_wrong).sum())
            if noisy is not None:
                add(f"{k}_noisy", (m & noisy).sum())
        add("t_wrong", t_wrong.sum())
        add("w_sum", w[valid].sum())
        add("w_right_sum", w[valid & ~t_wrong].sum())
        add("w_wrong_sum", w[t_wrong].sum())
        add("s_wrong", ((s_out.argmax(1) != y) & valid).sum())
    if n_valid == 0:
        raise ValueError("difficulty_diagnostics: no valid pixels in the frames")
    out: dict[str, float] = {"valid_pixels": float(n_valid)}
    for k in ("teacher_hard", "student_hard", "xor", "or", "and", "teacher_only_hard",
              "student_only_hard", "neither"):
        c = sums[f"{k}_count"]
        out[f"{k}_frac"] = c / n_valid
        out[f"teacher_error_on_{k}"] = sums[f"{k}_twrong"] / c if c else math.nan
        if clean_masks is not None:
            out[f"noisy_share_on_{k}"] = sums[f"{k}_noisy"] / c if c else math.nan
            out[f"noisy_recall_{k}"] = (sums[f"{k}_noisy"] / sums["noisy"] if sums["noisy"]
                                        else math.nan)
    if clean_masks is not None:
        out["noisy_frac"] = sums["noisy"] / n_valid
    out["teacher_error"] = sums["t_wrong"] / n_valid
    out["student_error"] = sums["s_wrong"] / n_valid
    out["tfe_weight_mean"] = sums["w_sum"] / n_valid
    right = n_valid - sums["t_wrong"]
    out["tfe_weight_mean_teacher_right"] = sums["w_right_sum"] / right if right else math.nan
    out["tfe_weight_mean_teacher_wrong"] = (sums["w_wrong_sum"] / sums["t_wrong"]
                                            if sums["t_wrong"] else math.nan)
    return out


# --------------------------------------------------------------------------- plots

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)


def _mean_curve(curves: Mapping[str, Mapping[str, list]]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Mean and std over seeds of validation curves (on the steps every seed has)."""
    per = [dict(zip(c["step"], c["miou"])) for c in curves.values() if c["step"]]
    if not per:
        return [], np.zeros(0), np.zeros(0)
    steps = sorted(set.intersection(*(set(p) for p in per)))
    a = np.array([[p[s] for s in steps] for p in per]) * 100
    return steps, a.mean(0), a.std(0, ddof=1) if len(per) > 1 else np.zeros(len(steps))


def plot_curves(summary: Mapping[str, Any], arms: Sequence[str], path: Path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm in arms:
        if arm not in summary["curves"]:
            continue
        steps, m, sd = _mean_curve(summary["curves"][arm])
        if not steps:
            continue
        n = sum(1 for c in summary["curves"][arm].values() if c["step"])
        ax.plot(steps, m, label=f"{arm} (n={n})")
        if n > 1:
            ax.fill_between(steps, m - sd, m + sd, alpha=0.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("val mIoU (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_bars(summary: Mapping[str, Any], arms: Sequence[str], path: Path, title: str) -> None:
    plt = _plt()
    rows = [(a, summary["arms"][a]) for a in arms if a in summary["arms"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 1.5), 4.0))
    x = np.arange(len(rows))
    ax.bar(x, [r["miou_mean"] * 100 for _, r in rows],
           yerr=[r["miou_std"] * 100 for _, r in rows], capsize=4, color="#4c72b0")
    for i, (_, r) in enumerate(rows):
        for v in r["miou_runs"].values():
            ax.plot(i, v * 100, "k.", ms=5)
    ax.set_xticks(x, [f"{a}\n(n={r['n']})" for a, r in rows])
    ax.set_ylim(0, None)
    ax.set_ylabel("val mIoU (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def plot_mask_fractions(summary: Mapping[str, Any], arms_modes: Mapping[str, str], path: Path,
                        title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, mode in arms_modes.items():
        for s, r in sorted((summary["runs"].get(arm) or {}).items()):
            c = r["tse_selected_frac"]
            if c["step"]:
                ax.plot(c["step"], np.array(c["value"]) * 100, label=f"{mode} ({arm}-s{s})",
                        alpha=0.85)
    ax.set_xlabel("iteration")
    ax.set_ylabel("pixels selected by the TSE mask (% of valid)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


# --------------------------------------------------------------------------- report

def _pct(v: Any, nd: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{nd}f}"


def _signed(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:+.2f}"


def _pm(mean: Any, std: Any) -> str:
    """``mean ± std`` in points; the std is left out when unknown (one run)."""
    sd = _pct(std)
    return _pct(mean) + ("" if sd == "–" else f" ± {sd}")


def _tse_mode(study: Mapping[str, Any], params: Mapping[str, Any], arm: str) -> str:
    """The TSE mask mode of an RDD arm: its override, else the ``rdd`` section's (default xor)."""
    own = study["arms"][arm].get("rdd") or {}
    return own.get("mode", (params.get("rdd") or {}).get("mode", "xor"))


def markdown_report(summary: Mapping[str, Any], params: Mapping[str, Any], study: Mapping[str, Any],
                    *, fig_dir: str, diagnostics: Mapping[str, Any] | None = None,
                    notes: str = "") -> str:
    """The study report (markdown); figures are referenced relative to the report."""
    arms, a = list(study["arms"]), summary["arms"]
    main = [x for x in study["main_arms"] if x in a]
    ablations = [x for x in arms if x not in study["main_arms"]]
    t = summary.get("teacher") or {}
    st, te = params.get("student", {}), params.get("teacher", {})
    data = params.get("data", {})
    L: list[str] = [f"# {study.get('title', 'Study')}", ""]
    if notes:
        L += [notes.strip(), ""]
    L += ["## Setup", "",
          f"- Teacher: `{te.get('model', {}).get('name')}` {te.get('model', {}).get('kwargs')}, "
          f"{te.get('optim', {}).get('iters')} iterations"
          + (f", {t.get('params', 0) / 1e6:.2f} M params" if t.get("params") else "") + ".",
          f"- Student (every arm): `{st.get('model', {}).get('name')}` {st.get('model', {}).get('kwargs')}, "
          f"optim {st.get('optim')}, aux weight {st.get('loss', {}).get('aux_weight')}.",
          f"- Data: `{data.get('dataset')}` {data.get('train_split')} → {data.get('val_split')}; "
          f"crops {data.get('crop_size')} after scaling by {data.get('scale_range')} of the native "
          f"frame, flip {data.get('flip')}, jitter {data.get('jitter')}, batch {data.get('batch_size')}; "
          f"evaluated at {data.get('eval_size') or 'native size'}.",
          f"- KD: pixel KD {params.get('kd')}; RDD: {params.get('rdd')}.",
          f"- Seeds: {study['seeds']} for {', '.join(study['main_arms'])}; ablations: the seeds listed.",
          ""]
    L += ["## Main result", "",
          "| model | runs | val mIoU (%) mean ± std | every run (seed order) | ONNX Runtime mIoU (mean) | "
          "Δ vs baseline | Δ vs KD | s / iter |",
          "|---|---:|---:|---|---:|---:|---:|---:|"]
    if t:
        L.append(f"| teacher `{t.get('model')}` | 1 | {_pct(t.get('miou'))} | – | – | – | – | "
                 f"{t.get('time_per_iter_s') or math.nan:.2f} |")
    for x in main + ablations:
        if x not in a:
            continue
        r = a[x]
        dv_b = paired_diff(summary["runs"], x, "baseline") if x != "baseline" else None
        dv_k = paired_diff(summary["runs"], x, "kd") if x not in ("kd", "baseline") else None
        runs = ", ".join(f"{100 * v:.2f}" for v in r["miou_runs"].values())

        def delta(g: Mapping[str, Any] | None) -> str:
            if not g:
                return "–"
            n = len(g["paired_seeds"])
            return _signed(g["paired_mean"]) + (f" (n={n})" if n != r["n"] or n == 1 else "")

        L.append(f"| {x} | {r['n']} | {_pm(r['miou_mean'], r['miou_std'])} | {runs} | "
                 f"{_pct(r['miou_onnx_mean'])} | {delta(dv_b)} | {delta(dv_k)} | "
                 f"{r['time_per_iter_s'] or math.nan:.3f} |")
    pcv = (study.get("paper") or {}).get("camvid") or {}
    if pcv:
        L.append("| *paper, CamVid (R101 → R18, ImageNet-pretrained)* | – | "
                 + " · ".join(f"{k} {v}" for k, v in pcv.items()) + " | – | – | "
                 + (f"{pcv['rdd'] - pcv['baseline']:+.2f} (RDD)" if {"rdd", "baseline"} <= set(pcv)
                    else "–") + " | – | – |")
    L += ["", "Δ columns are paired by seed (mean of per-seed differences over the seeds both "
          "arms have; n is shown where that is not every run of the row). s / iter is measured "
          "inside each run; see *Cost* for why it is only indicative.", ""]
    g = summary["gains"]
    for key, label in (("rdd_vs_kd", "RDD − KD"), ("rdd_vs_baseline", "RDD − baseline"),
                       ("kd_vs_baseline", "KD − baseline")):
        v = g.get(key)
        if v and v["paired_seeds"]:
            L.append(f"- {label}, paired by seed over seeds {v['paired_seeds']}: "
                     f"{_signed(v['paired_mean'])}" + ("" if _pct(v['paired_std']) == "–" else f" ± {_pct(v['paired_std'])}") + " points "
                     f"({v['paired_wins']} of {len(v['paired_seeds'])} seeds positive).")
    L.append("")
    L += [f"![validation mIoU per arm]({fig_dir}/miou_curves.png)", "",
          f"![mean ± std per arm]({fig_dir}/miou_bars.png)", ""]
    # per-class IoU
    names = summary.get("class_names")
    rows = [("teacher", t.get("iou"))] + [(x, a[x]["iou_mean"]) for x in main if x in a]
    k = max((len(v) for _, v in rows if v), default=0)
    if k:
        names = names or [str(i) for i in range(k)]
        L += ["### Per-class IoU (%), mean over seeds", "",
              "| model | " + " | ".join(names[:k]) + " |",
              "|---|" + "---:|" * k]
        for nm, v in rows:
            if v:
                L.append(f"| {nm} | " + " | ".join(_pct(x, 1) for x in v) + " |")
        L.append("")
    # ablations vs paper
    paper = (study.get("paper") or {})
    pc = paper.get("cityscapes") or {}
    if ablations:
        L += ["## Ablations", "",
              "Paper figures are Cityscapes (DeepLabV3-R101 → R18, ImageNet-pretrained, 40k "
              "iterations); ours are this study's schedule. Compare the *ordering*, not the values.",
              "", "| arm | what changes | ours: val mIoU (%) | runs | Δ vs our RDD (same seeds) | "
              "paper (Cityscapes) | Δ vs paper RDD |", "|---|---|---:|---:|---:|---:|---:|"]
        for x in ["rdd", *ablations]:
            if x not in a:
                continue
            r = a[x]
            spec = study["arms"][x]
            what = (f"the rdd section as is: {json.dumps(params.get('rdd'))} (reference)"
                    if x == "rdd" else "rdd with " + json.dumps(spec.get("rdd")))
            g = paired_diff(summary["runs"], x, "rdd") if x != "rdd" else None
            d = g["paired_mean"] if g else None
            pv = pc.get(x)
            dp = f"{pv - pc['rdd']:+.2f}" if pv is not None and "rdd" in pc and x != "rdd" else "–"
            L.append(f"| {x} | {what} | {_pct(r['miou_mean'])} | {r['n']} | {_signed(d)} | "
                     f"{pv if pv is not None else '–'} | "
                     f"{dp} |")
        L.append("")
    # time per iteration
    if "kd" in a and "rdd" in a and a["kd"]["time_per_iter_s"] and a["rdd"]["time_per_iter_s"]:
        ov = a["rdd"]["time_per_iter_s"] / a["kd"]["time_per_iter_s"] - 1
        L += ["## Cost", "",
              "Seconds per training iteration (training time only, validation excluded) as "
              "measured inside each run, per seed:", "",
              "| arm | s / iter per run | mean |", "|---|---|---:|"]
        for x in arms:
            if x in a and a[x]["time_per_iter_s"]:
                per = ", ".join("–" if v is None else f"{v:.3f}"
                                for v in a[x]["time_per_iter_runs"].values())
                L.append(f"| {x} | {per} | {a[x]['time_per_iter_s']:.3f} |")
        L += ["", f"RDD's overhead over KD on these runs: {100 * ov:+.1f}% (mean over mean). The runs "
              "shared the machine with other runs (two or three training processes on two cores), "
              "so these figures carry the load of whatever ran alongside; "
              "`benchmarks/train_step.py` measures the overhead in isolation.", ""]
    # mask fractions
    mf = [(x, a[x]["tse_selected_frac_mean"]) for x in arms if x in a and a[x]["tse_selected_frac_mean"]]
    if mf:
        L += ["## What the TSE mask selects", "",
              "Mean over the logged TSE iterations of the fraction of valid pixels in the mask: "
              + ", ".join(f"{x} ({_tse_mode(study, params, x)}) "
                          f"{100 * v:.1f}%" for x, v in mf) + ".", "",
              f"![TSE mask fraction over training]({fig_dir}/tse_mask_fraction.png)", ""]
    if diagnostics:
        L += ["## Difficulty diagnostics on the validation frames", "",
              "Computed after training with the final models (`rdd.study.difficulty_diagnostics`): "
              "fractions of valid pixels, and the share of each set where the teacher's "
              "prediction disagrees with the label (teacher error or label noise).", "",
              "| student | teacher-hard | student-hard | XOR | OR | AND | teacher error on AND | "
              "on XOR | TFE weight (teacher right / wrong) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for nm, d in diagnostics.items():
            L.append(f"| {nm} | {_pct(d['teacher_hard_frac'], 1)} | {_pct(d['student_hard_frac'], 1)} | "
                     f"{_pct(d['xor_frac'], 1)} | {_pct(d['or_frac'], 1)} | {_pct(d['and_frac'], 1)} | "
                     f"{_pct(d['teacher_error_on_and'], 1)} | {_pct(d['teacher_error_on_xor'], 1)} | "
                     f"{d['tfe_weight_mean_teacher_right']:.3f} / {d['tfe_weight_mean_teacher_wrong']:.3f} |")
        L.append("")
    if summary.get("missing"):
        L += [f"Missing runs (not trained yet): {', '.join(summary['missing'])}.", ""]
    return "\n".join(L) + "\n"


def write_study_report(params: Mapping[str, Any], study: Mapping[str, Any], *,
                       out_root: str | Path, report_path: str | Path, summary_path: str | Path,
                       diagnostics_arms: Sequence[str] = ("kd", "rdd"),
                       diagnostics_seed: int | None = None,
                       data_root: str | Path | None = None) -> dict[str, Any]:
    """Summarise, plot, diagnose and write the report; returns ``{"runs", "missing"}``.

    ``data_root`` is the dataset folder (for the difficulty diagnostics on the val split;
    default ``params["data"]["root"]``)."""
    out_root, report_path, summary_path = Path(out_root), Path(report_path), Path(summary_path)
    summary = summarize_study(study, out_root)
    fig_dir = report_path.parent / report_path.stem
    fig_dir.mkdir(parents=True, exist_ok=True)
    title = study.get("title", "study")
    plot_curves(summary, list(study["main_arms"]), fig_dir / "miou_curves.png", f"{title}: validation mIoU")
    plot_bars(summary, list(study["arms"]), fig_dir / "miou_bars.png", "final val mIoU, mean ± std")
    modes = {x: _tse_mode(study, params, x) for x in study["arms"]
             if study["arms"][x].get("rdd") is not None and study["arms"][x]["rdd"].get("tse", True)}
    pick: dict[str, str] = {}   # one arm per mask mode, the main "rdd" arm first
    for x in sorted(modes, key=lambda k: k != "rdd"):
        if modes[x] not in pick.values() and x in summary["runs"]:
            pick[x] = modes[x]
    if pick:
        first = {x: {s: r for s, r in summary["runs"][x].items()
                     if s == str(min(int(k) for k in summary["runs"][x]))} for x in pick}
        plot_mask_fractions({"runs": first}, pick, fig_dir / "tse_mask_fraction.png",
                            "fraction of pixels the TSE mask selects")
    # DVC bar-chart data
    bars = [{"arm": x, "miou": round(100 * r["miou_mean"], 3), "std": round(100 * r["miou_std"], 3),
             "n": r["n"]} for x, r in summary["arms"].items()]
    write_json_atomic(summary_path.parent / "miou_by_arm.json", bars)
    diagnostics = _diagnose(params, out_root, summary, diagnostics_arms, diagnostics_seed,
                            data_root if data_root is not None else params["data"].get("root"))
    summary["diagnostics"] = diagnostics
    write_json_atomic(summary_path, {k: v for k, v in summary.items() if k != "curves"})
    # the small metrics file for `dvc metrics show/diff`
    write_json_atomic(summary_path.parent / "metrics.json", {
        "teacher_miou": (summary.get("teacher") or {}).get("miou"),
        **{f"{x}_miou_mean": r["miou_mean"] for x, r in summary["arms"].items()},
        **{f"{x}_miou_std": r["miou_std"] for x, r in summary["arms"].items()
           if not math.isnan(r["miou_std"])},
        **{f"{k}_paired": g["paired_mean"] for k, g in summary["gains"].items() if g}})
    rel = fig_dir.name
    md = markdown_report(summary, params, study, fig_dir=rel, diagnostics=diagnostics,
                         notes=study.get("notes", ""))
    with atomic_path(report_path) as tmp:
        Path(tmp).write_text(md)
    n = sum(len(v) for v in summary["runs"].values())
    return {"runs": n, "missing": len(summary["missing"])}


def _diagnose(params: Mapping[str, Any], out_root: Path, summary: Mapping[str, Any],
              arms: Sequence[str], seed: int | None, data_root: str | Path) -> dict[str, Any]:
    """Difficulty diagnostics of the final ``arms`` students (first seed each) on the val split."""
    teacher_pt = out_root / "teacher" / "model.pt"
    if not teacher_pt.is_file():
        return {}
    from rdd.artifacts import load_artifact
    from rdd.data import build_dataset
    from rdd.export.frames import load_frames
    from rdd.spec import Normalization

    data = params["data"]
    ds = build_dataset(data["dataset"], root=data_root,
                       split=data.get("val_split", "val"), **(data.get("kwargs") or {}))
    teacher, tmeta = load_artifact(teacher_pt)
    size = tuple(data.get("eval_size") or tmeta["input_size"])
    frames = load_frames(ds, size=size)
    norm = Normalization.from_dict(tmeta["normalization"])
    rdd = params.get("rdd") or {}
    out = {}
    for arm in arms:
        seeds = sorted(int(s) for s in (summary["runs"].get(arm) or {}))
        if not seeds:
            continue
        s = seed if seed in seeds else seeds[0]
        student, _ = load_artifact(run_folder(out_root, arm, s) / "model.pt")
        out[f"{arm}-s{s}"] = difficulty_diagnostics(
            teacher, student, frames, normalization=norm, threshold=float(rdd.get("threshold", 0.7)),
            min_kept=float(rdd.get("min_kept", 0.0)))
    return out


# --------------------------------------------------------------------------- label-noise sweep

def _noise_diagnostics(params: Mapping[str, Any], root: Path, arm: str,
                       summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """Difficulty diagnostics on the *noisy train* frames of one noise rate, with the clean labels
    regenerated from ``data.synthetic`` (the data stage's generator is deterministic)."""
    import tempfile

    from rdd.artifacts import load_artifact
    from rdd.data import build_dataset
    from rdd.data.synthetic import write_synthetic_dataset
    from rdd.export.frames import load_frames
    from rdd.spec import Normalization

    seeds = sorted(int(s) for s in (summary["runs"].get(arm) or {}))
    teacher_pt = root / "teacher" / "model.pt"
    if not seeds or not teacher_pt.is_file():
        return None
    data = params["data"]
    syn = data.get("synthetic") or {}
    teacher, tmeta = load_artifact(teacher_pt)
    student, _ = load_artifact(run_folder(root, arm, seeds[0]) / "model.pt")
    split = data.get("train_split", "train")
    noisy = load_frames(build_dataset(data["dataset"], root=root / "data" / "synthetic", split=split))
    with tempfile.TemporaryDirectory() as tmp:
        clean_root = Path(tmp) / "clean"
        write_synthetic_dataset(clean_root, n_train=syn.get("n_train", 64), n_val=1,
                                size=syn.get("size", (180, 240)), seed=syn.get("seed", 0))
        clean = load_frames(build_dataset(data["dataset"], root=clean_root, split=split))
    if [f.image.tobytes() for f in clean[:2]] != [f.image.tobytes() for f in noisy[:2]]:
        raise ValueError(f"{root}: the regenerated clean scenes differ from the trained ones "
                         "(data.synthetic changed since the data stage ran?)")
    rdd = params.get("rdd") or {}
    d = difficulty_diagnostics(teacher, student, noisy,
                               normalization=Normalization.from_dict(tmeta["normalization"]),
                               threshold=float(rdd.get("threshold", 0.7)),
                               min_kept=float(rdd.get("min_kept", 0.0)),
                               clean_masks=[f.mask for f in clean])
    d["student"] = f"{arm}-s{seeds[0]}"
    return d


def write_sweep_report(params: Mapping[str, Any], study: Mapping[str, Any], *,
                       rates: Sequence[float], out_roots: Sequence[str | Path],
                       report_path: str | Path, summary_path: str | Path,
                       diagnose_arm: str = "xor") -> dict[str, Any]:
    """The label-noise sweep: one :func:`summarize_study` per noise rate (``out_roots[i]`` holds
    the runs of ``rates[i]``), the realised noise (``data/noise.json``), mIoU vs noise per arm,
    and where the corrupted train pixels fall among RDD's sets (XOR / AND / …)."""
    report_path, summary_path = Path(report_path), Path(summary_path)
    per: dict[str, Any] = {}
    for rate, root in zip(rates, out_roots):
        root = Path(root)
        s = summarize_study(study, root)
        per[str(rate)] = {
            "noise": _read_json(root / "data" / "noise.json"),
            "teacher_miou": (s.get("teacher") or {}).get("miou"),
            "arms": s["arms"], "gains": {}, "missing": s["missing"],
            "diagnostics": _noise_diagnostics(params, root, diagnose_arm, s),
        }
        for a, b in (("xor", "or"), ("xor", "kd"), ("xor", "baseline"), ("kd", "baseline")):
            g = paired_diff(s["runs"], a, b)
            if g is not None:
                per[str(rate)]["gains"][f"{a}_vs_{b}"] = g
    fig_dir = report_path.parent / report_path.stem
    fig_dir.mkdir(parents=True, exist_ok=True)
    arms = [a for a in study["main_arms"]]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for a in arms:
        xs = [r for r in rates if a in per[str(r)]["arms"]]
        if xs:
            ax.errorbar([100 * r for r in xs], [100 * per[str(r)]["arms"][a]["miou_mean"] for r in xs],
                        yerr=[100 * per[str(r)]["arms"][a]["miou_std"] for r in xs], marker="o",
                        capsize=3, label=a)
    ax.set_xlabel("corrupted train labels (%)")
    ax.set_ylabel("clean val mIoU (%)")
    ax.set_title(study.get("title", "label noise"))
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, fig_dir / "miou_vs_noise.png")
    write_json_atomic(summary_path, {"rates": list(rates), "per_rate": per})

    L = [f"# {study.get('title', 'Label-noise sweep')}", ""]
    if study.get("notes"):
        L += [str(study["notes"]).strip(), ""]
    st, te, data = params.get("student", {}), params.get("teacher", {}), params.get("data", {})
    L += ["## Setup", "",
          f"- Data: synthetic street scenes {data.get('synthetic')}; the train labels are "
          f"corrupted at each rate with {params.get('noise')} (`rdd.label_noise`), val labels "
          "are clean.",
          f"- Teacher per rate, trained on that rate's noisy labels: `{te.get('model', {}).get('name')}` "
          f"{te.get('model', {}).get('kwargs')}, {te.get('optim', {}).get('iters')} iterations.",
          f"- Students: `{st.get('model', {}).get('name')}` {st.get('model', {}).get('kwargs')}, "
          f"{st.get('optim', {}).get('iters')} iterations; arms {', '.join(arms)}; seeds {study['seeds']}.",
          f"- RDD: {params.get('rdd')}; KD: {params.get('kd')}.", "",
          "## Clean-val mIoU (%) vs label noise", "",
          "| noise rate (realised) | teacher | " + " | ".join(arms) + " | XOR − OR | XOR − KD |",
          "|---|---:|" + "---:|" * len(arms) + "---:|---:|"]
    for r in rates:
        p = per[str(r)]
        real = (p["noise"] or {}).get("realised_rate")
        cells = []
        for a in arms:
            x = p["arms"].get(a)
            cells.append("–" if x is None else _pm(x["miou_mean"], x["miou_std"]))
        g = p["gains"]

        def gs(k: str) -> str:
            v = g.get(k)
            return "–" if not v else _signed(v["paired_mean"]) + (
                "" if _pct(v["paired_std"]) == "–" else f" ± {_pct(v['paired_std'])}")

        L.append(f"| {100 * r:.0f}% ({_pct(real, 1)}%) | {_pct(p['teacher_miou'])} | "
                 + " | ".join(cells) + f" | {gs('xor_vs_or')} | {gs('xor_vs_kd')} |")
    L += ["", "Differences are paired by seed (mean ± std over seeds).", "",
          f"![mIoU vs noise]({fig_dir.name}/miou_vs_noise.png)", "",
          "## Where the corrupted train pixels fall", "",
          "On each rate's noisy train frames, with the final teacher and the first "
          f"`{diagnose_arm}` student: the share of each set whose label is corrupted (precision) "
          "and the share of all corrupted pixels inside the set (recall). XOR keeps pixels hard for "
          "exactly one network; AND (hard for both) is what XOR drops and OR keeps.", "",
          "| noise rate | corrupted | AND: size / noisy share / recall | XOR: size / noisy share / recall | "
          "neither-hard noisy share |", "|---|---:|---|---|---:|"]
    for r in rates:
        d = per[str(r)]["diagnostics"]
        if not d:
            continue
        def p1(v: Any) -> str:
            t = _pct(v, 1)
            return t if t == "–" else t + "%"

        L.append(f"| {100 * r:.0f}% | {p1(d['noisy_frac'])} | {p1(d['and_frac'])} / "
                 f"{p1(d['noisy_share_on_and'])} / {p1(d['noisy_recall_and'])} | "
                 f"{p1(d['xor_frac'])} / {p1(d['noisy_share_on_xor'])} / "
                 f"{p1(d['noisy_recall_xor'])} | {p1(d['noisy_share_on_neither'])} |")
    missing = [f"{r}: {m}" for r in rates for m in per[str(r)]["missing"]]
    if missing:
        L += ["", f"Missing runs: {', '.join(missing)}."]
    with atomic_path(report_path) as tmp:
        Path(tmp).write_text("\n".join(L) + "\n")
    return {"runs": sum(p["arms"][a]["n"] for p in per.values() for a in p["arms"]),
            "missing": len(missing)}
