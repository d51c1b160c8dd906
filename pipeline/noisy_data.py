"""DVC stage ``noisy_data``: the synthetic dataset with a known share of noisy *train* labels.

Runs the ``data`` stage (:func:`pipeline.data.prepare_data`: generates
``<out-root>/data/synthetic`` from ``prepare.synthetic``, checks it, writes ``dataset.json`` — its
class frequencies are those of the clean labels), then corrupts the train masks in place with
:func:`rdd.label_noise.corrupt_split` and writes the corruption summary to
``<out-root>/data/noise.json``. Val masks stay clean. Training with the same ``--out-root``
then reads the noisy data.

Parameters come from the ``noise`` section of the params file (``seed``, ``boundary_share``,
``radius``, ``patch``; defaults and ranges in ``docs/PARAMS.md``).

Only ``data.dataset: synthetic`` is accepted: the masks are rewritten in place, and a real
dataset lives outside ``outputs/``.

    python -m pipeline.noisy_data --params studies/label_noise/params.yaml \\
        --out-root outputs/label_noise/n20 --rate 0.2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline._cli import bad_params, out_root_option, params_option
from pipeline.config import Params, as_params, dataset_root, load_params

MAX_RATE = 0.9


def check_rate(rate: float) -> float:
    """``--rate`` must lie in ``[0, MAX_RATE]``."""
    if not 0.0 <= rate <= MAX_RATE:
        raise ValueError(f"--rate must be in [0, {MAX_RATE}], got {rate}")
    return float(rate)


def prepare_noisy_data(params: Params, out_root: str | Path, rate: float) -> dict[str, Any]:
    """Run the stage in-process; returns what ``noise.json`` records."""
    from pipeline.data import prepare_data
    from rdd.label_noise import corrupt_split
    from rdd.spec import write_json_atomic

    with bad_params("noisy_data"):
        rate = check_rate(rate)
        params = as_params(params)
    data, noise = params.data, params.noise
    with bad_params("noisy_data"):
        if data.dataset != "synthetic":
            raise params.error(
                f"data.dataset must be 'synthetic' for the noisy_data stage (masks "
                f"are corrupted in place), got {data.dataset!r}"
            )
        if data.train_split == data.val_split:
            raise params.error(
                "data.train_split and data.val_split must differ for the "
                "noisy_data stage (only the train split is corrupted)"
            )
    summary_data = prepare_data(params, out_root)
    root = Path(dataset_root(params, out_root))
    summary = corrupt_split(
        root,
        data.train_split,
        rate=rate,
        seed=noise.seed,
        boundary_share=noise.boundary_share,
        radius=noise.radius,
        patch=noise.patch,
    )
    summary["root"] = str(root)
    summary["clean_splits"] = sorted(s for s in summary_data["splits"] if s != data.train_split)
    write_json_atomic(Path(out_root) / "data" / "noise.json", summary)
    return summary


@click.command()
@params_option
@out_root_option
@click.option(
    "--rate",
    type=float,
    required=True,
    help=f"Share of the valid train pixels to corrupt, in [0, {MAX_RATE}].",
)
def main(params_path: str, out_root: str, rate: float) -> None:
    """Prepare the synthetic dataset and corrupt its train labels."""
    with bad_params("noisy_data"):
        params = load_params(params_path)
        check_rate(rate)
    s = prepare_noisy_data(params, out_root, rate)
    click.echo(
        f"noisy_data: {s['num_files']} {s['split']} masks at {s['root']}: "
        f"{s['realised_rate']:.2%} changed (boundary {s['boundary_rate']:.2%}, "
        f"random {s['random_rate']:.2%}); "
        f"{', '.join(s['clean_splits']) or 'no other split'} clean"
    )


if __name__ == "__main__":
    main()
