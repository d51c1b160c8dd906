"""The shape of the code, kept by a machine (issue #31): the runtime's rooms import each other
without a cycle and without private names, every module of ``rdd/`` stays under 500 lines, and
a new runtime is one row of the format table plus one backend file."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "rdd" / "runtime"


def _module(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in the file, function-level ones included."""
    tree = ast.parse(path.read_text())
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out += [(a.name, []) for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                up = pkg.split(".")[: len(pkg.split(".")) - (n.level - 1)]
                base = ".".join(up + ([base] if base else []))
            out.append((base, [a.name for a in n.names]))
    return out


def _runtime_modules() -> dict[str, Path]:
    return {_module(p): p for p in RUNTIME.rglob("*.py")}


def test_no_import_cycle_in_the_runtime():
    mods = _runtime_modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        if p.name == "__init__.py":  # the lazy facades re-export; they are not a room
            continue
        for target, names in _imports(p):
            for t in [target] + [f"{target}.{n}" for n in names]:
                if t in mods and t != m and mods[t].name != "__init__.py":
                    graph[m].add(t)
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t) :] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_private_name_crosses_a_module_of_the_runtime():
    bad = []
    for m, p in _runtime_modules().items():
        for target, names in _imports(p):
            if target.startswith("rdd.") and target != m:
                bad += [
                    f"{p.relative_to(REPO)}: from {target} import {n}"
                    for n in names
                    if n.startswith("_") and not n.startswith("__")
                ]
        for n in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(n, ast.Attribute)
                and n.attr.startswith("_")
                and not n.attr.startswith("__")
                and isinstance(n.value, ast.Name)
                and n.value.id in ("rdd", "runtime")
            ):
                bad.append(f"{p.relative_to(REPO)}: .{n.attr}")
    assert not bad, bad


def test_no_module_of_rdd_is_over_500_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / "rdd").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, f"modules over 500 lines usually hold two ideas: {long}"


# --------------------------------------------------------------------------- a new runtime
class _FakeBackend:
    """A whole new runtime in one class: ``.fake`` files are JSON holding the ``rdd_meta`` and a
    class to predict everywhere."""

    name = "fake"
    devices = ("cpu",)

    def __init__(self, path, *, device="cpu", threads=None, max_pixels=None):
        from rdd.contract import ModelMeta
        from rdd.runtime.backends.base import Backend, existing_file

        self.path = existing_file(path)
        d = json.loads(self.path.read_text())
        self.meta = ModelMeta.from_dict(d["rdd_meta"], source=str(path))
        self.label = int(d["label"])
        self.device, self.precision, self.fixed_batch = device, "fp32", None
        self._base = Backend

    def forward(self, x):
        n, h, w = x.shape[0], *x.shape[-2:]
        out = np.zeros((n, self.meta.num_classes, h, w), np.float32)
        out[:, self.label] = 1.0
        return out

    def check_batch(self, x):
        return x

    def by_fixed_batch(self, x, run):
        return run(x)

    def input_hw(self, x):
        return tuple(x.shape[-2:])

    def forward_or_labels(self, x):
        return self.forward(x), None

    def infer(self, x):
        return self.forward(x).argmax(1).astype(np.uint8)

    def describe(self):
        return {
            "backend": self.name,
            "backend_device": self.device,
            "model_path": str(self.path),
            "model": self.meta.model,
            "precision": self.precision,
        }


def fake_status(device):
    return None if device == "cpu" else f"fake has no device {device!r}"


@pytest.fixture
def fake_runtime(monkeypatch):
    """Register the fake runtime: one BackendEntry, one Format (a test-only module)."""
    from rdd.runtime.backends import formats as F

    mod = type(sys)("rdd_test_fake_runtime")
    mod.FakeBackend, mod.device_status = _FakeBackend, fake_status
    monkeypatch.setitem(sys.modules, "rdd_test_fake_runtime", mod)
    monkeypatch.setattr(F, "BACKENDS", dict(F.BACKENDS))
    monkeypatch.setattr(F, "FORMATS", dict(F.FORMATS))
    F.register(
        backend=F.BackendEntry(
            "fake",
            runtime="fake",
            extra="fake",
            module="rdd_test_fake_runtime",
            cls="FakeBackend",
            rows={"cpu": ("fake_cpu", "Fake CPU")},
        ),
        format=F.Format(
            "fake",
            (".fake",),
            ("fake",),
            lambda p: "fp32",
            what="fake model",
            expected=(("fake", "cpu", "fp32"),),
        ),
    )
    import rdd.runtime.measure.bench as B

    monkeypatch.setattr(B, "BACKENDS", F.BACKENDS)
    monkeypatch.setattr(B, "FORMATS", F.FORMATS)
    return F


