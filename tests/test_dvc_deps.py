"""DVC stage dependencies against the code (issue #33 item 11): every stage of every ``dvc.yaml``
lists each file its command can import, and only the finished study runs named here are frozen.

A stage's command is ``python -m pipeline.X ...``; the files it can import are the static
import closure of ``pipeline.X`` over the ``rdd`` and ``pipeline`` packages: every ``import`` /
``from ... import`` anywhere in a module (function-level ones too), the packages above each
module (their ``__init__.py`` runs first), and the whole of a package that loads its members by
name (``importlib.import_module`` in its ``__init__.py``). One exception: a package's PEP 562
``__getattr__`` (``rdd.Segmenter``, which loads the edge runtime on first use) runs only when its
attribute is read, and no stage reads it (:func:`test_no_stage_reads_a_lazy_attribute`). A listed
folder covers the files under it. Stages marked ``frozen: true`` are finished study runs whose
``dvc.lock`` entries record the code they ran with: they are exempt, and :data:`FROZEN` lists
them, so that no other stage can be frozen silently.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rdd", "pipeline")
DVC_FILES = ["dvc.yaml", *sorted(str(p.relative_to(REPO)) for p in REPO.glob("studies/*/dvc.yaml"))]

#: The finished study runs (frozen in their dvc.yaml; see the note above its ``stages``).
FROZEN = {
    "dvc.yaml": set(),
    "studies/camvid/dvc.yaml": {
        "teacher",
        "baseline",
        "student",
        "ablation",
        "models",
        "report",
    },  # its teacher's and runs' weights are gone: models and report can never re-run
    "studies/camvid_converged/dvc.yaml": {
        "teacher",
        "baseline",
        "student",
        "ablation",
        "extra_baseline",
        "extra",
        "at_weight",
        "integration",  # issue #35: seed 0 finished, the rest to run (see the note in dvc.yaml)
        "extra_16x",  # issue #35: seed 3 finished, seed 4 to do (same note)
    },
    # the runs' weights and curves are gone: the report can never re-run (its diagnostics need them)
    "studies/label_noise/dvc.yaml": {"data", "teacher", "run", "report"},
}


def _module_file(module: str) -> Path | None:
    p = REPO.joinpath(*module.split("."))
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").is_file() else None


def _walk(tree: ast.Module, *, lazy_getattr: bool):
    """``ast.walk`` of a module, without a package's lazy ``__getattr__`` (see above)."""
    for stmt in tree.body:
        if lazy_getattr and isinstance(stmt, ast.FunctionDef) and stmt.name == "__getattr__":
            continue
        yield from ast.walk(stmt)


def lazy_attributes() -> dict[str, set[str]]:
    """Package → the names its ``__getattr__`` provides (the strings it compares ``name`` with)."""
    out = {}
    for init in (REPO / "rdd").rglob("__init__.py"):
        for stmt in ast.parse(init.read_text()).body:
            if isinstance(stmt, ast.FunctionDef) and stmt.name == "__getattr__":
                pkg = ".".join(init.parent.relative_to(REPO).parts)
                out[pkg] = {
                    c.value
                    for n in ast.walk(stmt)
                    if isinstance(n, ast.Compare)
                    for c in n.comparators
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                }
    return out


