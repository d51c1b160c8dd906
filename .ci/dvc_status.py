"""Is every ``dvc.lock`` current? ``dvc status`` of each pipeline, allowing only missing outputs.

    python .ci/dvc_status.py                       # dvc.yaml and every studies/*/dvc.yaml
    python .ci/dvc_status.py dvc.yaml              # some of them

A clone has no DVC cache and only the outputs git keeps, so ``dvc status`` there always reports
outputs as ``not in cache`` or ``deleted``, and a dependency on another stage's missing output
(or on a folder holding some, as a study report's ``runs/``) as ``deleted`` or ``modified``.
Anything else means a lock does not record what the code, data and params are now: a
``modified`` or ``new`` dependency, changed params, a changed command or stage definition, a
stage that was never run. Each is printed as one line (``<dvc.yaml>:<stage>: <entry>``) and the
exit status is 1. Frozen stages (finished study runs) are not compared with today's code by
DVC, only their outputs are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_OUTS = ("not in cache", "deleted")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def missing_outputs(status: dict) -> set[str]:
    """The outputs ``dvc status --json`` reports as not in the cache or deleted."""
    return {
        path
        for entries in status.values()
        for e in entries
        if isinstance(e, dict)
        for path, state in e.get("changed outs", {}).items()
        if state in ALLOWED_OUTS
    }


def problems(status: dict, outs: dict[str, str], missing: set[str]) -> list[str]:
    """The entries of ``dvc status --json`` that are not a missing output, as
    ``<dvc.yaml>:<stage>: <what>`` lines. ``outs`` maps every stage output (repository-relative)
    to the stage that writes it; ``missing`` are the outputs that are not here
    (:func:`missing_outputs`): a dependency on one of them changes with it."""
    bad = []
    for stage, entries in status.items():
        name = stage if ":" in stage else f"dvc.yaml:{stage}"  # root stages come unprefixed
        for entry in entries:
            if isinstance(entry, str):  # "changed command", "changed checksum", ...
                bad.append(f"{name}: {entry}")
                continue
            for kind, paths in entry.items():
                for path, state in paths.items():
                    if isinstance(state, dict):  # a params file
                        bad += [f"{name}: changed params: {state[k]} {path}:{k}" for k in state]
                    elif kind == "changed outs" and state in ALLOWED_OUTS:
                        continue
                    elif (
                        kind == "changed deps"
                        and state in ("deleted", "modified")
                        and any(s != stage and o in missing and _overlaps(path, o) for o, s in outs.items())
                    ):
                        continue  # another stage's output, missing here
                    else:
                        bad.append(f"{name}: {kind}: {state} {path}")
    return bad


def stage_outputs(repo_root: Path) -> dict[str, str]:
    """Every output of every stage (repository-relative) → its stage's address."""
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        return {
            Path(os.path.relpath(o.fs_path, repo_root)).as_posix(): o.stage.addressing
            for o in repo.index.outs
        }


def dvc_status(dvc_file: str) -> dict:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json", dvc_file],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        sys.exit(f"dvc status {dvc_file} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout or "{}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="dvc.yaml files (default: all of them)")
    files = ap.parse_args().files or [
        "dvc.yaml",
        *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("studies/*/dvc.yaml")),
    ]
    outs = stage_outputs(ROOT)
    statuses = {f: dvc_status(f) for f in files}
    missing = set().union(*map(missing_outputs, statuses.values()))
    failed = 0
    for f, status in statuses.items():
        bad = problems(status, outs, missing)
        for line in bad:
            print(line)
        print(
            f"{f}: {'ok (only missing outputs)' if not bad else f'{len(bad)} stale entries'}", file=sys.stderr
        )
        failed += bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
