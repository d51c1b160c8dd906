"""DVC stage ``models`` of a student study: the teacher's ONNX export and every finished run's
FP32 student ONNX, gathered for git (see :mod:`rdd.study.models`).

    python -m pipeline.study_models --params studies/camvid/params.yaml --out-root outputs/camvid \\
        --dest studies/camvid/models

The teacher is exported (with the ``export`` section: FP32 ONNX, parity gate, ONNX Runtime mIoU
on val) into ``<out-root>/teacher/export/``; the students were exported by their own run stages.
With ``--teacher-weights`` the teacher's training artifact is gathered too (``teacher.pt`` /
``teacher.json``). On a clone without the DVC cache,

    python -m pipeline.study_models --params ... --out-root ... --dest ... --restore-teacher

puts those back as ``<out-root>/teacher/model.pt`` / ``model.json`` (byte copies, checked against
``index.json``), so the distilled stages run there with ``dvc repro -s``.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline._cli import bad_params, out_root_option, params_option, unloadable_files
from pipeline.config import load_params, split_datasets
from pipeline.study import study_section


@click.command()
@params_option
@out_root_option
@click.option(
    "--dest",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for ARM-sSEED.onnx, teacher.onnx and index.json.",
)
@click.option(
    "--teacher-weights",
    is_flag=True,
    help="Also gather the teacher's model.pt / model.json (as teacher.pt / teacher.json).",
)
@click.option(
    "--restore-teacher",
    is_flag=True,
    help="Only copy teacher.pt / teacher.json from --dest back to <out-root>/teacher/.",
)
def main(params_path: str, out_root: str, dest: str, teacher_weights: bool, restore_teacher: bool) -> None:
    """Export the study's teacher to ONNX and gather every finished run's ONNX into --dest."""
    from rdd.study.models import collect_onnx
    from rdd.study.models import restore_teacher as restore

    if restore_teacher:
        try:
            written = restore(dest, out_root)
        except (OSError, ValueError) as e:  # missing / altered / clashing file: one line
            raise click.ClickException(f"models: {e}") from None
        click.echo(f"models: restored {', '.join(map(str, written)) or 'nothing (already there)'}")
        return
    from rdd.export.run import run_export

    with bad_params("models"):
        params = load_params(params_path)
        st = study_section(params)
        calib, val = split_datasets(params, out_root)
    teacher = Path(out_root) / "teacher"
    with unloadable_files("models"):
        run_export(
            teacher / "model.pt", teacher / "export", calib_dataset=calib, val_dataset=val, cfg=params.export
        )
    index = collect_onnx(
        st.to_dict(),
        out_root,
        dest,
        teacher_export=teacher / "export",
        teacher_artifact=teacher / "model.pt" if teacher_weights else None,
    )
    click.echo(
        f"models: {len(index['models'])} ONNX files in {dest}"
        + (f"; skipped {', '.join(s['name'] for s in index['skipped'])}" if index["skipped"] else "")
    )


if __name__ == "__main__":
    main()
