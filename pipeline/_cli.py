"""Shared bits of the stage entry points: common options and clean parameter errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

params_option = click.option(
    "--params",
    "params_path",
    default="params.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The pipeline parameters (params.yaml).",
)
out_root_option = click.option(
    "--out-root",
    default="outputs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder that holds every stage's outputs (outputs/<stage>/).",
)


@contextmanager
def bad_params(stage: str) -> Iterator[None]:
    """Turn a configuration / missing-input error into a one-line ``click`` error (exit 1).

    Wrap *only* the validation that happens before any work, so genuine failures later on keep
    their traceback.
    """
    try:
        yield
    except (ValueError, FileNotFoundError, KeyError, TypeError) as e:
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        raise click.ClickException(f"stage {stage!r}: {msg}") from None


@contextmanager
def unloadable_files(stage: str) -> Iterator[None]:
    """Turn a refused / truncated / corrupt torch file met during a run (a checkpoint to resume,
    an artifact, backbone weights: :class:`rdd.serialization.TorchFileError`) into a one-line
    ``click`` error naming it; every other error keeps its traceback."""
    try:
        yield
    except ValueError as e:
        from rdd.serialization import TorchFileError

        if isinstance(e, TorchFileError):
            raise click.ClickException(f"stage {stage!r}: {e}") from None
        raise


def stage_command(
    stage: str, run: Callable[[Any, str], Any], show: Callable[[Any, str], str], help: str
) -> click.Command:
    """The entry point of a stage that takes only ``--params`` and ``--out-root``: load the params
    (errors as one line, :func:`bad_params`), ``result = run(params, out_root)``, then print
    ``show(result, out_root)``."""

    @click.command(help=help)
    @params_option
    @out_root_option
    def main(params_path: str, out_root: str) -> None:
        from pipeline.config import load_params

        with bad_params(stage):
            params = load_params(params_path)
        click.echo(show(run(params, out_root), out_root))

    return main
