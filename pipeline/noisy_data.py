"""DVC stage ``noisy_data``: the synthetic dataset with a known share of noisy *train* labels.

Runs the ``data`` stage (:func:`pipeline.data.prepare_data`: generates
``<out-root>/data/synthetic`` from ``data.synthetic``, checks it, writes ``dataset.json`` — its
class frequencies are those of the clean labels), then corrupts the train masks in place with
:func:`rdd.label_noise.corrupt_split` and writes the corruption summary to
``<out-root>/data/noise.json``. Val masks stay clean. Training with the same ``--out-root``
then reads the noisy data.

Parameters come from the ``noise`` section of the params file (all optional)::

    noise:
      seed: 0              # noise generator seed (separate from data.synthetic.seed)
      boundary_share: 0.5  # share of the noise budget spent on boundary noise
      radius: 3            # boundary band width (px, Chebyshev)
      patch: 5             # side of the random wrong-class blobs (px)

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
from pipeline.config import ParamsError, load_params

NOISE_DEFAULTS: dict[str, Any] = {"seed": 0, "boundary_share": 0.5, "radius": 3, "patch": 5}
MAX_RATE = 0.9


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def noise_options(params: dict[str, Any]) -> dict[str, Any]:
    """The validated ``noise`` section, defaults filled in (``NOISE_DEFAULTS``)."""
    noise = params.get("noise")
    if noise is None:
        noise = {}
    if not isinstance(noise, dict):
        raise ParamsError(f"params.yaml: noise must be a mapping, got {noise!r}")
    unknown = set(noise) - set(NOISE_DEFAULTS)
    if unknown:
        raise ParamsError(f"params.yaml: unknown key 'noise.{sorted(unknown, key=str)[0]}' "
                          f"(expected {', '.join(NOISE_DEFAULTS)})")
    opts = {**NOISE_DEFAULTS, **noise}
    checks = {
        "seed": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        "boundary_share": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                           and 0.0 <= v <= 1.0, "a number in [0, 1]"),
        "radius": (lambda v: _is_int(v) and 1 <= v <= 32, "an integer in [1, 32]"),
        "patch": (lambda v: _is_int(v) and 1 <= v <= 256, "an integer in [1, 256]"),
    }
    for key, (ok, what) in checks.items():
        if not ok(opts[key]):
            raise ParamsError(f"params.yaml: noise.{key} must be {what}, got {opts[key]!r}")
    opts["boundary_share"] = float(opts["boundary_share"])
    return opts


def check_rate(rate: float) -> float:
    """``--rate`` must lie in ``[0, MAX_RATE]``."""
    if not 0.0 <= rate <= MAX_RATE:
        raise ValueError(f"--rate must be in [0, {MAX_RATE}], got {rate}")
    return float(rate)


def prepare_noisy_data(params: dict[str, Any], out_root: str | Path, rate: float) -> dict[str, Any]:
    """Run the stage in-process; returns what ``noise.json`` records."""
    from pipeline.config import dataset_root
    from pipeline.data import prepare_data
    from rdd.label_noise import corrupt_split
    from rdd.spec import write_json_atomic

    with bad_params("noisy_data"):
        rate = check_rate(rate)
        opts = noise_options(params)
        dataset = (params.get("data") or {}).get("dataset")
        if dataset != "synthetic":
            raise ParamsError(f"params.yaml: data.dataset must be 'synthetic' for the noisy_data "
                              f"stage (masks are corrupted in place), got {dataset!r}")
        data_sec = params.get("data") or {}
        if data_sec.get("train_split", "train") == data_sec.get("val_split", "val"):
            raise ParamsError("params.yaml: data.train_split and data.val_split must differ for "
                              "the noisy_data stage (only the train split is corrupted)")
    data = prepare_data(params, out_root)
    train_split = (params.get("data") or {}).get("train_split", "train")
    root = Path(dataset_root(params, out_root))
    summary = corrupt_split(root, train_split, rate=rate, seed=opts["seed"],
                            boundary_share=opts["boundary_share"], radius=opts["radius"],
                            patch=opts["patch"])
    summary["root"] = str(root)
    summary["clean_splits"] = sorted(s for s in data["splits"] if s != train_split)
    write_json_atomic(Path(out_root) / "data" / "noise.json", summary)
    return summary


@click.command()
@params_option
@out_root_option
@click.option("--rate", type=float, required=True,
              help=f"Share of the valid train pixels to corrupt, in [0, {MAX_RATE}].")
def main(params_path: str, out_root: str, rate: float) -> None:
    """Prepare the synthetic dataset and corrupt its train labels."""
    with bad_params("noisy_data"):
        params = load_params(params_path)
        check_rate(rate)
    s = prepare_noisy_data(params, out_root, rate)
    click.echo(f"noisy_data: {s['num_files']} {s['split']} masks at {s['root']}: "
               f"{s['realised_rate']:.2%} changed (boundary {s['boundary_rate']:.2%}, "
               f"random {s['random_rate']:.2%}); "
               f"{', '.join(s['clean_splits']) or 'no other split'} clean")


if __name__ == "__main__":
    main()
