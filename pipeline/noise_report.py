"""DVC stage ``report`` of the label-noise study: every rate × arm × seed → summary, plot, markdown.

    python -m pipeline.noise_report --params studies/label_noise/params.yaml \\
        --out-root outputs/label_noise --rates 0.0,0.15,0.3 --report reports/label_noise.md

Each rate's runs live in ``<out-root>/rate-<rate>/`` (the ``--out-root`` its ``noisy_data``,
``teacher`` and ``pipeline.study run`` stages were given); see :func:`rdd.study.write_sweep_report`.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline._cli import bad_params, out_root_option, params_option
from pipeline.config import load_params
from pipeline.study import report_params, study_section


@click.command()
@params_option
@out_root_option
@click.option("--rates", required=True, help="Noise rates, comma-separated (e.g. 0.0,0.15,0.3).")
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--diagnose",
    default="xor",
    show_default=True,
    help="Arm whose first-seed student is analysed on the noisy train frames.",
)
def main(params_path: str, out_root: str, rates: str, report_path: str, diagnose: str) -> None:
    """Aggregate the label-noise sweep into a markdown report, a JSON summary and a plot."""
    from rdd.study import write_sweep_report

    with bad_params("report"):
        params = load_params(params_path)
        st = study_section(params)
        try:
            values = [float(r) for r in rates.split(",") if r.strip()]
        except ValueError:
            raise ValueError(f"--rates: expected comma-separated numbers, got {rates!r}") from None
        if not values:
            raise ValueError("--rates: no rates given")
        if diagnose not in st.arms:
            raise ValueError(f"--diagnose: {diagnose!r} is not an arm of study.arms")
    roots = [Path(out_root) / f"rate-{r}" for r in values]
    res = write_sweep_report(
        report_params(params, params_path),
        st.to_dict(),
        rates=values,
        out_roots=roots,
        report_path=report_path,
        summary_path=Path(out_root) / "report" / "summary.json",
        diagnose_arm=diagnose,
    )
    click.echo(f"report: {report_path} ({res['runs']} runs, {res['missing']} missing)")


if __name__ == "__main__":
    main()
