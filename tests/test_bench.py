"""rdd-bench: row discovery with backends absent, accuracy columns on tiny golden models, report.

The benchmark itself is a script (``rdd-bench``); nothing here asserts a speed.
"""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
from toy_onnx import toy_onnx

from rdd.runtime.backends import Build, discover_builds
from rdd.runtime.bench_cli import main
from rdd.runtime.measure.bench import plan_rows, run_bench, runtime_status
from rdd.runtime.measure.bench_report import markdown_table, pareto_front, recommend
from rdd.runtime.measure.frames import Frames

FAST = {"warmup_s": 0.0, "duration_s": 0.0, "min_runs": 2, "rounds": 1}


def _miou(pred, lab):
    ious = []
    for c in (0, 1):
        v = lab != 255
        inter = ((pred == c) & (lab == c) & v).sum()
        union = (((pred == c) | (lab == c)) & v).sum()
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


def test_rows_with_backends_absent(monkeypatch, tmp_path):
    for name in ("openvino", "tensorrt", "torch"):
        monkeypatch.setitem(sys.modules, name, None)
    st = runtime_status()
    assert st["ort_cpu"] is None
    assert st["tensorrt"] == "skipped: TensorRT unavailable"
    assert st["torch"] == "skipped: torch unavailable"
    assert st["openvino_cpu"].startswith("skipped: OpenVINO unavailable")
    builds = discover_builds(
        [toy_onnx(tmp_path / "a.onnx", (0, 1)), toy_onnx(tmp_path / "a_int8.onnx", (0, 1), precision="int8")]
    )
    assert [(b.name, b.format, b.precision) for b in builds] == [
        ("a.onnx", "onnx", "fp32"),
        ("a_int8.onnx", "onnx", "int8"),
    ]
    rows = {r.name: r.status for r in plan_rows(builds, st)}
    assert rows["ORT CPU FP32"] is None and rows["ORT CPU INT8"] is None
    assert rows["OpenVINO CPU FP32"].startswith("skipped: OpenVINO unavailable")
    assert rows["OpenVINO CPU INT8"].startswith("skipped: OpenVINO unavailable")
    assert rows["TensorRT FP16"] == rows["TensorRT INT8"] == "skipped: TensorRT unavailable"
    assert rows["torch eager FP32"] == "skipped: torch unavailable"
    assert (
        rows["ORT CUDA FP32"].startswith("skipped: onnxruntime has no CUDA") or rows["ORT CUDA FP32"] is None
    )


