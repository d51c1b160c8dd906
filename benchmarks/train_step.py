"""Training-step cost of RDD vs plain KD (prints JSON).

One step = frozen-teacher forward (``no_grad``; with the aux head in TFE steps) + student forward
+ the engine's objective (:class:`rdd.engine.Objective`) + backward + SGD step, on the same
models and batch for

* ``kd``:  CE (+ aux) + pixel KD;
* ``tfe``: TFE-RDD task loss + pixel KD (teacher aux head evaluated too);
* ``tse``: TSE-RDD task loss + pixel KD.

Methods are timed round-robin (one step each, ``--repeats`` rounds after ``--warmup``) so that
noise from a shared machine hits all of them alike; the report gives medians, and separately the
median cost of the objective alone (where RDD's mask/weight math lives).

    python benchmarks/train_step.py                # ~1 min on 2 CPU cores
    python benchmarks/train_step.py --device cuda --batch 8 --size 512 1024 --amp bf16
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", default="deeplabv3_resnet18")
    p.add_argument("--teacher-width", type=float, default=0.5)
    p.add_argument("--student", default="lraspp_mobilenetv2")
    p.add_argument("--student-width", type=float, default=1.0)
    p.add_argument("--classes", type=int, default=11)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, nargs="+", default=[128, 128], help="H [W]")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=12)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["false", "fp16", "bf16"], default="false")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from rdd.engine import Objective
    from rdd.engine.config import KDConfig, LossConfig, RDDConfig
    from rdd.models import count_params, create_model
    from rdd.runtime.timing import latency_stats

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    h, w = (args.size * 2)[:2]
    k = args.classes
    teacher = create_model(args.teacher, num_classes=k, width_mult=args.teacher_width, aux=True)
    teacher.eval().requires_grad_(False).to(dev)
    student = create_model(args.student, num_classes=k, width_mult=args.student_width).to(dev)
    student.train()
    opt = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, 3, h, w, device=dev)
    y = torch.randint(0, k, (args.batch, h, w), device=dev)
    y[:, :4] = 255  # some ignored pixels
    amp = {"false": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.amp]

    kd = KDConfig(type="pixel", weight=1.0, temperature=1.0)
    objectives = {
        "kd": Objective(LossConfig(kd=kd), device=dev, student_aux=student.has_aux),
        "tfe": Objective(
            LossConfig(kd=kd, rdd=RDDConfig(tfe=True, tfe_iters=10**9)),
            device=dev,
            student_aux=student.has_aux,
        ),
        "tse": Objective(
            LossConfig(kd=kd, rdd=RDDConfig(tse=True, tfe_iters=0)), device=dev, student_aux=student.has_aux
        ),
    }

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def autocast():
        return (
            torch.autocast(dev.type, dtype=amp)
            if amp is not None
            else torch.autocast(dev.type, enabled=False)
        )

    def step(name: str) -> tuple[float, float]:
        obj = objectives[name]
        sync()
        t0 = time.perf_counter()
        with torch.no_grad(), autocast():
            t_out = teacher(x, with_aux=obj.teacher_aux(0), with_feats=False)
        with autocast():
            s_out = student(x, with_aux=student.has_aux, with_feats=False)
        sync()
        t1 = time.perf_counter()
        terms, _ = obj(0, s_out, t_out, y)
        loss = sum(terms.values())
        sync()
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        t3 = time.perf_counter()
        return t3 - t0, t2 - t1

    names = list(objectives)
    for _ in range(args.warmup):
        for n in names:
            step(n)
    steps: dict[str, list[float]] = {n: [] for n in names}
    losses: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.repeats):
        for n in names[r % 3 :] + names[: r % 3]:  # rotate the order
            total, obj_t = step(n)
            steps[n].append(total)
            losses[n].append(obj_t)

    med = {n: latency_stats(v)["p50"] for n, v in steps.items()}  # seconds in, seconds out
    med_obj = {n: latency_stats(v)["p50"] for n, v in losses.items()}
    out = {
        "device": str(dev)
        if dev.type != "cpu"
        else f"cpu ({platform.processor() or platform.machine()}, {args.threads} thread(s))",
        "torch": torch.__version__,
        "teacher": f"{args.teacher} w{args.teacher_width} ({count_params(teacher) / 1e6:.2f}M)",
        "student": f"{args.student} w{args.student_width} ({count_params(student) / 1e6:.2f}M)",
        "batch": [args.batch, 3, h, w],
        "amp": args.amp,
        "repeats": args.repeats,
        "step_ms": {n: round(1e3 * v, 2) for n, v in med.items()},
        "objective_ms": {n: round(1e3 * v, 3) for n, v in med_obj.items()},
        "overhead_vs_kd_pct": {n: round(100 * (med[n] / med["kd"] - 1), 2) for n in ("tfe", "tse")},
        "objective_overhead_vs_kd_step_pct": {
            n: round(100 * (med_obj[n] - med_obj["kd"]) / med["kd"], 2) for n in ("tfe", "tse")
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