def _fake_model(path, label):
    from rdd.contract import ModelMeta
    from rdd.spec import ClassInfo, Normalization

    meta = ModelMeta.build(
        model="fake",
        classes=ClassInfo(names=("a", "b", "c")),
        normalization=Normalization(),
        input_size=(8, 10),
    )
    path.write_text(json.dumps({"rdd_meta": meta.to_dict(), "label": label}))
    return path


def test_a_new_runtime_is_one_row_and_one_file(fake_runtime, tmp_path, capsys):
    """Registered in a test, a new runtime is found, opened, run by rdd-infer and benchmarked
    by rdd-bench, with nothing else changed."""
    import cv2

    from rdd.runtime.backends import discover_builds, open_build
    from rdd.runtime.bench_cli import main as bench
    from rdd.runtime.cli import main as infer

    model = _fake_model(tmp_path / "m.fake", label=2)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "img" / f"f{i}.png"), np.zeros((8, 10, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "lab" / f"f{i}.png"), np.full((8, 10), 2, np.uint8))
    [b] = discover_builds([tmp_path])
    assert (b.name, b.format, b.precision) == ("m.fake", "fake", "fp32")
    assert open_build(model).name == "fake"  # backend auto: by the table
    report = tmp_path / "r.json"
    assert (
        infer(
            [
                "--model",
                str(model),
                "--images",
                str(tmp_path / "img"),
                "--labels",
                str(tmp_path / "lab"),
                "--label-map",
                "none",
                "--no-progress",
                "--warmup",
                "0",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    rep = json.loads(report.read_text())
    assert rep["backend"] == "fake" and rep["miou"] == 1.0 and rep["frames"] == 3
    capsys.readouterr()
    assert (
        bench(
            [
                "--model",
                str(model),
                "--images",
                str(tmp_path / "img"),
                "--labels",
                str(tmp_path / "lab"),
                "--label-map",
                "none",
                "--threads",
                "1",
                "--duration",
                "0",
                "--min-runs",
                "2",
                "--rounds",
                "1",
                "--warmup-ms",
                "0",
                "--e2e-frames",
                "0",
                "--rows",
                "fake_cpu",
                "--format",
                "json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    [row] = [r for r in out["results"] if r["status"] == "ok"]
    assert row["row"] == "Fake CPU FP32" and row["miou"] == 1.0 and row["argmax_agreement"] == 1.0


def test_one_place_answers_whether_a_package_is_installed(monkeypatch):
    """``rdd.offline.installed`` is the one "is package X here" test: no other module of rdd/
    asks importlib itself, and a package hidden as tests hide it counts as absent."""
    import sys

    from rdd.offline import installed

    askers = [
        str(p.relative_to(REPO))
        for p in (REPO / "rdd").rglob("*.py")
        if "find_spec" in p.read_text() and p.name != "offline.py"
    ]
    assert not askers, askers
    assert installed("numpy") and not installed("no_such_package_rdd_edge")
    monkeypatch.setitem(sys.modules, "numpy_hidden_probe", None)
    assert not installed("numpy_hidden_probe")


def test_a_broken_tensorrt_is_unavailable_in_the_one_answer(monkeypatch, tmp_path):
    """Issue #31: an installed TensorRT that cannot be imported (libnvinfer missing) is
    unavailable to the runtime and to the export step alike (one answer, with the reason)."""
    import sys

    from rdd.export.tensorrt import tensorrt_available
    from rdd.runtime.backends import available

    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.py").write_text("raise ImportError('libnvinfer.so.10: cannot open')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    reason = available("trt", "cuda")
    assert reason is not None and "cannot be imported: libnvinfer.so.10: cannot open" in reason
    assert not tensorrt_available()
