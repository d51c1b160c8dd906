"""DVC stage ``report`` of a student study: every arm × seed run → summary, plots, markdown.

    python -m pipeline.study_report --params studies/camvid/params.yaml --out-root outputs/camvid \\
        --report reports/camvid.md

Reads what :mod:`pipeline.study` runs wrote under ``<out-root>/runs/`` (and the teacher), and
writes ``<out-root>/report/summary.json`` (everything), ``<out-root>/report/metrics.json`` (the
headline figures for ``dvc metrics``), ``<out-root>/report/miou_by_arm.json`` (the bar chart's data
for ``dvc plots``), the report and its figures in ``<report stem>/`` (see :mod:`rdd.study`).
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline._cli import bad_params, out_root_option, params_option
from pipeline.config import dataset_root, load_params
from pipeline.study import report_params, study_section


@click.command()
@params_option
@out_root_option
@click.option(
    "--report",
    "report_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Markdown report to write (figures go to <report stem>/ beside it).",
)
@click.option(
    "--diagnose",
    "diagnose",
    multiple=True,
    default=("kd", "rdd"),
    show_default=True,
    help="Arms whose final student gets the difficulty diagnostics on val.",
)
@click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="The study's committed ONNX files (ARM-sSEED.onnx): diagnose a student from "
    "its ONNX where its weights are not on this machine.",
)
def main(
    params_path: str, out_root: str, report_path: str, diagnose: tuple[str, ...], models_dir: str | None
) -> None:
    """Aggregate the study's runs into a markdown report, a JSON summary and plots."""
    from rdd.study import write_study_report

    with bad_params("report"):
        params = load_params(params_path)
        st = study_section(params)
        unknown = [a for a in diagnose if a not in st.arms]
        if unknown:
            raise ValueError(f"--diagnose: {unknown[0]!r} is not an arm of study.arms")
    res = write_study_report(
        report_params(params, params_path),
        st.to_dict(),
        out_root=out_root,
        report_path=report_path,
        summary_path=Path(out_root) / "report" / "summary.json",
        diagnostics_arms=diagnose,
        data_root=dataset_root(params, out_root),
        models_dir=models_dir,
    )
    click.echo(f"report: {report_path} ({res['runs']} runs, {res['missing']} missing)")


if __name__ == "__main__":
    main()
