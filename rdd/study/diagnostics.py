"""RDD's difficulty maps on labelled frames, after training (torch; no gradients).

:func:`difficulty_diagnostics` measures, for a teacher and a student, the sets RDD works with
(teacher-hard, student-hard, their XOR / OR / AND) and the TFE weights; :func:`diagnose_study` and
:func:`diagnose_noise` run it on a study's final students (val frames) and on a label-noise rate's
noisy train frames (with the clean labels regenerated).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdd.study.aggregate import run_dir

__all__ = ["difficulty_diagnostics", "diagnose_study", "diagnose_noise"]


def difficulty_diagnostics(
    teacher: Any,
    student: Any,
    frames: Iterable[Any],
    *,
    normalization: Any,
    threshold: float,
    min_kept: float,
    ignore_index: int = 255,
    batch_size: int = 8,
    clean_masks: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """What RDD's maps look like on labelled frames (no training; both models in eval mode).

    ``student`` is a module (``student(x)`` → logits) or an exported student as the runtime
    scores it (an :class:`rdd.runtime.Backend` over a logits-output model, fed the raw frames:
    :func:`rdd.runtime.measure.score.predict`). The teacher is a module: the TFE weights need its
    auxiliary head, which no export keeps.

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

    from rdd.losses import combine_hard_masks, hard_pixel_mask, tfe_weights
    from rdd.runtime.measure.frames import iter_batches

    sums: dict[str, float] = {}
    n_valid = 0
    frames = list(frames)
    if clean_masks is not None:
        clean_masks = [np.asarray(m) for m in clean_masks]
        if len(clean_masks) != len(frames) or any(
            c.shape != f.mask.shape for c, f in zip(clean_masks, frames)
        ):
            raise ValueError(
                "difficulty_diagnostics: clean_masks must match the frames' masks "
                "one to one, with the same sizes"
            )
    start = 0

    def add(k: str, v: float) -> None:
        sums[k] = sums.get(k, 0.0) + float(v)

    for batch in iter_batches(frames, batch_size):
        x = torch.from_numpy(normalization.apply(np.stack([f.image for f in batch])))
        y = torch.from_numpy(np.stack([f.mask for f in batch]).astype(np.int64))
        with torch.inference_mode():
            t = teacher(x, with_aux=True)
            s_out = _student_logits(student, x, batch).float()
        t_out = t["out"].float()
        valid = y != ignore_index
        th = hard_pixel_mask(t_out, y, threshold, min_kept, ignore_index)
        sh = hard_pixel_mask(s_out, y, threshold, min_kept, ignore_index)
        w = tfe_weights(t_out, t["aux"])
        t_wrong = (t_out.argmax(1) != y) & valid
        noisy = None
        if clean_masks is not None:
            c = torch.from_numpy(np.stack(clean_masks[start : start + len(batch)]).astype(np.int64))
            noisy = (c != y) & valid
            add("noisy", noisy.sum())
        start += len(batch)
        sets = {
            "teacher_hard": th,
            "student_hard": sh,
            **{m: combine_hard_masks(sh, th, m) for m in ("xor", "or", "and")},
            "teacher_only_hard": th & ~sh,
            "student_only_hard": sh & ~th,
            "neither": valid & ~(th | sh),
        }
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
    for k in (
        "teacher_hard",
        "student_hard",
        "xor",
        "or",
        "and",
        "teacher_only_hard",
        "student_only_hard",
        "neither",
    ):
        c = sums[f"{k}_count"]
        out[f"{k}_frac"] = c / n_valid
        out[f"teacher_error_on_{k}"] = sums[f"{k}_twrong"] / c if c else math.nan
        if clean_masks is not None:
            out[f"noisy_share_on_{k}"] = sums[f"{k}_noisy"] / c if c else math.nan
            out[f"noisy_recall_{k}"] = sums[f"{k}_noisy"] / sums["noisy"] if sums["noisy"] else math.nan
    if clean_masks is not None:
        out["noisy_frac"] = sums["noisy"] / n_valid
    out["teacher_error"] = sums["t_wrong"] / n_valid
    out["student_error"] = sums["s_wrong"] / n_valid
    out["tfe_weight_mean"] = sums["w_sum"] / n_valid
    right = n_valid - sums["t_wrong"]
    out["tfe_weight_mean_teacher_right"] = sums["w_right_sum"] / right if right else math.nan
    out["tfe_weight_mean_teacher_wrong"] = (
        sums["w_wrong_sum"] / sums["t_wrong"] if sums["t_wrong"] else math.nan
    )
    return out


