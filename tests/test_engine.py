"""Training engine: config validation, every method end to end on tiny data, bit-exact resume,
NaN detection, schedule golden values, learning progress."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rdd.engine import (
    CheckpointError,
    ConfigMismatchWarning,
    InfiniteLoader,
    NonFiniteLossError,
    PolyWarmup,
    SeededTrainSet,
    TrainConfig,
    Trainer,
    build_scheduler,
    cleanup_distributed,
    get_rng_state,
    init_distributed,
    load_checkpoint,
    rebase_scheduler,
    set_rng_state,
    train,
)
from rdd.engine.checkpoint import CHECKPOINT_FORMAT

K = 4
COLORS = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200], [210, 210, 60]])


def make_folder_dataset(
    root: Path, *, n_train: int = 8, n_val: int = 4, size=(48, 48), seed: int = 0
) -> Path:
    """A tiny learnable ``folder`` dataset: coloured rectangles (class = colour) + noise,
    2 % of the pixels ignored (255)."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            mask = np.full((h, w), rng.integers(0, K), np.uint8)
            for _ in range(4):
                c = rng.integers(0, K)
                y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
                mask[y0 : y0 + rng.integers(8, h // 2), x0 : x0 + rng.integers(8, w // 2)] = c
            img = np.clip(COLORS[mask] + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
            mask[rng.random((h, w)) < 0.02] = 255
            cv2.imwrite(str(root / "images" / split / f"{i:03d}.png"), img[..., ::-1])
            cv2.imwrite(str(root / "masks" / split / f"{i:03d}.png"), mask)
    (root / "classes.yaml").write_text("names: [red, green, blue, yellow]\nignore_index: 255\n")
    return root


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: these models are tiny, and on a shared 2-core machine two spinning
    threads per process are many times slower than one."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_folder_dataset(tmp_path_factory.mktemp("folder"))


@pytest.fixture(scope="module")
def teacher_artifact(tmp_path_factory, data_root) -> Path:
    """A real teacher artefact (random init; quality is irrelevant for the mechanics)."""
    from rdd.artifacts import save_artifact
    from rdd.data import build_dataset
    from rdd.models import create_model
    from rdd.spec import Normalization

    torch.manual_seed(0)
    t = create_model("deeplabv3_resnet18", num_classes=K, width_mult=0.125, aux=True)
    classes = build_dataset("folder", root=data_root, split="train").classes
    path = tmp_path_factory.mktemp("teacher") / "model.pt"
    save_artifact(path, t, classes=classes, normalization=Normalization(), input_size=(48, 48))
    return path


def cfg_dict(out_dir: Path, data_root: Path, teacher: Path | None = None, **over) -> dict:
    d = {
        "out_dir": str(out_dir),
        "model": {"name": "lraspp_mobilenetv2", "kwargs": {"width_mult": 0.25, "aux": True}},
        "data": {
            "dataset": "folder",
            "root": str(data_root),
            "crop_size": [32, 32],
            "batch_size": 4,
            "num_workers": 0,
            "scale_range": [0.75, 1.5],
        },
        "optim": {"iters": 4, "lr": 0.01},
        "log_interval": 2,
        "seed": 3,
    }
    if teacher is not None:
        d["teacher"] = {"artifact": str(teacher)}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return d


# --------------------------------------------------------------------------- config
BAD = [
    (lambda d: d["optim"].update(iters=0), r"optim\.iters must be > 0, got 0"),
    (lambda d: d["optim"].update(lrr=0.1), r"unknown key 'optim\.lrr'"),
    (lambda d: d["model"]["kwargs"].update(depth=3), r"model\.kwargs has arguments that model"),
    (lambda d: d["data"].update(kwargs={"fold": 1}), r"data\.kwargs has arguments that dataset"),
    (
        lambda d: d.update(loss={"extra_kd": [{"type": "cwd", "temp": 1}]}),
        r"loss\.extra_kd\[0\] has arguments that loss 'cwd'",
    ),
    (lambda d: d.update(bogus=1), r"unknown key 'bogus'"),
    (lambda d: d["model"].update(name="resnet9000"), r"model\.name.*unknown model 'resnet9000'"),
    (lambda d: d["data"].update(dataset="mnist"), r"data\.dataset.*unknown dataset 'mnist'"),
    (lambda d: d["data"].update(root="/nonexistent/dir"), r"data\.root.*not found"),
    (lambda d: d["data"].pop("root"), r"missing required key 'data\.root'"),
    (lambda d: d.pop("model"), r"missing required key 'model'"),
    (lambda d: d["data"].update(batch_size=0), r"data\.batch_size must be > 0"),
    (lambda d: d["data"].update(crop_size=[32, -1]), r"data\.crop_size"),
    (lambda d: d["optim"].update(lr=-1.0), r"optim\.lr must be > 0"),
    (lambda d: d["optim"].update(momentum=1.5), r"optim\.momentum must be in \[0, 1\), got 1\.5"),
    (lambda d: d["optim"].update(warmup_iters=4), r"optim\.warmup_iters must be < optim\.iters"),
    (lambda d: d["optim"].update(grad_clip=0), r"optim\.grad_clip must be > 0"),
    (lambda d: d.update(loss={"rdd": {"tse": True}}), r"loss\.rdd\.tse requires a teacher"),
    (lambda d: d.update(loss={"kd": {"type": "pixel"}}), r"loss\.kd\.type requires a teacher"),
    (lambda d: d.update(loss={"kd": {"type": "logit"}}), r"loss\.kd\.type must be one of"),
    (lambda d: d.update(loss={"rdd": {"threshold": 1.5}}), r"loss\.rdd\.threshold must be in \(0, 1\)"),
    (lambda d: d.update(loss={"rdd": {"mode": "nand"}}), r"loss\.rdd\.mode must be one of"),
    (lambda d: d.update(loss={"rdd": {"min_kept": 2}}), r"loss\.rdd\.min_kept"),
    (lambda d: d.update(loss={"extra_kd": [{"type": "fitnet"}]}), r"loss\.extra_kd\[0\]\.type"),
    (lambda d: d.update(stop_at=5), r"stop_at must be <= optim\.iters \(4\), got 5"),
    (lambda d: d.update(resume="/nonexistent/checkpoint.pt"), r"resume.*not found"),
    (lambda d: d.update(amp="fp8"), r"amp must be one of"),
    (lambda d: d.update(device="tpu"), r"device must be"),
    (lambda d: d.update(log_interval=0), r"log_interval must be > 0"),
    (lambda d: d.update(teacher={"artifact": "/nonexistent/model.pt"}), r"teacher\.artifact.*not found"),
]


@pytest.mark.parametrize("mutate,match", BAD, ids=[m for _, m in BAD])
def test_config_validation_names_the_key(tmp_path, data_root, mutate, match):
    d = cfg_dict(tmp_path / "run", data_root)
    mutate(d)
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(d)
    assert not (tmp_path / "run").exists()  # nothing done before validation


def test_config_tfe_and_tse_need_tfe_iters(tmp_path, data_root, teacher_artifact):
    d = cfg_dict(tmp_path, data_root, teacher_artifact, loss={"rdd": {"tfe": True, "tse": True}})
    with pytest.raises(ValueError, match=r"loss\.rdd\.tfe_iters is required"):
        TrainConfig.from_dict(d)
    # one stage alone: TFE on every iteration, TSE from the start
    d["loss"]["rdd"] = {"tfe": True}
    assert TrainConfig.from_dict(d).loss.rdd.tfe_iters == 4
    d["loss"]["rdd"] = {"tse": True}
    assert TrainConfig.from_dict(d).loss.rdd.tfe_iters == 0


def test_config_roundtrip_and_hash(tmp_path, data_root, teacher_artifact):
    d = cfg_dict(
        tmp_path,
        data_root,
        teacher_artifact,
        loss={
            "kd": {"type": "pixel"},
            "extra_kd": [{"type": "cwd", "tau": 2.0}],
            "rdd": {"tfe": True, "tse": True, "tfe_iters": 2},
        },
    )
    cfg = TrainConfig.from_dict(d)
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert again.loss.extra_kd[0].kwargs == {"tau": 2.0}
    h = cfg.config_hash()
    assert len(h) == 64
    # stage-split keys do not change the hash; the recipe does
    same = cfg_dict(
        tmp_path / "other", data_root, teacher_artifact, loss=d["loss"], stop_at=2, log_interval=1
    )
    assert TrainConfig.from_dict(same).config_hash() == h
    other = copy.deepcopy(d)
    other["optim"]["lr"] = 0.02
    assert TrainConfig.from_dict(other).config_hash() != h


def test_poly_warmup_golden_values():
    f = PolyWarmup(total_iters=10, power=0.9, warmup_iters=2, warmup_ratio=0.1)
    assert f(0) == pytest.approx(0.1)
    assert f(1) == pytest.approx(0.55)
    assert f(2) == pytest.approx(0.8**0.9)
    assert f(5) == pytest.approx(0.5**0.9)
    assert f(10) == 0.0
    g = PolyWarmup(total_iters=4, power=1.0)
    assert [g(t) for t in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]


# --------------------------------------------------------------------------- data feeding
def test_rebase_scheduler_keeps_the_step_and_applies_the_new_curve():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.01)
    sch = build_scheduler(opt, total_iters=4, warmup_iters=1)
    for _ in range(2):
        opt.step()
        sch.step()
    state = copy.deepcopy(sch.state_dict())
    # unchanged config: exactly the restored LR
    lrs = rebase_scheduler(sch, base_lr=0.01, total_iters=4, warmup_iters=1)
    assert lrs == [0.01 * (1 - 2 / 4) ** 0.9] and sch.state_dict() == state
    # changed lr / iters: the new curve at the same step, and it keeps following it
    assert rebase_scheduler(sch, base_lr=0.05, total_iters=8) == [0.05 * (1 - 2 / 8) ** 0.9]
    assert opt.param_groups[0]["initial_lr"] == 0.05 and sch.last_epoch == 2
    opt.step()
    sch.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * (1 - 3 / 8) ** 0.9)
    assert sch.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_infinite_loader_is_a_function_of_step(data_root):
    from rdd.data import TrainTransform, build_dataset

    ds = SeededTrainSet(
        build_dataset("folder", root=data_root, split="train"),
        TrainTransform((32, 32), scale_range=(0.5, 1.5)),
    )
    full = InfiniteLoader(ds, batch_size=3, seed=7)  # 8 samples → 2 batches per epoch
    batches = [next(full) for _ in range(5)]  # crosses two epoch boundaries
    late = InfiniteLoader(ds, batch_size=3, seed=7, start_iter=3)
    for b in batches[3:]:
        x, y = next(late)
        assert torch.equal(x, b[0]) and torch.equal(y, b[1])
    # epochs are reshuffled and re-augmented
    assert not torch.equal(batches[0][0], batches[2][0])
    # ranks of a 2-process world read disjoint halves
    r0 = InfiniteLoader(ds, batch_size=2, rank=0, world_size=2, seed=7)
    r1 = InfiniteLoader(ds, batch_size=2, rank=1, world_size=2, seed=7)
    assert r0.batches_per_epoch == r1.batches_per_epoch == 2
    x0, _ = next(r0)
    x1, _ = next(r1)
    assert not torch.equal(x0, x1)
    i0, i1 = set(r0.sampler), set(r1.sampler)
    assert not i0 & i1 and i0 | i1 == set(range(8))


# --------------------------------------------------------------------------- methods
METHODS = {
    "teacher": (
        {"model": {"name": "deeplabv3_resnet18", "kwargs": {"width_mult": 0.125, "aux": True}}},
        False,
    ),
    "baseline": ({"loss": {"aux_weight": 1.0}}, False),
    "kd": ({"loss": {"aux_weight": 0.0, "kd": {"type": "pixel", "temperature": 2.0}}}, True),
    "tfe": ({"loss": {"kd": {"type": "pixel"}, "rdd": {"tfe": True}}}, True),
    "tse": ({"loss": {"kd": {"type": "pixel"}, "rdd": {"tse": True, "mode": "xor"}}}, True),
    "tfe_tse": ({"loss": {"kd": {"type": "pixel"}, "rdd": {"tfe": True, "tse": True, "tfe_iters": 2}}}, True),
    "cwd_tse": (
        {"loss": {"extra_kd": [{"type": "cwd", "weight": 1.0, "tau": 4.0}], "rdd": {"tse": True}}},
        True,
    ),
    "at_tfe": (
        {
            "loss": {
                "kd": {"type": "pixel"},
                "extra_kd": [{"type": "at", "weight": 100.0, "feature": "backbone"}],
                "rdd": {"tfe": True},
            }
        },
        True,
    ),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_runs_and_writes_artifacts(tmp_path, data_root, teacher_artifact, method):
    from rdd.artifacts import load_artifact

    over, needs_teacher = METHODS[method]
    out = tmp_path / method
    d = cfg_dict(out, data_root, teacher_artifact if needs_teacher else None, **over)
    m = train(d)
    assert m["step"] == 4 and m["completed"]
    assert 0.0 <= m["miou"] <= 1.0 and math.isfinite(m["train_loss"])
    assert m["global_batch_size"] == 4 and m["params"] > 0
    for f in ("checkpoint.pt", "model.pt", "model.json", "metrics.json", "train.log"):
        assert (out / f).is_file(), f
    assert not list(out.glob(".*.tmp*"))  # atomic writes left nothing
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["miou"] == pytest.approx(m["miou"]) and on_disk["time_per_iter_s"] > 0
    student, meta = load_artifact(out / "model.pt")
    assert meta["classes"]["names"] == ["red", "green", "blue", "yellow"]
    # eval_size null: validation ran at the native 48×48 frames (not the 32×32 crops)
    assert meta["input_size"] == [48, 48] and meta["metrics"]["miou"] == pytest.approx(m["miou"])
    assert student(torch.zeros(1, 3, 32, 32))["out"].shape == (1, K, 32, 32)
    live = json.loads((out / "dvclive" / "metrics.json").read_text())
    assert "loss" in live["train"] and "miou" in live["val"]
    plots = out / "dvclive" / "plots" / "metrics"
    assert (plots / "train" / "lr.tsv").is_file()
    rdd = over.get("loss", {}).get("rdd", {})
    if rdd.get("tfe"):
        assert (plots / "rdd" / "tfe_weight_mean.tsv").is_file()
    if rdd.get("tse"):
        assert (plots / "rdd" / "tse_selected_frac.tsv").is_file()
    log_text = (out / "train.log").read_text()
    assert "global batch size 4" in log_text


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_channels_last_grad_clip_warmup(tmp_path, data_root, teacher_artifact, amp):
    out = tmp_path / amp
    m = train(
        cfg_dict(
            out,
            data_root,
            teacher_artifact,
            amp=amp,
            channels_last=True,
            optim={"iters": 4, "grad_clip": 1.0, "warmup_iters": 2},
            loss={"kd": {"type": "pixel"}, "rdd": {"tfe": True}},
        )
    )
    assert m["step"] == 4 and math.isfinite(m["train_loss"])
    ckpt = load_checkpoint(out / "checkpoint.pt")
    if amp == "fp16":
        assert ckpt["scaler"]["scale"] > 0  # the GradScaler state is checkpointed
    # lr used at iterations 1 (warmup: r + (1 − r)·1/2) and 3 (poly: (1 − 3/4)^0.9)
    lrs = _logged(out, "train/lr.tsv")
    assert lrs == pytest.approx([0.01 * (1e-6 + (1 - 1e-6) / 2), 0.01 * 0.25**0.9])


def test_tfe_needs_a_teacher_with_aux(tmp_path, data_root):
    from rdd.artifacts import save_artifact
    from rdd.data import build_dataset
    from rdd.models import create_model
    from rdd.spec import Normalization

    t = create_model("lraspp_mobilenetv2", num_classes=K, width_mult=0.25, aux=False)
    classes = build_dataset("folder", root=data_root, split="train").classes
    save_artifact(tmp_path / "t.pt", t, classes=classes, normalization=Normalization(), input_size=(32, 32))
    d = cfg_dict(tmp_path / "run", data_root, tmp_path / "t.pt", loss={"rdd": {"tfe": True}})
    with pytest.raises(ValueError, match=r"loss\.rdd\.tfe needs a teacher with an auxiliary head"):
        train(d)


class _TeacherCallTrainer(Trainer):
    """The real trainer, with a forward hook recording each teacher call's ``with_aux``."""

    def _load_teacher(self) -> None:
        super()._load_teacher()
        self.teacher_calls: list[bool] = []
        self.teacher.register_forward_hook(
            lambda m, args, kwargs, out: self.teacher_calls.append(bool(kwargs.get("with_aux"))),
            with_kwargs=True,
        )


@pytest.mark.parametrize(
    "loss,calls",
    [
        ({"rdd": {"tfe": True, "tfe_iters": 2}}, [True, True]),  # ce phase: no teacher
        ({"kd": {"type": "pixel"}, "rdd": {"tfe": True, "tfe_iters": 2}}, [True, True, False, False]),
        ({"rdd": {"tse": True}}, [False] * 4),
    ],
    ids=["tfe-only", "tfe+kd", "tse"],
)
def test_teacher_runs_only_when_a_loss_uses_it(tmp_path, data_root, teacher_artifact, loss, calls):
    cfg = TrainConfig.from_dict(cfg_dict(tmp_path / "run", data_root, teacher_artifact, loss=loss))
    info = init_distributed("cpu")
    try:
        trainer = _TeacherCallTrainer(cfg, info)
        m = trainer.run()
    finally:
        cleanup_distributed(info)
    assert m["step"] == 4 and math.isfinite(m["train_loss"])
    assert trainer.teacher_calls == calls


def test_artifact_input_size_is_the_validated_size(tmp_path, data_root):
    """eval_size set → that size (non-square here); the native-size case is checked in
    test_each_method_runs_and_writes_artifacts (48×48 frames, 32×32 crops)."""
    from rdd.artifacts import load_artifact

    out = tmp_path / "run"
    train(cfg_dict(out, data_root, optim={"iters": 1}, data={"eval_size": [40, 24]}))
    student, meta = load_artifact(out / "model.pt")
    assert meta["input_size"] == [40, 24]
    assert student(torch.zeros(1, 3, 40, 24))["out"].shape == (1, K, 40, 24)


# --------------------------------------------------------------------------- DDP logging
def _stats_worker(rank: int, world: int, port: int, cases: list, out: str) -> None:
    import os

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    from rdd.engine.objective import global_rdd_stats

    info = init_distributed("cpu")
    try:
        res = [global_rdd_stats({key: m[rank]}, y[rank], 255) for key, m, y in cases]
        (Path(out) / f"stats{rank}.json").write_text(json.dumps(res))
    finally:
        cleanup_distributed(info)


def test_rdd_stats_are_reduced_over_ranks(tmp_path):
    """rdd/* logging statistics on 2 gloo ranks == rdd_stats of the concatenated global batch
    (rank 1 has another batch size, more ignored pixels, and in the TFE case none valid)."""
    import socket

    import torch.multiprocessing as mp

    from rdd.losses import rdd_stats

    g = torch.Generator().manual_seed(0)
    y0 = torch.randint(0, K, (2, 6, 5), generator=g)
    y1 = torch.randint(0, K, (1, 6, 5), generator=g)
    y1[:, :4] = 255
    y1_none = torch.full((1, 6, 5), 255)
    w = [torch.rand(2, 6, 5, generator=g) + 1, torch.rand(1, 6, 5, generator=g) * 0.1]
    mask = [torch.rand(2, 6, 5, generator=g) < 0.2, torch.rand(1, 6, 5, generator=g) < 0.9]
    cases = [("weights", w, [y0, y1_none]), ("weights", w, [y0, y1]), ("mask", mask, [y0, y1])]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(
        _stats_worker, args=(2, port, cases, str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    r0 = json.loads((tmp_path / "stats0.json").read_text())
    r1 = json.loads((tmp_path / "stats1.json").read_text())
    assert r0 == r1  # every rank logs the same
    for (key, m, y), got in zip(cases, r0):
        want = rdd_stats(target=torch.cat(y), **{key: torch.cat(m)})
        assert got.keys() == want.keys() and want
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-6), (key, k)
        local = rdd_stats(target=y[0], **{key: m[0]})
        if y[1] is not y1_none:  # rank 0's share differs
            assert any(abs(local[k] - want[k]) > 1e-3 for k in want), (key, local, want)


# --------------------------------------------------------------------------- resume
def _state(path: Path) -> dict:
    return load_checkpoint(path)


def test_stop_at_and_resume_is_bit_exact(tmp_path, data_root, teacher_artifact):
    """2×N uninterrupted == N (stop_at, the TFE→TSE split) + resume + N, tensor for tensor."""
    loss = {"kd": {"type": "pixel"}, "rdd": {"tfe": True, "tse": True, "tfe_iters": 3}}
    common = dict(optim={"iters": 6, "lr": 0.02, "warmup_iters": 2}, loss=loss)
    full = train(cfg_dict(tmp_path / "full", data_root, teacher_artifact, **common))
    first = train(cfg_dict(tmp_path / "tfe", data_root, teacher_artifact, stop_at=3, **common))
    assert first["step"] == 3 and not first["completed"]
    second = train(
        cfg_dict(
            tmp_path / "tse",
            data_root,
            teacher_artifact,
            resume=str(tmp_path / "tfe" / "checkpoint.pt"),
            **common,
        )
    )
    assert second["step"] == 6 and second["completed"]
    a, b = _state(tmp_path / "full" / "checkpoint.pt"), _state(tmp_path / "tse" / "checkpoint.pt")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    assert full["miou"] == second["miou"]
    # the split run's time accumulates over both stages
    assert second["train_time_s"] > first["train_time_s"]


def test_resume_with_another_config_warns(tmp_path, data_root):
    train(cfg_dict(tmp_path / "a", data_root, stop_at=2))
    d = cfg_dict(
        tmp_path / "b",
        data_root,
        optim={"iters": 4, "lr": 0.05},
        resume=str(tmp_path / "a" / "checkpoint.pt"),
    )
    with pytest.warns(ConfigMismatchWarning, match=r"differing keys: optim\.lr"):
        m = train(d)
    assert m["step"] == 4


def test_resume_with_changed_optim_follows_the_new_schedule(tmp_path, data_root):
    """A checkpoint at step 2 of iters 4 (lr 0.01) resumed with iters 8, lr 0.05: the LR is
    0.05·(1 − t/8)^0.9 for t = 2..7, not the old curve (which hits 0 at t = 4)."""
    train(cfg_dict(tmp_path / "a", data_root, stop_at=2, log_interval=1))
    d = cfg_dict(
        tmp_path / "b",
        data_root,
        optim={"iters": 8, "lr": 0.05, "momentum": 0.5},
        resume=str(tmp_path / "a" / "checkpoint.pt"),
        log_interval=1,
    )
    with pytest.warns(ConfigMismatchWarning, match=r"optim\.iters"):
        m = train(d)
    assert m["step"] == 8 and m["completed"]
    lrs = _logged(tmp_path / "b", "train/lr.tsv")
    assert lrs == pytest.approx([0.05 * (1 - t / 8) ** 0.9 for t in range(2, 8)], rel=1e-6)
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["scheduler"]["base_lrs"] == [0.05] and ckpt["scheduler"]["last_epoch"] == 8
    assert ckpt["scheduler"]["lr_lambdas"][0]["total_iters"] == 8
    group = ckpt["optimizer"]["param_groups"][0]
    assert group["initial_lr"] == 0.05 and group["momentum"] == 0.5


def test_resume_past_the_end_is_an_error(tmp_path, data_root):
    train(cfg_dict(tmp_path / "a", data_root))
    with pytest.raises(ValueError, match="nothing left to do"):
        train(cfg_dict(tmp_path / "b", data_root, resume=str(tmp_path / "a" / "checkpoint.pt")))


# --------------------------------------------------------------------------- own checkpoint
def _log(out: Path) -> str:
    return (out / "train.log").read_text()


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _state(a / "checkpoint.pt")["model"], _state(b / "checkpoint.pt")["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert (a / "model.pt").read_bytes() == (b / "model.pt").read_bytes()  # same artefact bytes


def test_a_run_continues_its_own_checkpoint(tmp_path, data_root):
    """An interrupted run (here: a checkpoint at step 4 of 6) continues at the saved step when
    the run is started again, and ends bit-identical to an uninterrupted one; a complete
    checkpoint or one of another config means training from scratch, with one logged line."""
    over = dict(optim={"iters": 6, "lr": 0.02}, eval_interval=2)
    full = train(cfg_dict(tmp_path / "full", data_root, **over))
    run = tmp_path / "run"
    train(cfg_dict(run, data_root, stop_at=4, **over))  # as if killed after step 4
    m = train(cfg_dict(run, data_root, **over))
    assert f"resumed {run / 'checkpoint.pt'} at iteration 4" in _log(run)
    assert m["step"] == 6 and m["miou"] == full["miou"]
    _same_weights(tmp_path / "full", run)
    before = (run / "checkpoint.pt").read_bytes()
    train(cfg_dict(run, data_root, **over))  # complete: from scratch again
    assert "not continuing it: it is complete (iteration 6 of 6); training from scratch" in _log(run)
    _same_weights(tmp_path / "full", run)
    # the same training state, the same checkpoint bytes (wall time lives in checkpoint.json),
    # so DVC retrains nothing that depends on it (tse_rdd on tfe_rdd's checkpoint)
    assert (run / "checkpoint.pt").read_bytes() == before
    assert json.loads((run / "checkpoint.json").read_text())["extra"]["train_time_s"] > 0
    other = tmp_path / "other"
    train(cfg_dict(other, data_root, stop_at=2, **over))
    train(cfg_dict(other, data_root, **{**over, "optim": {"iters": 6, "lr": 0.03}}))
    text = _log(other)
    assert "written under another config (differing keys: optim.lr); training from scratch" in text
    assert "resumed" not in text


def test_tse_continues_its_own_checkpoint_only_when_it_descends_from_tfe(
    tmp_path, data_root, teacher_artifact
):
    from rdd.serialization import save_torch_file

    loss = {"kd": {"type": "pixel"}, "rdd": {"tfe": True, "tse": True, "tfe_iters": 2}}
    common = dict(optim={"iters": 6, "lr": 0.02}, loss=loss, eval_interval=1)
    train(cfg_dict(tmp_path / "full", data_root, teacher_artifact, **common))
    tfe, tse = tmp_path / "tfe", tmp_path / "tse"
    train(cfg_dict(tfe, data_root, teacher_artifact, stop_at=2, **common))
    resume = str(tfe / "checkpoint.pt")
    train(cfg_dict(tse, data_root, teacher_artifact, resume=resume, stop_at=4, **common))
    train(cfg_dict(tse, data_root, teacher_artifact, resume=resume, **common))
    assert f"resumed {tse / 'checkpoint.pt'} at iteration 4" in _log(tse)
    _same_weights(tmp_path / "full", tse)
    # tfe_rdd retrained to other weights: tse's own progress is stale → start from tfe's again
    train(cfg_dict(tse, data_root, teacher_artifact, resume=resume, stop_at=4, **common))
    ckpt = load_checkpoint(resume)
    first = next(iter(ckpt["model"]))
    ckpt["model"][first] = ckpt["model"][first] + 1e-3
    save_torch_file(ckpt, resume)
    (tse / "train.log").unlink()
    train(cfg_dict(tse, data_root, teacher_artifact, resume=resume, **common))
    text = _log(tse)
    assert "continues another start point" in text and f"starting from {resume}" in text
    assert f"resumed {resume} at iteration 2" in text


def test_own_checkpoint_crafted_corrupt_or_old(tmp_path, data_root, hostile_pickle):
    """Crafted: an error naming the file, nothing runs. Truncated or written by the format-/1
    code (numpy RNG arrays): one logged line, then training from scratch."""
    run = tmp_path / "run"
    run.mkdir()
    marker = hostile_pickle(run / "checkpoint.pt", _checkpoint_shaped)
    with pytest.raises(CheckpointError) as e:
        train(cfg_dict(run, data_root))
    assert not marker.exists()
    msg = str(e.value)
    assert "\n" not in msg and str(run / "checkpoint.pt") in msg and "delete it" in msg, msg
    torch.save(
        {
            "format": "rdd-edge-checkpoint/1",
            "rng": [{"numpy": np.zeros(3, np.uint32)}],
            "torch_version": torch.__version__,
        },
        run / "checkpoint.pt",
    )
    assert train(cfg_dict(run, data_root))["step"] == 4
    assert "written by an older rdd-edge (checkpoint format /1); training from scratch" in _log(run)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    assert train(cfg_dict(run, data_root))["step"] == 4
    assert "cannot be read (truncated or corrupt); training from scratch" in _log(run)


# --------------------------------------------------------------------------- safe loading
def test_checkpoint_loads_with_plain_weights_only(tmp_path, data_root):
    """No allow-list: plain ``torch.load(weights_only=True)`` reads a checkpoint in full."""
    train(cfg_dict(tmp_path / "a", data_root, stop_at=2))
    ckpt = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["step"] == 2
    rng = ckpt["rng"][0]
    assert isinstance(rng["numpy"]["keys"], torch.Tensor) and rng["numpy"]["keys"].shape == (624,)
    assert isinstance(rng["python"][1], list) and len(rng["python"][1]) == 625


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    import random

    from rdd.serialization import load_torch_file, save_torch_file

    random.seed(1)
    random.gauss(0, 1)  # python: a cached gauss_next
    np.random.seed(2)
    np.random.normal()  # numpy: has_gauss = 1
    torch.manual_seed(3)
    save_torch_file({"rng": get_rng_state()}, tmp_path / "rng.pt")
    want = (
        random.random(),
        random.gauss(0, 1),
        np.random.normal(size=3).tolist(),
        np.random.randint(0, 2**31),
        torch.rand(3).tolist(),
    )
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_torch_file(tmp_path / "rng.pt")["rng"])
    got = (
        random.random(),
        random.gauss(0, 1),
        np.random.normal(size=3).tolist(),
        np.random.randint(0, 2**31),
        torch.rand(3).tolist(),
    )
    assert got == want


def _checkpoint_shaped(payload) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "step": 1,
        "model": {},
        "optimizer": {},
        "scheduler": {},
        "rng": [payload],
        "config_hash": "x",
    }


def test_resume_from_a_crafted_checkpoint_runs_nothing(tmp_path, data_root, hostile_pickle):
    evil = tmp_path / "evil" / "checkpoint.pt"
    evil.parent.mkdir()
    marker = hostile_pickle(evil, _checkpoint_shaped)
    with pytest.raises(CheckpointError) as e:
        train(cfg_dict(tmp_path / "b", data_root, resume=str(evil)))
    msg = str(e.value)
    assert not marker.exists()
    assert "\n" not in msg and str(evil) in msg and "refused" in msg and "io.open" in msg, msg
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()
    assert not (tmp_path / "b" / "model.pt").exists()


def test_crafted_teacher_artifact_runs_nothing(tmp_path, data_root, teacher_artifact, hostile_pickle):
    """``teacher.artifact`` (kd / RDD stages) goes through the same safe loader."""
    import shutil

    evil = tmp_path / "teacher" / "model.pt"
    evil.parent.mkdir()
    shutil.copy(teacher_artifact.with_suffix(".json"), evil.with_suffix(".json"))
    marker = hostile_pickle(evil, lambda p: {"backbone.conv1.weight": p})
    with pytest.raises(ValueError) as e:
        train(cfg_dict(tmp_path / "kd", data_root, evil, loss={"kd": {"type": "pixel"}}))
    assert not marker.exists()
    msg = str(e.value)
    assert "\n" not in msg and str(evil) in msg and "refused" in msg, msg


def test_resume_from_a_truncated_checkpoint_is_a_one_line_error(tmp_path, data_root):
    train(cfg_dict(tmp_path / "a", data_root, stop_at=2))
    bad = tmp_path / "cut.pt"
    data = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        train(cfg_dict(tmp_path / "b", data_root, resume=str(bad)))
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "truncated, corrupt" in msg, msg
    art = tmp_path / "a" / "model.pt"  # weights only: a clear "not a checkpoint"
    with pytest.raises(CheckpointError, match=r"model\.pt: not an rdd-edge training checkpoint"):
        load_checkpoint(art)


# --------------------------------------------------------------------------- failures
def test_nan_loss_stops_with_a_clear_message(tmp_path, data_root, teacher_artifact):
    d = cfg_dict(
        tmp_path / "nan",
        data_root,
        teacher_artifact,
        optim={"iters": 6, "lr": 1e30},
        loss={"kd": {"type": "pixel"}},
    )
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration \d+/6.*task=.*kd="):
        train(d)
    assert not (tmp_path / "nan" / "model.pt").exists()


# --------------------------------------------------------------------------- learning
def _logged(out: Path, name: str) -> list[float]:
    tsv = out / "dvclive" / "plots" / "metrics" / name
    rows = tsv.read_text().strip().splitlines()[1:]
    return [float(r.split("\t")[-1]) for r in rows]


def test_short_run_loss_falls(tmp_path, data_root):
    out = tmp_path / "learn"
    train(cfg_dict(out, data_root, optim={"iters": 30, "lr": 0.05}, log_interval=1, data={"batch_size": 8}))
    losses = _logged(out, "train/loss.tsv")
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


@pytest.mark.slow
def test_every_method_learns(tmp_path):
    """Longer run (~minutes on 2 cores): a trained teacher, then each method: loss falls and the
    student's mIoU rises well above an untrained model's."""
    root = make_folder_dataset(tmp_path / "data", n_train=24, n_val=8, size=(64, 64))
    teacher = tmp_path / "teacher"
    tm = train(
        cfg_dict(
            teacher,
            root,
            model={"name": "deeplabv3_resnet18", "kwargs": {"width_mult": 0.25, "aux": True}},
            optim={"iters": 150, "lr": 0.05},
            data={"crop_size": [48, 48]},
            log_interval=5,
        )
    )
    assert tm["miou"] > 0.5, tm
    results = {"teacher": tm["miou"]}
    for name, (over, needs_teacher) in METHODS.items():
        if name == "teacher":
            continue
        over = copy.deepcopy(over)
        if "tfe_iters" in over.get("loss", {}).get("rdd", {}):
            over["loss"]["rdd"]["tfe_iters"] = 60
        out = tmp_path / name
        m = train(
            cfg_dict(
                out,
                root,
                teacher / "model.pt" if needs_teacher else None,
                optim={"iters": 120, "lr": 0.05},
                data={"crop_size": [48, 48]},
                log_interval=5,
                **over,
            )
        )
        losses = _logged(out, "train/loss.tsv")
        results[name] = m["miou"]
        assert np.mean(losses[-4:]) < np.mean(losses[:4]), (name, losses)
        assert m["miou"] > 0.4, (name, m["miou"])
    print(json.dumps(results))
