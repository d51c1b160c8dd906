"""Distributed data parallel on CPU: two processes, gloo backend, torchrun-style environment."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from test_engine import K, cfg_dict, make_folder_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: dict, out: str) -> None:
    # what torchrun --nproc_per_node=2 would set
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    from rdd.engine import TrainConfig, Trainer, cleanup_distributed, init_distributed

    info = init_distributed("cpu")
    assert info.distributed and info.rank == rank and torch.distributed.get_backend() == "gloo"
    try:
        trainer = Trainer(TrainConfig.from_dict(cfg), info)
        metrics = trainer.run()
        torch.save(trainer.student.state_dict(), Path(out) / f"rank{rank}.pt")
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(metrics))
    finally:
        cleanup_distributed(info)


def test_ddp_two_cpu_processes_stay_in_sync(tmp_path):
    from rdd.artifacts import load_artifact
    from rdd.data import EvalTransform, build_dataset
    from rdd.evaluation import evaluate

    root = make_folder_dataset(tmp_path / "data", n_train=8, n_val=3)
    run = tmp_path / "run"
    cfg = cfg_dict(run, root, optim={"iters": 3, "lr": 0.02}, data={"batch_size": 2})
    # fork: the children inherit the imported modules (spawn re-imports torch: ~5-10 s each)
    mp.start_processes(
        _worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )

    s0 = torch.load(tmp_path / "rank0.pt")
    s1 = torch.load(tmp_path / "rank1.pt")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and len(ckpt["rng"]) == 2  # one RNG state per rank
    for k in s0:
        assert torch.equal(s0[k], s1[k]), f"ranks differ in {k}"
        assert torch.equal(s0[k], ckpt["model"][k]), k
    m0 = json.loads((tmp_path / "rank0.json").read_text())
    m1 = json.loads((tmp_path / "rank1.json").read_text())
    assert m0["miou"] == m1["miou"]  # merged confusion matrix
    assert m0["world_size"] == 2 and m0["global_batch_size"] == 4
    assert "global batch size 4 (2 × 2 ranks)" in (run / "train.log").read_text()
    # only rank 0 wrote files, once
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.json",
        "checkpoint.pt",
        "dvclive",
        "metrics.json",
        "model.json",
        "model.pt",
        "train.log",
    ]
    # the merged validation (ranks saw 2 + 1 of the 3 images) equals one process on all 3
    model, _ = load_artifact(run / "model.pt")
    val = build_dataset("folder", root=root, split="val", transform=EvalTransform())
    single = evaluate(model, val, K)
    assert single["miou"] == pytest.approx(m0["miou"], abs=1e-12)
    assert np.isfinite(m0["train_loss"])


@pytest.mark.slow
def test_torchrun_two_processes_end_to_end(tmp_path):
    """The real launcher: ``torchrun --nproc_per_node=2 script.py`` where every rank calls
    ``rdd.engine.train`` (which creates and destroys the gloo process group itself)."""
    import subprocess
    import sys

    root = make_folder_dataset(tmp_path / "data", n_train=8, n_val=3)
    run = tmp_path / "run"
    cfg = cfg_dict(run, root, optim={"iters": 3, "lr": 0.02}, data={"batch_size": 2})
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    script = tmp_path / "launch.py"
    script.write_text(
        "import json, sys, torch\n"
        "torch.set_num_threads(1)\n"
        "from rdd.engine import train\n"
        "m = train(json.load(open(sys.argv[1])))\n"
        "assert m['world_size'] == 2 and m['global_batch_size'] == 4, m\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port",
            str(_free_port()),
            str(script),
            str(tmp_path / "cfg.json"),
        ],
        check=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["step"] == 3
    assert (run / "model.pt").is_file() and (run / "checkpoint.pt").is_file()
