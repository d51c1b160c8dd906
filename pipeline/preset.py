"""Switch ``params.yaml`` to a preset from ``params/``.

    python -m pipeline.preset --list
    python -m pipeline.preset camvid        # CamVid at ../shared/data/camvid, GPU-sized models
    python -m pipeline.preset cityscapes    # the paper's Cityscapes protocol
    python -m pipeline.preset synthetic     # back to the committed default (tiny, CPU)

The preset file is copied over ``params.yaml`` as is (after checking it against the params
schema and that it names every section the pipeline reads); ``dvc repro`` then re-runs whatever
the change affects. For a one-off run without touching the file use
``dvc exp run -S 'data.dataset=camvid' -S ...`` instead.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.config import load_params
from rdd.config.params import read_params_yaml

PRESET_DIR = Path("params")
REQUIRED_SECTIONS = ("data", "prepare", "train", "teacher", "student", "kd", "rdd", "evaluate", "export")


def list_presets(preset_dir: Path = PRESET_DIR) -> list[str]:
    return sorted(p.stem for p in preset_dir.glob("*.yaml"))


def apply_preset(name: str, *, preset_dir: Path = PRESET_DIR, target: Path = Path("params.yaml")) -> Path:
    """Copy ``preset_dir/name.yaml`` over ``target`` (validated first; atomic)."""
    from rdd.spec import write_text_atomic

    src = preset_dir / f"{name}.yaml"
    if not src.is_file():
        raise FileNotFoundError(
            f"no preset {name!r}: {src} not found "
            f"(available: {', '.join(list_presets(preset_dir)) or 'none'})"
        )
    load_params(src)  # the whole schema: a preset that would not run is not applied
    raw = read_params_yaml(src)
    missing = [s for s in REQUIRED_SECTIONS if s not in raw]
    if missing:
        raise ValueError(f"preset {src} lacks the section(s) {', '.join(missing)}")
    write_text_atomic(target, src.read_text())
    return src


@click.command()
@click.argument("name", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the available presets.")
@click.option(
    "--params",
    "target",
    default="params.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to overwrite.",
)
@click.option(
    "--preset-dir",
    default=str(PRESET_DIR),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
def main(name: str | None, list_only: bool, target: Path, preset_dir: Path) -> None:
    """Copy params/NAME.yaml over params.yaml."""
    if list_only or not name:
        click.echo("\n".join(list_presets(preset_dir)))
        if not name:
            return
    try:
        src = apply_preset(name, preset_dir=preset_dir, target=target)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{target} ← {src}; now run `dvc repro`")


if __name__ == "__main__":
    main()
