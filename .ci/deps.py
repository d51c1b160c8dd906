"""The project's dependency checks: ``freeze`` writes constraints.txt, ``resolve`` checks the ranges.

pyproject.toml holds *ranges* (what users get); constraints.txt holds the exact versions CI installs
(`pip install -e ".[dev]" -c constraints.txt`).

    python .ci/deps.py freeze > constraints.txt   # after a deliberate upgrade: the installed
                                                  # versions of rdd-edge[dev]'s closure
    python .ci/deps.py resolve                    # pip --dry-run of each extra's requirements
                                                  # (RESOLVE) for Python 3.10–3.13 (x86_64) and,
                                                  # for the device runtimes, 3.10 aarch64 (Jetson,
                                                  # JetPack 6); needs PyPI
    python .ci/deps.py resolve --extras cpu       # one extra (or A,B installed together)

``freeze`` lists only packages reachable from the project's requirements (markers evaluated for
this interpreter), not everything else installed, and drops local version labels
(``torch==2.13.0`` also matches the installed ``2.13.0+cpu`` wheel).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# (python version, machine, newest glibc) the runtime must install on; Jetson JetPack 6 is
# Ubuntu 22.04 (glibc 2.35) with Python 3.10.
TARGETS = [
    ("3.10", "x86_64", 28),
    ("3.11", "x86_64", 28),
    ("3.12", "x86_64", 28),
    ("3.13", "x86_64", 28),
    ("3.10", "aarch64", 35),
]
X86_64 = [t for t in TARGETS if t[1] == "x86_64"]

# The extras `resolve` checks by default, each on its own (a user installs one runtime), and where:
# the device runtimes on every target; onnxruntime-gpu, TensorRT and the workstation's export
# tools on x86_64 only (PyPI's aarch64 onnxruntime-gpu / TensorRT wheels are for SBSA servers, not
# Jetson, whose TensorRT comes with JetPack).
RESOLVE: dict[str, list[tuple[str, str, int]]] = {
    "cpu": TARGETS,
    "openvino": TARGETS,
    "gpu": X86_64,
    "trt": X86_64,
    "trt-cu13": X86_64,
    "export": X86_64,
}

# Source-only meta-packages, which a cross-Python dry run (--only-binary=:all:) cannot take:
# resolved through their per-Python wheel instead. `tensorrt-cu12` X needs
# `tensorrt_cu12_bindings==X` (PyPI wheels, one per CPython) and `tensorrt_cu12_libs==X` (a stub
# sdist that downloads NVIDIA's libraries from pypi.nvidia.com when it is built: not resolvable
# from PyPI's metadata, and gigabytes when it is).
WHEEL_OF_SDIST = {"tensorrt-cu12": "tensorrt-cu12-bindings", "tensorrt-cu13": "tensorrt-cu13-bindings"}

# Distributions an extra must not resolve to (a pattern on the canonical name): [trt] is CUDA 12.
FORBIDDEN = {"trt": re.compile(r"cu13"), "trt-cu13": re.compile(r"cu12")}


def root_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's own requirements with ``extras``, read from pyproject.toml (self-references
    such as ``rdd-edge[cpu]`` expanded), so nothing depends on what is installed as rdd-edge."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    name = canonicalize_name(project["name"])
    optional = project.get("optional-dependencies", {})
    out: list[Requirement] = []
    todo: list[str | None] = [None, *extras]
    done: set[str | None] = set()
    while todo:
        ext = todo.pop()
        if ext in done:
            continue
        done.add(ext)
        if ext is not None and ext not in optional:
            raise SystemExit(f"pyproject.toml: no optional-dependencies extra {ext!r}")
        for line in project["dependencies"] if ext is None else optional[ext]:
            req = Requirement(line)
            if canonicalize_name(req.name) == name:
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def closure(reqs: list[Requirement]) -> dict[str, str]:
    """{canonical name: installed version} of ``reqs`` and everything they need (as installed)."""
    seen: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    todo = [
        (r.name, tuple(sorted(r.extras)))
        for r in reqs
        if r.marker is None or r.marker.evaluate({"extra": ""})
    ]
    while todo:
        name, exts = todo.pop()
        dist = metadata.distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        seen[key] = dist.version
        for ext in ("", *exts):
            if (key, ext) in done:
                continue
            done.add((key, ext))
            for line in dist.requires or []:
                req = Requirement(line)
                if req.marker is None:
                    if ext:
                        continue  # unconditional requirements were taken with ext == ""
                elif not req.marker.evaluate({"extra": ext}):
                    continue
                todo.append((req.name, tuple(sorted(req.extras))))
    return seen


def freeze(extras: tuple[str, ...]) -> str:
    pins = closure(root_requirements(extras))
    lines = [
        '# Exact versions CI installs (.ci/run: pip install -e ".[dev]" -c constraints.txt);',
        "# pyproject.toml holds the ranges users get. Regenerate after a deliberate upgrade:",
        "#   python .ci/deps.py freeze > constraints.txt",
        f"# (rdd-edge[{','.join(extras)}] as installed on Python "
        f"{sys.version_info.major}.{sys.version_info.minor}, linux x86_64)",
    ]
    lines += [f"{n}=={pins[n].split('+')[0]}" for n in sorted(pins)]
    return "\n".join(lines) + "\n"


def platforms(machine: str, newest_glibc: int) -> list[str]:
    """Every manylinux tag a machine with glibc ``2.newest`` accepts (pip's --platform takes
    each tag literally)."""
    tags = [f"manylinux_2_{i}_{machine}" for i in range(newest_glibc, 16, -1)]
    return tags + [f"manylinux2014_{machine}"]


def binary_requirements(reqs: list[Requirement]) -> list[Requirement]:
    """``reqs`` with each source-only meta-package (WHEEL_OF_SDIST) replaced by its per-Python
    wheel under the same specifier and marker."""
    out = []
    for r in reqs:
        wheel = WHEEL_OF_SDIST.get(canonicalize_name(r.name))
        if wheel is not None:
            r = Requirement(f"{wheel}{r.specifier}" + (f"; {r.marker}" if r.marker else ""))
        out.append(r)
    return out


def resolve_one(
    reqs: list[Requirement],
    python: str,
    machine: str,
    glibc: int,
    timeout: float,
    forbidden: re.Pattern | None = None,
) -> tuple[bool, str]:
    """``pip install --dry-run`` of ``reqs`` for another Python/platform; (ok, summary). Not ok
    either when pip fails or when a distribution it picks matches ``forbidden``."""
    with tempfile.TemporaryDirectory(prefix="rdd-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(Path(tmp) / "t"),
            "--python-version",
            python,
            "--only-binary=:all:",
            "--report",
            str(report),
        ]
        for tag in platforms(machine, glibc):
            cmd += ["--platform", tag]
        cmd += [str(r) for r in reqs]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"pip did not finish within {timeout:.0f} s"
        if p.returncode != 0 or not report.is_file():
            errs = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.startswith("ERROR")]
            return False, " | ".join(errs[:3]) or f"pip exited {p.returncode}"
        got = json.loads(report.read_text())["install"]
        names = {canonicalize_name(r.name) for r in reqs}
        picked = sorted(
            f"{i['metadata']['name']}=={i['metadata']['version']}"
            for i in got
            if canonicalize_name(i["metadata"]["name"]) in names
        )
        bad = sorted(
            f"{i['metadata']['name']}=={i['metadata']['version']}"
            for i in got
            if forbidden is not None and forbidden.search(canonicalize_name(i["metadata"]["name"]))
        )
        if bad:
            return False, f"resolved to {' '.join(bad)}, which this extra must not install"
        return True, " ".join(picked)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python .ci/deps.py", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("freeze", help="print constraints.txt")
    f.add_argument("--extras", default="dev")
    r = sub.add_parser("resolve", help="dry-run resolution for Python 3.10-3.13")
    r.add_argument(
        "--extras",
        default=None,
        help="extras installed together, comma-separated (default: each extra of "
        f"{', '.join(RESOLVE)} on its own)",
    )
    r.add_argument("--timeout", type=float, default=300.0, help="seconds per target")
    r.add_argument("--jobs", type=int, default=4, help="dry runs at a time (network-bound)")
    args = ap.parse_args(argv)
    if args.cmd == "freeze":
        sys.stdout.write(freeze(tuple(e for e in args.extras.split(",") if e)))
        return 0
    groups = (
        [tuple(e for e in args.extras.split(",") if e)]
        if args.extras is not None
        else [(e,) for e in RESOLVE]
    )
    return resolve(groups, args.timeout, args.jobs)


def resolve(groups: list[tuple[str, ...]], timeout: float = 300.0, jobs: int = 4) -> int:
    """Dry-run each group of extras on each of its targets (the targets all its extras share);
    one ``ok``/``FAIL`` line per (group, target), in order; 1 if any failed."""
    work = []
    for extras in groups:
        reqs = binary_requirements(root_requirements(extras))
        targets = [t for t in TARGETS if all(t in RESOLVE.get(e, TARGETS) for e in extras)]
        forbidden = [FORBIDDEN[e] for e in extras if e in FORBIDDEN]
        pattern = re.compile("|".join(p.pattern for p in forbidden)) if forbidden else None
        work += [(extras, reqs, t, pattern) for t in targets]

    def one(item):
        _extras, reqs, (python, machine, glibc), pattern = item
        ok, summary = resolve_one(reqs, python, machine, glibc, timeout, pattern)
        if (
            not ok
            and "No matching distribution" not in summary
            and "conflict" not in summary
            and "must not install" not in summary
        ):
            ok, summary = resolve_one(reqs, python, machine, glibc, timeout, pattern)  # blip
        return ok, summary

    failed = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for (extras, _, (python, machine, _g), _p), (ok, summary) in zip(work, pool.map(one, work)):
            name = f"rdd-edge[{','.join(extras)}]"
            if not ok:
                failed.append(name)
            print(f"{'ok  ' if ok else 'FAIL'} {name} Python {python} {machine}: {summary}", flush=True)
    if failed:
        print(
            f"error: {len(failed)} of {len(work)} dry runs failed "
            f"({', '.join(dict.fromkeys(failed))}; see FAIL lines): fix the ranges in "
            "pyproject.toml",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
