"""Check a params file, or print the parameter reference generated from the schema.

python -m pipeline.params [--params params.yaml]     # check it (exit 2 with one line if bad)
python -m pipeline.params --doc > docs/PARAMS.md     # the reference (rdd.config.params)
"""

from __future__ import annotations

import click

from pipeline.config import load_params


@click.command()
@click.option(
    "--params",
    "params_path",
    default="params.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The params file to check.",
)
@click.option("--doc", is_flag=True, help="Print the Markdown reference of every key instead.")
def main(params_path: str, doc: bool) -> None:
    """Check PARAMS against the schema (or print the reference with --doc)."""
    if doc:
        from rdd.config.params import doc_markdown

        click.echo(doc_markdown(), nl=False)
        return
    try:
        load_params(params_path)
    except (ValueError, FileNotFoundError) as e:
        click.echo(f"Error: {e}", err=True)
        raise SystemExit(2) from None
    click.echo(f"{params_path}: ok")


if __name__ == "__main__":
    main()
