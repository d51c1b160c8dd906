"""Study runs → figures and statistics (torch-free: json, yaml, numpy).

A study (``studies/<name>/``, run by :mod:`pipeline.study`) trains every *arm* with several seeds
into :func:`run_dir` ``(out_root, arm, seed)``; each run holds the engine's ``metrics.json``, its
DVCLive logs (``dvclive/plots/metrics/…`` and the logged configuration ``dvclive/params.yaml``)
and ``export/export_metrics.json`` (the exported ONNX graph scored by ONNX Runtime).
:func:`summarize_study` reads them into one summary: every run, mean ± sample standard deviation
per arm, paired gains. mIoU values are fractions in [0, 1].
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

__all__ = ["run_dir", "read_tsv", "read_json", "read_run_config", "load_run", "mean_std",
           "paired_diff", "summarize_study"]


def run_dir(out_root: str | Path, arm: str, seed: int) -> Path:
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


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON file at ``path`` (``None`` when absent; ``ValueError`` naming it when malformed)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None


def read_run_config(run: str | Path) -> dict[str, Any] | None:
    """The :class:`rdd.engine.TrainConfig` dict a run logged (``dvclive/params.yaml``, key
    ``config``, written by the trainer at start); ``None`` for a run without one."""
    path = Path(run) / "dvclive" / "params.yaml"
    if not path.is_file():
        return None
    with open(path) as f:
        try:
            logged = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from None
    cfg = logged.get("config") if isinstance(logged, Mapping) else None
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{path}: expected a mapping with a 'config' mapping (the trainer's "
                         "logged TrainConfig)")
    return dict(cfg)


def _tse_mode(config: Mapping[str, Any] | None) -> str | None:
    """The TSE mask mode a run trained with (``None``: no TSE, or no logged config)."""
    rdd = ((config or {}).get("loss") or {}).get("rdd") or {}
    return rdd.get("mode") if rdd.get("tse") else None


def load_run(run: str | Path) -> dict[str, Any] | None:
    """One run's figures (``None`` when it has no ``metrics.json`` or did not complete).

    ``tse_mode`` is the TSE mask mode of the run's logged configuration (:func:`read_run_config`),
    ``None`` when the run had no TSE phase."""
    run = Path(run)
    m = read_json(run / "metrics.json")
    if m is None or not m.get("completed", True):
        return None
    e = read_json(run / "export" / "export_metrics.json") or {}
    live = run / "dvclive" / "plots" / "metrics"
    curve = read_tsv(live / "val" / "miou.tsv")
    sel = read_tsv(live / "rdd" / "tse_selected_frac.tsv")
    tfe = read_tsv(live / "rdd" / "tfe_weight_mean.tsv")
    return {
        "miou": m.get("miou"), "iou": m.get("iou"), "pixel_acc": m.get("pixel_acc"),
        "miou_onnx": (e.get("miou") or {}).get("ort_fp32"),
        "onnx_parity_max_abs": (e.get("parity") or {}).get("max_abs_logit_diff"),
        "time_per_iter_s": m.get("time_per_iter_s"), "train_time_s": m.get("train_time_s"),
        "iters": m.get("iters"), "params": m.get("params"), "method": m.get("method"),
        "tse_mode": _tse_mode(read_run_config(run)),
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
    """Column means of ``a`` (runs × classes) ignoring NaN (a class absent from a run's val
    predictions and labels); ``None`` for a column with no value."""
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


def _found_seeds(out_root: Path, arm: str) -> set[int]:
    """Seeds of ``arm`` that have a run folder under ``out_root``."""
    out = set()
    for p in (out_root / "runs").glob(f"{arm}-s*"):
        name, _, seed = p.name.rpartition("-s")
        if name == arm and seed.isdigit():
            out.add(int(seed))
    return out


def _arm_summary(by_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean ± std and the per-run figures of one arm's runs (``seed → load_run``)."""
    mious = [r["miou"] for r in by_seed.values()]
    m, sd = mean_std(mious)
    onnx = [r["miou_onnx"] for r in by_seed.values() if r["miou_onnx"] is not None]
    tpi = [r["time_per_iter_s"] for r in by_seed.values() if r["time_per_iter_s"]]
    ious = np.array([[math.nan if v is None else v for v in r["iou"]]
                     for r in by_seed.values() if r["iou"]], dtype=float)
    sel = [float(np.mean(r["tse_selected_frac"]["value"])) for r in by_seed.values()
           if r["tse_selected_frac"]["value"]]
    modes = sorted({r["tse_mode"] for r in by_seed.values() if r.get("tse_mode")})
    return {
        "n": len(mious), "seeds": sorted(by_seed), "miou_mean": m, "miou_std": sd,
        "miou_runs": {str(s): by_seed[s]["miou"] for s in sorted(by_seed)},
        "miou_onnx_mean": mean_std(onnx)[0] if onnx else None,
        "iou_mean": _nanmean0(ious) if ious.size else None,
        "time_per_iter_s": mean_std(tpi)[0] if tpi else None,
        "tse_selected_frac_mean": mean_std(sel)[0] if sel else None,
        "time_per_iter_runs": {str(s): by_seed[s]["time_per_iter_s"] for s in sorted(by_seed)},
        # what the runs logged (several modes only if the arm's runs disagree)
        "tse_mode": "/".join(modes) if modes else None,
    }


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
        expected = study["seeds"] if arm in study["main_arms"] else study.get("ablation_seeds", [])
        for s in sorted(set(expected) | _found_seeds(out_root, arm)):
            r = load_run(run_dir(out_root, arm, s))
            if r is None:
                missing.append(f"{arm}-s{s}")
            else:
                runs.setdefault(arm, {})[s] = r
    arms = {arm: _arm_summary(by_seed) for arm, by_seed in runs.items()}

    def gain(a: str, b: str) -> dict[str, Any] | None:
        g = paired_diff(runs, a, b)
        if g is not None:
            g["mean_diff"] = arms[a]["miou_mean"] - arms[b]["miou_mean"]
        return g

    teacher = read_json(out_root / "teacher" / "metrics.json")
    tjson = read_json(out_root / "teacher" / "model.json") or {}
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
