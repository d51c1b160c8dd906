"""DVC stages ``teacher``, ``baseline``, ``kd``, ``tfe_rdd``, ``tse_rdd``: one training run each.

    python -m pipeline.train STAGE [--params params.yaml] [--out-root outputs]

The params file is checked when it is read (:func:`rdd.config.load_params`), and the stage's
:class:`rdd.engine.TrainConfig` is built from its typed sections by
:func:`pipeline.config.train_stage_config` before any work (a bad key stops the stage with a
one-line error naming it). With ``train.nproc > 1`` the command re-executes itself under
``torchrun --standalone --nproc_per_node=N`` (PyTorch's own launcher; every rank then calls
:func:`rdd.engine.train`, which sets up DDP from the torchrun environment).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pipeline._cli import bad_params, out_root_option, params_option, unloadable_files
from pipeline.config import TRAIN_STAGES, Params, as_params, load_params, train_stage_config


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that runs ``python -m pipeline.train <argv>`` on ``nproc`` local processes."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "pipeline.train",
        *argv,
    ]


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def build_config(params: Params, stage: str, out_root: str | Path = "outputs"):
    """The :class:`rdd.engine.TrainConfig` of ``stage`` (``ValueError`` / ``FileNotFoundError``
    naming the params key or the missing input)."""
    return train_stage_config(params, stage, out_root=out_root)


def run_stage(params: Params, stage: str, out_root: str | Path = "outputs") -> dict:
    """Train one stage in this process; returns the engine's final metrics."""
    from rdd.engine import train

    with bad_params(stage):
        cfg = build_config(as_params(params), stage, out_root)
    with unloadable_files(stage):
        return train(cfg)


@click.command(context_settings={"show_default": True})
@click.argument("stage", type=click.Choice(TRAIN_STAGES))
@params_option
@out_root_option
def main(stage: str, params_path: str, out_root: str) -> None:
    """Train STAGE (teacher, baseline, kd, tfe_rdd or tse_rdd) as configured in params.yaml."""
    with bad_params(stage):
        params = load_params(params_path)
    if params.train.nproc > 1 and not under_torchrun():
        with bad_params(stage):  # validate once, before spawning N processes
            build_config(params, stage, out_root)
        cmd = torchrun_command(params.train.nproc, [stage, "--params", params_path, "--out-root", out_root])
        click.echo(f"{stage}: launching {' '.join(cmd[2:])}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(cmd[0], cmd)
    metrics = run_stage(params, stage, out_root)
    if int(os.environ.get("RANK", "0")) == 0:
        shown = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        click.echo(f"{stage}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))


if __name__ == "__main__":
    main()