def _student_logits(student: Any, x: Any, batch: Sequence[Any]) -> Any:
    """``N×K×H×W`` logits (torch) of a module on the normalised ``x``, or of a runtime backend
    on the batch's raw frames."""
    import torch

    if hasattr(student, "infer") and hasattr(student, "meta"):  # rdd.runtime.Backend
        from rdd.runtime.measure.frames import Frames
        from rdd.runtime.measure.score import predict

        if student.meta.output_kind != "logits":
            raise ValueError(f"{student.path}: outputs class labels; the diagnostics need logits")
        _, logits = predict(student, Frames.from_arrays([f.image for f in batch]), "native", keep_logits=True)
        z = np.stack(logits)  # N×K×h×w
        if student.meta.head == "lowres":  # the head's logits, upsampled as the graph would
            from rdd.runtime.backends.lowres import LabelUpsampler

            z = LabelUpsampler(z.shape[-2:], x.shape[-2:]).upsample(z)
        return torch.from_numpy(z)
    s = student(x)
    return s["out"] if isinstance(s, dict) else s


def diagnose_study(
    params: Mapping[str, Any],
    out_root: Path,
    summary: Mapping[str, Any],
    arms: Sequence[str],
    seed: int | None,
    data_root: str | Path,
    models_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Difficulty diagnostics of the final ``arms`` students (first seed each) on the val split.

    A run whose ``model.pt`` is not on this machine (trained on another one) is diagnosed from
    its FP32 ONNX in ``models_dir`` (``ARM-sSEED.onnx``, :mod:`rdd.study.models`) when given."""
    teacher_pt = out_root / "teacher" / "model.pt"
    if not teacher_pt.is_file():
        return {}
    from rdd.artifacts import load_artifact
    from rdd.data import build_dataset
    from rdd.runtime.measure.frames import load_frames
    from rdd.spec import Normalization

    data = params["data"]
    ds = build_dataset(
        data["dataset"], root=data_root, split=data.get("val_split", "val"), **(data.get("kwargs") or {})
    )
    teacher, tmeta = load_artifact(teacher_pt)
    size = tuple(data.get("eval_size") or tmeta["input_size"])
    frames = load_frames(ds, size=size)
    norm = Normalization.from_dict(tmeta["normalization"])
    rdd = params["rdd"]  # the checked section (rdd.config.params.RDDSection): no defaults here
    out = {}
    for arm in arms:
        seeds = sorted(int(s) for s in (summary["runs"].get(arm) or {}))
        if not seeds:
            continue
        s = seed if seed in seeds else seeds[0]
        pt = run_dir(out_root, arm, s) / "model.pt"
        onnx = Path(models_dir) / f"{arm}-s{s}.onnx" if models_dir is not None else None
        if not pt.is_file() and onnx is not None and onnx.is_file():
            from rdd.runtime.backends import open_build

            student = open_build(onnx, backend="ort")
        else:
            student, _ = load_artifact(pt)
        out[f"{arm}-s{s}"] = difficulty_diagnostics(
            teacher,
            student,
            frames,
            normalization=norm,
            threshold=float(rdd["threshold"]),
            min_kept=float(rdd["min_kept"]),
        )
    return out


def diagnose_noise(
    params: Mapping[str, Any], root: Path, arm: str, summary: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Difficulty diagnostics on the *noisy train* frames of one noise rate, with the clean labels
    regenerated from ``prepare.synthetic`` (the data stage's generator is deterministic)."""
    import tempfile

    from rdd.artifacts import load_artifact
    from rdd.data import build_dataset
    from rdd.data.synthetic import write_synthetic_dataset
    from rdd.runtime.measure.frames import load_frames
    from rdd.spec import Normalization

    seeds = sorted(int(s) for s in (summary["runs"].get(arm) or {}))
    teacher_pt = root / "teacher" / "model.pt"
    if not seeds or not teacher_pt.is_file():
        return None
    data = params["data"]
    syn = params["prepare"]["synthetic"]  # checked, defaults filled (rdd.config.params)
    teacher, tmeta = load_artifact(teacher_pt)
    student, _ = load_artifact(run_dir(root, arm, seeds[0]) / "model.pt")
    split = data.get("train_split", "train")
    noisy = load_frames(build_dataset(data["dataset"], root=root / "data" / "synthetic", split=split))
    with tempfile.TemporaryDirectory() as tmp:
        clean_root = Path(tmp) / "clean"
        write_synthetic_dataset(
            clean_root, n_train=syn["n_train"], n_val=1, size=syn["size"], seed=syn["seed"]
        )
        clean = load_frames(build_dataset(data["dataset"], root=clean_root, split=split))
    if [f.image.tobytes() for f in clean[:2]] != [f.image.tobytes() for f in noisy[:2]]:
        raise ValueError(
            f"{root}: the regenerated clean scenes differ from the trained ones "
            "(prepare.synthetic changed since the data stage ran?)"
        )
    rdd = params["rdd"]
    d = difficulty_diagnostics(
        teacher,
        student,
        noisy,
        normalization=Normalization.from_dict(tmeta["normalization"]),
        threshold=float(rdd["threshold"]),
        min_kept=float(rdd["min_kept"]),
        clean_masks=[f.mask for f in clean],
    )
    d["student"] = f"{arm}-s{seeds[0]}"
    return d