def test_rows_without_onnxruntime_and_missing_builds(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    st = runtime_status()
    assert st["ort_cpu"] == st["ort_cuda"] == st["ort_trt"] == "skipped: onnxruntime unavailable"
    rows = {r.name: r.status for r in plan_rows([], {**st, "openvino_cpu": None})}
    assert rows["ORT CPU INT8"] == "skipped: onnxruntime unavailable"
    assert rows["OpenVINO CPU INT8"] == "skipped: no INT8 ONNX given"


def test_accuracy_columns_golden(tmp_path):
    a = toy_onnx(tmp_path / "a.onnx", (0, 1))  # R vs G
    b = toy_onnx(tmp_path / "b.onnx", (0, 2), precision="int8")  # R vs B
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    labs = [rng.integers(0, 2, (8, 8)).astype(np.uint8) for _ in range(3)]
    labs[0][0, :] = 255
    frames = Frames.from_arrays(imgs, labs, names=["f0", "f1", "f2"])
    rep = run_bench(
        discover_builds([a, b]), frames=frames, threads=[1], kinds=["ort_cpu"], e2e_frames=0, timing=FAST
    )
    res = {r["model"]: r for r in rep["results"] if r["status"] == "ok"}
    pa = [(im[..., 1] > im[..., 0]).astype(np.uint8) for im in imgs]  # argmax, ties → 0
    pb = [(im[..., 2] > im[..., 0]).astype(np.uint8) for im in imgs]
    ma = _miou(np.stack(pa), np.stack(labs))
    mb = _miou(np.stack(pb), np.stack(labs))
    assert res["a.onnx"]["miou"] == pytest.approx(ma) and res["b.onnx"]["miou"] == pytest.approx(mb)
    assert res["a.onnx"]["reference"] == "ORT CPU FP32" and res["a.onnx"]["argmax_agreement"] == 1.0
    agree = float(np.mean([(x == y).mean() for x, y in zip(pa, pb)]))
    assert res["b.onnx"]["argmax_agreement"] == pytest.approx(agree)
    assert res["b.onnx"]["miou_loss"] == pytest.approx(100 * (ma - mb))
    dl = max(np.abs(im[..., 1].astype(np.float32) - im[..., 2]).max() / 255 for im in imgs)
    assert res["b.onnx"]["max_abs_logit_diff"] == pytest.approx(dl, abs=1e-6)
    for r in res.values():
        assert r["size"] == [8, 8] and r["batch"] == 1 and r["runs"] == 2
        assert r["model_bytes"] == (tmp_path / r["model"]).stat().st_size
        assert r["latency_ms"]["p50"] > 0 and r["throughput"] > 0
    assert rep["device"]["cpu"] and rep["protocol"]["min_runs"] == 2
    assert rep["protocol"]["clock"] == "perf_counter"


def test_report_helpers_golden():
    assert pareto_front([(1.0, 50.0), (2.0, 60.0), (3.0, 55.0), (0.5, 40.0), (2.0, 60.0)]) == [3, 0, 1]
    rows = [
        {
            "row": "A",
            "model": "m",
            "size": [8, 8],
            "threads": 1,
            "batch": 1,
            "status": "ok",
            "latency_ms": {"p50": 2.0, "p90": 2.5, "p99": 3.0},
            "miou": 0.5,
            "miou_loss": 0.0,
            "argmax_agreement": 1.0,
            "throughput": 500.0,
            "model_bytes": 2_000_000,
        },
        {
            "row": "B",
            "model": "q",
            "size": [8, 8],
            "threads": 1,
            "batch": 1,
            "status": "ok",
            "latency_ms": {"p50": 1.0, "p90": 1.5, "p99": 2.0},
            "miou": 0.492,
            "miou_loss": 0.8,
            "argmax_agreement": 0.97,
            "throughput": 1000.0,
            "model_bytes": 600_000,
        },
        {"row": "C", "model": None, "size": None, "status": "skipped: TensorRT unavailable"},
    ]
    assert recommend(rows, 1.0)["row"] == "B" and recommend(rows, 0.5)["row"] == "A"
    assert recommend(rows[2:], 1.0) is None
    table = markdown_table(rows).splitlines()
    assert table[2] == (
        "| A | m | 8×8 | 1 | 1 | 2.00 | 2.50 | 3.00 | 500.0 | – | 50.00 | +0.00 | 100.00 | 2.00 | – |"
    )
    assert table[3].startswith("| B | q | 8×8 | 1 | 1 | 1.00 |") and "| -0.80 | 97.00 | 0.60 |" in table[3]
    assert table[4].startswith("| C | – | – | – | – | skipped: TensorRT unavailable |")


def test_cli_end_to_end_and_bad_input(tmp_path, capsys):
    a = toy_onnx(tmp_path / "a.onnx", (0, 1))
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(tmp_path / "img" / f"f{i}.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "lab" / f"f{i}.png"), rng.integers(0, 2, (8, 8)).astype(np.uint8))
    out = tmp_path / "out"
    assert (
        main(
            [
                "--model",
                str(a),
                "--images",
                str(tmp_path / "img"),
                "--labels",
                str(tmp_path / "lab"),
                "--threads",
                "1",
                "--rows",
                "ort_cpu",
                "--duration",
                "0",
                "--min-runs",
                "2",
                "--rounds",
                "1",
                "--warmup-ms",
                "0",
                "--e2e-frames",
                "3",
                "--recommend",
                "1",
                "--clock",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rep = json.loads((out / "bench.json").read_text())
    row = next(r for r in rep["results"] if r["status"] == "ok")
    assert row["e2e_fps"] > 0 and 0 <= row["miou"] <= 1 and rep["recommendation"]["row"] == "ORT CPU FP32"
    assert "ORT CPU FP32" in (out / "bench.md").read_text()
    assert rep["protocol"]["clock"] == "process_time"
    printed = capsys.readouterr().out  # the table on stdout: real lines, not "\\n"
    assert printed.startswith("Device: ") and "\\n" not in printed
    assert printed.splitlines()[2].startswith("| row |")
    assert main(["--model", str(tmp_path / "missing.onnx")]) == 2
    assert "error: --model" in capsys.readouterr().err
    assert not (tmp_path / "missing.onnx").exists()


def test_build_size_counts_ir_weights(tmp_path):
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "m.bin").write_bytes(b"x" * 10)
    assert Build(tmp_path / "m.xml", "ir", "int8").size_bytes == 6 + 10


def _image_folder(tmp_path, n=3, hw=(48, 64), classes=11):
    rng = np.random.default_rng(2)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(n):
        cv2.imwrite(str(tmp_path / "img" / f"f{i}.png"), rng.integers(0, 256, (*hw, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "lab" / f"f{i}.png"), rng.integers(0, classes, hw).astype(np.uint8))
    return tmp_path / "img", tmp_path / "lab"


def test_infer_compare_same_build_is_exact(tmp_path, tiny_onnx, capsys):
    from rdd.runtime.cli import main as infer

    img, lab = _image_folder(tmp_path)
    report = tmp_path / "r.json"
    assert (
        infer(
            [
                "--model",
                str(tiny_onnx),
                "--images",
                str(img),
                "--labels",
                str(lab),
                "--label-map",
                "none",
                "--warmup",
                "0",
                "--no-progress",
                "--threads",
                "1",
                "--report",
                str(report),
                "--compare",
                f"ort:{tiny_onnx}",
            ]
        )
        == 0
    )
    c = json.loads(report.read_text())["compare"]
    assert c["frames"] == 3 and c["argmax_agreement"] == 1.0 and c["delta_miou"] == 0.0
    assert c["max_abs_logit_diff"] == 0.0 and c["backend"] == "ort"
    assert "argmax agreement 100.00%" in capsys.readouterr().out


def test_infer_compare_second_build_differs(tmp_path, tiny_onnx):
    """A different second build: agreement < 1 and ΔmIoU = its mIoU − the first's."""
    from rdd.runtime import OrtBackend
    from rdd.runtime.measure.frames import Frames
    from rdd.runtime.measure.score import compare_builds, predict, score

    img, lab = _image_folder(tmp_path, classes=2)
    a = toy_onnx(tmp_path / "a.onnx", (0, 1))
    b = toy_onnx(tmp_path / "b.onnx", (0, 2))
    frames = Frames.from_folder(img, lab)
    ba, bb = OrtBackend(a), OrtBackend(b)
    c = compare_builds(ba, bb, frames, (48, 64))
    pa, pb = predict(ba, frames, (48, 64))[0], predict(bb, frames, (48, 64))[0]
    assert c["argmax_agreement"] == pytest.approx(np.mean([(x == y).mean() for x, y in zip(pa, pb)]))
    assert c["argmax_agreement"] < 1.0
    assert 100 * c["miou_delta"] == pytest.approx(
        100 * (score(pb, frames, 2)["miou"] - score(pa, frames, 2)["miou"])
    )


def test_infer_compare_bad_spec(tmp_path, tiny_onnx, capsys):
    from rdd.runtime.cli import main as infer

    with pytest.raises(SystemExit) as e:
        infer(["--model", str(tiny_onnx), "--images", str(tmp_path), "--compare", "onnx"])
    assert e.value.code == 2 and "BACKEND[:MODEL]" in capsys.readouterr().err


def test_infer_compare_is_checked_before_the_first_frame(tmp_path, tiny_onnx, capsys):
    """--compare's MODEL is an input: missing, or named by an output (--report would replace it
    with JSON), or --compare on a camera: one line, exit 2, before any frame, nothing written."""
    import shutil

    from rdd.runtime.cli import main as infer

    img, _ = _image_folder(tmp_path)
    second = tmp_path / "second.onnx"
    shutil.copy(tiny_onnx, second)
    before = second.read_bytes()
    base = ["--model", str(tiny_onnx), "--images", str(img), "--no-progress", "--threads", "1"]
    for extra, want in (
        (
            ["--report", str(second), "--compare", f"ort:{second}"],
            f"--report {second} would overwrite the --compare input",
        ),
        (
            ["--report", str(tmp_path / "r.json"), "--compare", f"ort:{tmp_path / 'nope.onnx'}"],
            "--compare: model file not found",
        ),
        (["--out", str(tmp_path / "o.mp4"), "--compare", "ort"], None),
    ):
        if want is None:  # a camera: --compare cannot read its frames twice
            extra = ["--model", str(tiny_onnx), "--camera", "/dev/rdd-no-camera", *extra]
            rc = infer([*extra, "--no-progress"])
            want = "--compare needs --images or a video file"
        else:
            rc = infer(base + extra)
        out, err = capsys.readouterr()
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert rc == 2 and len(lines) == 1 and want in lines[0], err
        assert out == ""  # no frame was run
    assert second.read_bytes() == before
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "o.mp4").exists()


def test_bench_says_why_no_model_opens(tmp_path, tiny_model, hostile_pickle, capsys):
    """rdd-bench on a crafted model.pt: exit 2, one line that says why (refused), nothing runs."""
    from rdd.artifacts import save_artifact
    from rdd.runtime.bench_cli import main as bench
    from rdd.spec import CAMVID_CLASSES, Normalization

    img, _ = _image_folder(tmp_path)
    pt = tmp_path / "m" / "model.pt"
    save_artifact(pt, tiny_model, classes=CAMVID_CLASSES, normalization=Normalization(), input_size=(48, 64))
    marker = hostile_pickle(pt, lambda p: {"features.0.0.weight": p})
    assert bench(["--model", str(pt), "--images", str(img), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "refused" in lines[0] and str(pt) in lines[0], err
    assert not marker.exists() and not (tmp_path / "b").exists()


def test_plot_labels_never_overlap_and_markers_say_head_and_input():
    """Coincident and near points share or alternate labels: no two label boxes intersect; the
    marker is a triangle for a lowres head and hollow for uint8 input."""
    pytest.importorskip("matplotlib")
    from rdd.runtime.measure.bench_report import plot_figure

    def row(p50, miou, head="full", inp="float32"):
        return {
            "status": "ok",
            "row": "r",
            "model": "m.onnx",
            "size": [8, 8],
            "threads": 1,
            "latency_ms": {"p50": p50},
            "miou": miou,
            "head": head,
            "input": inp,
        }

    rows = [
        row(7.84, 0.5197, "lowres", "uint8"),
        row(7.87, 0.5197, "lowres"),
        row(7.9, 0.5196),
        row(14.0, 0.5198),
        row(14.1, 0.5195, "lowres", "uint8"),
        row(14.2, 0.5199),
        row(20, 0.51),
    ]
    fig = plot_figure(rows, title="t")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [t.get_window_extent(r) for t in ax.texts]
    assert sum(len(t.get_text().split(",")) for t in ax.texts) == len(rows)  # every point named
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    marks = [(c.get_paths()[0].vertices.shape[0], c.get_facecolors().size) for c in ax.collections]
    assert marks[0][1] == 0 and marks[1][1] > 0  # uint8 hollow, float filled
    assert marks[0][0] != marks[2][0]  # triangle vs circle
    import matplotlib.pyplot as plt

    plt.close(fig)


# --------------------------------------------------------------------------- issue #34 conventions
def _bench_inputs(tmp_path):
    """A toy 2-class model and 3 labelled 8×8 frames."""
    model = toy_onnx(tmp_path / "a.onnx", (0, 1))
    img, lab = tmp_path / "img", tmp_path / "lab"
    img.mkdir()
    lab.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(img / f"f{i}.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        cv2.imwrite(str(lab / f"f{i}.png"), rng.integers(0, 2, (8, 8)).astype(np.uint8))
    return model, img, lab


_FAST_CLI = [
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
]


def test_version_and_help(capsys):
    """``rdd-bench --version`` prints the installed rdd-edge version; ``--help`` shows a default
    only where there is one (never ``(default: None)``) and ends with examples, one a line."""
    import importlib.metadata

    from rdd.runtime.bench_cli import build_parser

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"rdd-bench {importlib.metadata.version('rdd-edge')}\n"
    text = build_parser().format_help()
    assert "(default: None)" not in text and "default: None" not in text
    assert "(default: 3.0)" in " ".join(text.split())  # --duration: a real default is shown
    examples = text.split("\nexamples:\n", 1)[1].splitlines()
    assert len(examples) == 3 and all(ln.startswith("  rdd-bench --model ") for ln in examples), examples


def test_rows_name_the_model_hash_and_the_startup_times(tmp_path):
    """Issue #34: every measured row has ``model_sha256`` (of its build file), ``load_ms``,
    ``first_inference_ms`` and ``compile_ms`` (OpenVINO's compile step; ``null`` for
    onnxruntime, which has none)."""
    import hashlib
    import importlib.util
    import math

    model, img, lab = _bench_inputs(tmp_path)
    kinds = ["ort_cpu"] + (["openvino_cpu"] if importlib.util.find_spec("openvino") else [])
    out = tmp_path / "out"
    argv = ["--model", str(model), "--images", str(img), "--labels", str(lab), *_FAST_CLI, "--rows", *kinds]
    assert main([*argv, "--out", str(out)]) == 0
    rows = [r for r in json.loads((out / "bench.json").read_text())["results"] if r["status"] == "ok"]
    assert sorted(r["kind"] for r in rows) == sorted(kinds), rows
    for r in rows:
        assert r["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        timed = ("load_ms", "first_inference_ms") + (("compile_ms",) if r["kind"] == "openvino_cpu" else ())
        for key in timed:
            v = r[key]
            assert isinstance(v, float) and math.isfinite(v) and v > 0, (r["row"], key, v)
        if r["kind"] == "ort_cpu":
            assert r["compile_ms"] is None, r
        else:
            assert r["compile_ms"] <= r["load_ms"], r


def test_format_md_prints_the_table(tmp_path, capsys):
    """``--format md`` (no ``--out``): stdout is the device line, then the markdown table (a
    header row, its rule and one row per measured build, every line a ``|``-row of as many
    cells); nothing is written. ``--format json`` prints the report instead."""
    model, img, lab = _bench_inputs(tmp_path)
    argv = ["--model", str(model), "--images", str(img), "--labels", str(lab), *_FAST_CLI]
    argv += ["--rows", "ort_cpu"]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*argv, "--format", "md"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Device: ") and lines[1] == "", lines[:2]
    table = lines[2:]
    assert table[0].startswith("| row | model | size | threads | batch | p50 ms |"), table[0]
    assert set(table[1]) <= set("|-:") and table[1].startswith("|---|")
    assert table[2].startswith("| ORT CPU FP32 | a.onnx | 8×8 | 1 | 1 | "), table[2]
    cells = table[0].count("|")
    assert all(ln.startswith("| ") or ln.startswith("|-") for ln in table), table
    assert all(ln.endswith("|") and ln.count("|") == cells for ln in table), table
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert main([*argv, "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [r["row"] for r in rep["results"] if r["status"] == "ok"] == ["ORT CPU FP32"]


def test_plot_skipped_without_matplotlib_says_why(tmp_path, monkeypatch, capsys):
    """Without matplotlib, ``--out`` still writes the report files; ``bench.png`` is not
    written and a stderr line says why (also without labels: no mIoU to plot)."""
    import importlib.util

    model, img, lab = _bench_inputs(tmp_path)
    argv = ["--model", str(model), "--images", str(img), *_FAST_CLI, "--rows", "ort_cpu"]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    out = tmp_path / "out"
    assert main([*argv, "--labels", str(lab), "--out", str(out)]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "bench.png" in ln]
    assert err == ["bench.png not written: matplotlib is not installed (pip install matplotlib)"], err
    assert sorted(p.name for p in out.iterdir()) == ["bench.csv", "bench.json", "bench.md"]
    out2 = tmp_path / "out2"
    assert main([*argv, "--out", str(out2)]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "bench.png" in ln]
    why = "no measured row has both a latency and an mIoU (give --labels)"
    assert err == [f"bench.png not written: {why}"], err
    monkeypatch.undo()  # matplotlib as it was
    if importlib.util.find_spec("matplotlib") is None:
        return
    out3 = tmp_path / "out3"  # with matplotlib: the plot is written, nothing said
    assert main([*argv, "--labels", str(lab), "--out", str(out3)]) == 0
    assert "bench.png" not in capsys.readouterr().err
    assert (out3 / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