def import_closure(module: str) -> set[str]:
    """Repository-relative paths of the files ``python -m module`` can import (see above)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        f = _module_file(name)
        if f is None or f in seen:
            continue
        seen.add(f)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        text = f.read_text()
        if f.name == "__init__.py" and "import_module" in text:  # members loaded by name
            todo += [".".join(p.relative_to(REPO).with_suffix("").parts) for p in f.parent.rglob("*.py")]
        for node in _walk(ast.parse(text), lazy_getattr=f.name == "__init__.py"):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts[: len(parts) - node.level + (f.name == "__init__.py")]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                if mod.split(".")[0] in PACKAGES:
                    todo += [mod] + [f"{mod}.{a.name}" for a in node.names]
    return {f.relative_to(REPO).as_posix() for f in seen}


def stages(dvc_file: str) -> dict[str, dict]:
    """Stage name → definition (a ``foreach`` stage's ``do`` body; merge keys resolved)."""
    d = yaml.safe_load((REPO / dvc_file).read_text())
    return {
        name: {**st.get("do", {}), **{k: v for k, v in st.items() if k != "do"}}
        for name, st in d["stages"].items()
    }


def _code_deps(dvc_file: str, stage: dict) -> list[str]:
    """The stage's deps under ``rdd/`` or ``pipeline/``, relative to the repository root."""
    wdir = (REPO / dvc_file).parent / stage.get("wdir", ".")
    out = []
    for dep in stage.get("deps", []):
        path = PurePosixPath((wdir / dep).resolve().relative_to(REPO).as_posix())
        if path.parts[0] in PACKAGES:
            out.append(str(path))
    return out


CASES = [(f, name) for f in DVC_FILES for name in stages(f)]


def test_frozen_stages_are_exactly_the_finished_runs():
    assert set(FROZEN) == set(DVC_FILES)
    for f in DVC_FILES:
        frozen = {name for name, st in stages(f).items() if st.get("frozen")}
        assert frozen == FROZEN[f], f


@pytest.mark.parametrize("dvc_file,name", CASES, ids=[f"{f}:{n}" for f, n in CASES])
def test_stage_deps_cover_the_import_closure_of_its_command(dvc_file, name):
    stage = stages(dvc_file)[name]
    if stage.get("frozen"):
        pytest.skip("a finished run: its dvc.lock records the code it ran with")
    m = re.match(r"python -m (pipeline\.\w+)\b", stage["cmd"])
    assert m, f"{dvc_file}:{name}: the command is not `python -m pipeline.X ...`: {stage['cmd']}"
    deps = _code_deps(dvc_file, stage)
    missing_paths = [d for d in deps if not (REPO / d).exists()]
    assert not missing_paths, f"{dvc_file}:{name} lists deps that do not exist: {missing_paths}"
    uncovered = sorted(
        f
        for f in import_closure(m.group(1))
        if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
    )
    assert not uncovered, (
        f"{dvc_file}:{name} (`python -m {m.group(1)}`) imports files no dep covers: {uncovered}"
    )


def test_the_closure_sees_every_kind_of_import():
    """Function-level, relative and ``from package import module`` imports, and parent
    packages (``rdd/labels.py``, which every dataset reads masks through, is one of them)."""
    files = import_closure("pipeline.train")
    assert {
        "pipeline/__init__.py",
        "rdd/__init__.py",
        "rdd/labels.py",
        "rdd/engine/trainer.py",
        "rdd/data/datasets.py",
    } <= files
    assert "rdd/artifacts.py" in import_closure("rdd.engine.trainer")  # a function-level import


def test_the_lock_check_allows_only_missing_outputs():
    """``.ci/dvc_status.py`` (issue #33 item 13): on a clone, outputs not in the cache, deleted
    outputs and deps on other stages' missing outputs are expected; everything else is a stale
    lock, one line per entry."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dvc_status", REPO / ".ci" / "dvc_status.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    outs = {
        "outputs/data": "data",
        "outputs/teacher/model.pt": "teacher",
        "outputs/s/runs/a-s0/metrics.json": "s/dvc.yaml:run@a-0",
        "outputs/s/runs/a-s0/model.pt": "s/dvc.yaml:run@a-0",
    }
    clone = {
        "data": [{"changed outs": {"outputs/data": "not in cache"}}],
        "teacher": [
            {"changed deps": {"outputs/data": "modified"}},
            {
                "changed outs": {
                    "outputs/teacher/model.pt": "not in cache",
                    "outputs/teacher/train.log": "deleted",
                }
            },
        ],
        "s/dvc.yaml:run@a-0": [{"changed outs": {"outputs/s/runs/a-s0/model.pt": "not in cache"}}],
        "s/dvc.yaml:report": [
            {"changed deps": {"outputs/s/runs": "modified", "outputs/teacher/model.pt": "deleted"}}
        ],
    }
    missing = check.missing_outputs(clone)
    assert missing == {
        "outputs/data",
        "outputs/teacher/model.pt",
        "outputs/teacher/train.log",
        "outputs/s/runs/a-s0/model.pt",
    }
    assert check.problems(clone, outs, missing) == []
    stale = {
        "kd": [
            {
                "changed deps": {
                    "rdd/labels.py": "modified",
                    "rdd/new.py": "new",
                    "outputs/teacher/model.pt": "modified",
                    "params.yaml": {"kd": "modified", "rdd": "new"},
                }
            },
            {"changed outs": {"outputs/kd/metrics.json": "modified"}},
            "changed command",
        ],
        "s/dvc.yaml:report": [{"changed deps": {"outputs/s/runs": "modified"}}],
    }
    assert check.problems(stale, outs, set()) == [  # the teacher and the runs are all here
        "dvc.yaml:kd: changed deps: modified rdd/labels.py",
        "dvc.yaml:kd: changed deps: new rdd/new.py",
        "dvc.yaml:kd: changed deps: modified outputs/teacher/model.pt",
        "dvc.yaml:kd: changed params: modified params.yaml:kd",
        "dvc.yaml:kd: changed params: new params.yaml:rdd",
        "dvc.yaml:kd: changed outs: modified outputs/kd/metrics.json",
        "dvc.yaml:kd: changed command",
        "s/dvc.yaml:report: changed deps: modified outputs/s/runs",
    ]


def test_no_stage_reads_a_lazy_attribute():
    """The closure leaves out ``rdd.__getattr__`` (``rdd.Segmenter``): that holds only while no
    module of the pipeline reads such an attribute from its package."""
    lazy = lazy_attributes()
    assert lazy.get("rdd") == {"Segmenter"}  # the check below must see what it guards
    for f in [*(REPO / "pipeline").rglob("*.py"), *(REPO / "rdd").rglob("*.py")]:
        if "runtime" in f.parts:
            continue
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            for pkg, names in lazy.items():
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in names
                    and isinstance(node.value, ast.Name)
                    and node.value.id == pkg.split(".")[-1]
                ):
                    raise AssertionError(f"{f.relative_to(REPO)} reads {pkg}.{node.attr}")
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module == pkg
                    and any(a.name in names for a in node.names)
                ):
                    raise AssertionError(f"{f.relative_to(REPO)} imports {node.module}.{names}")
