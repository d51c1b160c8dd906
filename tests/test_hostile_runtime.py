"""Issue #33, the runtime's items: hostile or unlucky inputs to ``rdd-infer`` / ``rdd-bench``.

House rules checked here: bad input is a one-line error naming the file or key; nothing
half-written is left behind; a run that cannot finish says so (exit code, ``completed: false``,
``stop_reason``) and loses nothing written before; memory is bounded by settings, not by the
input's length.

Every model is a toy ONNX graph built here (torch-free, milliseconds per frame). The command
lines run in subprocesses started from this checkout's ``[project.scripts]`` (``PYTHONPATH`` =
the checkout), so the same file can be run against an older tree.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from toy_onnx import toy_onnx

REPO = Path(__file__).resolve().parents[1]
LIMIT = 4096 * 4096  # the default --max-input-pixels
# a safety net: if a size check were missing, OpenCV refuses to decode these test images instead
# of allocating gigabytes
_ENV = {
    **os.environ,
    "PYTHONPATH": str(REPO),
    "OMP_NUM_THREADS": "1",
    "OPENCV_IO_MAX_IMAGE_PIXELS": str(64 * 1024 * 1024),
}


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return toy_onnx(tmp_path_factory.mktemp("model") / "toy.onnx")


def _video(path: Path, n: int, size=(48, 64), fps: float = 10.0, noise: bool = False) -> Path:
    h, w = size
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert wr.isOpened()
    rng = np.random.default_rng(0)
    for i in range(n):
        if noise:
            f = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        else:
            f = np.zeros((h, w, 3), np.uint8)
            f[:, : (i * 7) % w] = (0, 40 * (i % 6), 255)
        wr.write(f)
    wr.release()
    return path


def _images(folder: Path, n: int, size=(24, 32)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), rng.integers(0, 256, (*size, 3), np.uint8))
    return folder


def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A valid PNG signature + IHDR declaring ``w``×``h`` RGB, then a few zero rows and IEND:
    a file of a few hundred bytes whose header claims a huge image (never decoded here)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    rows = zlib.compress(bytes(4 * (1 + 3 * 64)))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def _script(name: str) -> list[str]:
    """The command of ``[project.scripts] name`` of this checkout, as a ``python -c`` line."""
    import tomllib

    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"][name]
    mod, fn = target.split(":")
    return [
        sys.executable,
        "-c",
        f"import sys; sys.argv[0] = {name!r}; from {mod} import {fn} as m; sys.exit(m())",
    ]


def _run(name: str, args, *, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_script(name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_ENV,
        cwd=kw.pop("cwd", REPO),
        check=False,
        **kw,
    )


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def _one_error(p: subprocess.CompletedProcess) -> str:
    lines = _lines(p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _hidden(folder: Path) -> list[str]:
    """Temporary siblings (hidden names) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@contextlib.contextmanager
def _http(root: Path):
    """``http://127.0.0.1:PORT`` serving ``root`` (a plain SimpleHTTPRequestHandler: no Range
    support; OpenCV's FFmpeg reads an mp4 with its index at the end without seeking back)."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


# --------------------------------------------------------------------------- 1. finite HTTP video
@pytest.mark.parametrize("reconnect", [None, "0"])
def test_finite_http_video_ends_with_every_frame(tmp_path, toy, reconnect):
    """Issue #33: an mp4 served over HTTP was taken for a live stream: paced, frames dropped
    (latest-frame-wins), and at its end reconnected 3 times, then exit 2 "stream_ended". A stream
    that declares its frame count is a file: it ends at its last frame, every frame processed."""
    www = tmp_path / "www"
    www.mkdir()
    _video(www / "clip.mp4", 20)
    report = tmp_path / "r.json"
    with _http(www) as base:
        args = [
            "--model",
            toy,
            "--video",
            f"{base}/clip.mp4",
            "--report",
            report,
            "--no-progress",
            "--warmup",
            "0",
        ]
        if reconnect is not None:
            args += ["--reconnect", reconnect]
        t0 = time.monotonic()
        p = _run("rdd-infer", args, timeout=60)
        took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    rep = json.loads(report.read_text())
    assert rep["completed"] is True and rep["stop_reason"] == "end_of_input", rep
    assert rep["frames"] == 20
    assert rep["source"]["live"] is False and rep["source"]["reconnects"] == 0
    assert rep.get("realtime", {}).get("dropped", 0) == 0
    assert took < 30, f"took {took:.1f} s"


# --------------------------------------------------------------------------- 2. full disk
def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_full_disk_is_an_error_not_success(tmp_path, toy):
    """Issue #33: the mp4 writer ignores failed writes, so a full disk gave a truncated overlay,
    exit 0 and a report saying ``completed: true``. Now the finished mp4 is read back before it
    gets its name: exit non-zero, one line, and no overlay, temporary or report left."""
    clip = _video(tmp_path / "in.mp4", 30, size=(96, 128), noise=True)
    work = tmp_path / "work"
    work.mkdir()
    out, report = work / "o.mp4", work / "r.json"
    limit = 48 * 1024  # the overlay of 30 noisy 96×128 frames is several times larger
    p = subprocess.run(
        [
            *_script("rdd-infer"),
            "--model",
            str(toy),
            "--video",
            str(clip),
            "--out",
            str(out),
            "--report",
            str(report),
            "--resize",
            "native",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_ENV,
        cwd=REPO,
        preexec_fn=_limit_file_size(limit),
        check=False,
    )
    assert p.returncode not in (0, 130, 143) and p.returncode > 0, p.stderr
    line = _one_error(p)
    assert "o.mp4" in line, line
    assert sorted(q.name for q in work.iterdir()) == [], "nothing may be left behind"
    # the same run without the limit writes everything (the limit was the only problem)
    p = _run(
        "rdd-infer",
        [
            "--model",
            toy,
            "--video",
            clip,
            "--out",
            out,
            "--report",
            report,
            "--resize",
            "native",
            "--no-progress",
        ],
    )
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size > limit and _count_frames(out) == 30
    assert json.loads(report.read_text())["completed"] is True


# --------------------------------------------------------------------------- 3. sizes bounded
def _refused(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode == 2, p.stderr
    line = _one_error(p)
    for n in needles:
        assert n in line, line
    return line


def test_a_huge_frame_or_label_is_refused_from_its_header(tmp_path, toy):
    """Issue #33: a 30000×30000 PNG of a few hundred bytes was decoded (2.7 GB) before any check.
    Frames and labels are refused by their header: exit 2, one line naming the file and the limit
    (also with ``--resize native``, where the frame's own size would be the inference size)."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    huge = _png_header_only(imgs / "a.png", 30000, 30000)
    assert huge.stat().st_size < 4096
    report = tmp_path / "r.json"
    base = ["--model", toy, "--report", report, "--no-progress"]
    for extra in ([], ["--resize", "native"]):
        p = _run("rdd-infer", [*base, "--images", imgs, *extra])
        _refused(p, str(huge), str(LIMIT), "30000")
        assert p.stdout == "" and not report.exists()
    # a label whose header is huge, beside a normal frame
    ok = tmp_path / "ok"
    ok.mkdir()
    cv2.imwrite(str(ok / "a.png"), np.zeros((8, 8, 3), np.uint8))
    labels = tmp_path / "labels"
    labels.mkdir()
    lab = _png_header_only(labels / "a.png", 30000, 30000)
    p = _run("rdd-infer", [*base, "--images", ok, "--labels", labels])
    _refused(p, str(lab), str(LIMIT))
    assert not report.exists()


def test_max_input_pixels_moves_the_bound_both_ways(tmp_path, toy):
    """The default refuses a frame above 4096×4096 (an all-zero PNG, so it is cheap to hold);
    ``--max-input-pixels`` lets it through, and a lower one refuses a 3000×3000 frame the default
    takes. Checked before decoding either way."""
    big = tmp_path / "big"
    big.mkdir()
    cv2.imwrite(str(big / "a.png"), np.zeros((4100, 4100, 3), np.uint8))
    mid = tmp_path / "mid"
    mid.mkdir()
    cv2.imwrite(str(mid / "a.png"), np.zeros((3000, 3000, 3), np.uint8))
    report = tmp_path / "r.json"
    base = ["--model", toy, "--report", report, "--no-progress"]
    _refused(_run("rdd-infer", [*base, "--images", big]), str(big / "a.png"), str(LIMIT))
    assert not report.exists()
    p = _run("rdd-infer", [*base, "--images", big, "--max-input-pixels", str(4100 * 4100)])
    assert p.returncode == 0, p.stderr
    assert json.loads(report.read_text())["frame_size"] == [4100, 4100]
    report.unlink()
    p = _run("rdd-infer", [*base, "--images", mid])
    assert p.returncode == 0, p.stderr
    report.unlink()
    _refused(
        _run("rdd-infer", [*base, "--images", mid, "--max-input-pixels", "1000000"]),
        str(mid / "a.png"),
        "1000000",
    )
    assert not report.exists()


def test_a_video_declaring_frames_above_the_limit_is_refused_before_decoding(tmp_path, toy):
    clip = _video(tmp_path / "v.mp4", 3, size=(48, 64))
    report = tmp_path / "r.json"
    p = _run(
        "rdd-infer",
        ["--model", toy, "--video", clip, "--report", report, "--no-progress", "--max-input-pixels", "1000"],
    )
    _refused(p, str(clip), "1000", "64×48")
    assert p.stdout == "" and not report.exists()


def test_rdd_bench_refuses_a_huge_size_as_a_usage_error(tmp_path, toy):
    p = _run("rdd-bench", ["--model", toy, "--sizes", "100000x100000", "--out", tmp_path / "b"])
    assert p.returncode == 2, p.stderr
    line = _one_error(p)
    assert "--sizes" in line and "100000x100000" in line, line
    assert not (tmp_path / "b").exists()


# --------------------------------------------------------------------------- 4. --compare
def test_compare_with_another_class_list_is_refused_before_the_run(tmp_path, toy):
    """Issue #33: ``--compare`` opened the second build after the whole run (and loaded every
    frame into memory for it): a build it could never compare with failed at the very end. Now
    it is opened and checked first: exit 2, nothing on stdout, no report."""
    imgs = _images(tmp_path / "imgs", 3)
    other = toy_onnx(tmp_path / "other.onnx", (0, 1, 2), names=["x", "y", "z"])
    report = tmp_path / "r.json"
    p = _run(
        "rdd-infer",
        ["--model", toy, "--images", imgs, "--report", report, "--no-progress", "--compare", f"ort:{other}"],
    )
    line = _refused(p, "--compare", str(other))
    assert "class" in line, line
    assert p.stdout == "" and not report.exists()


def test_compare_with_an_unreadable_build_is_refused_before_the_run(tmp_path, toy):
    imgs = _images(tmp_path / "imgs", 3)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 this is not a protobuf \xff\xfe" * 40)
    report = tmp_path / "r.json"
    p = _run(
        "rdd-infer",
        [
            "--model",
            toy,
            "--images",
            imgs,
            "--report",
            report,
            "--no-progress",
            "--compare",
            f"ort:{garbage}",
        ],
    )
    _refused(p, "--compare", str(garbage))
    assert p.stdout == "" and not report.exists()


def _fixed_size(path: Path, hw: tuple[int, int]) -> Path:
    """The toy model with a static ``hw`` input (and output) in its graph and its rdd_meta."""
    import onnx

    m = onnx.load(str(toy_onnx(path)))
    for v in (m.graph.input[0], m.graph.output[0]):
        dims = v.type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = hw  # replaces the symbolic "H", "W"
    prop = next(p for p in m.metadata_props if p.key == "rdd_meta")
    meta = json.loads(prop.value)
    prop.value = json.dumps({**meta, "input_size": list(hw), "dynamic_spatial": False})
    onnx.save(m, str(path))
    return path


def test_compare_with_a_build_of_another_fixed_size_is_refused_before_the_run(tmp_path, toy):
    """A second build that only accepts another input size than the first runs at cannot see the
    same frames: refused before the run (exit 2, one line naming both sizes, nothing on stdout, no
    report). A fixed build of the size the first runs at (its own, or ``--resize``) is compared."""
    imgs = _images(tmp_path / "imgs", 3)
    other = _fixed_size(tmp_path / "fixed16.onnx", (16, 16))
    report = tmp_path / "r.json"
    base = ["--model", toy, "--images", imgs, "--report", report, "--no-progress"]
    p = _run("rdd-infer", [*base, "--compare", f"ort:{other}"])
    line = _refused(p, "--compare", str(other), "only accepts 16x16 inputs", "runs at 8x8")
    assert p.stdout == "" and not report.exists(), line
    same = _fixed_size(tmp_path / "fixed8.onnx", (8, 8))
    for extra in (["--compare", f"ort:{same}"], ["--resize", "16x16", "--compare", f"ort:{other}"]):
        p = _run("rdd-infer", [*base, *extra])
        assert p.returncode == 0, p.stderr
        cmp = json.loads(report.read_text())["compare"]
        assert cmp["frames"] == 3 and cmp["argmax_agreement"] == 1.0, (extra, cmp)
        report.unlink()


def test_compare_builds_streams_its_frames(tmp_path, toy):
    """``compare_builds`` pulls one frame, runs both builds on it, then pulls the next."""
    from rdd.runtime.backends import open_build
    from rdd.runtime.measure.score import compare_builds

    first, second = open_build(toy), open_build(toy)
    pulled, done = [0], [0]
    seen: list[int] = []

    class Counting:
        def __init__(self, be):
            self.be = be
            self.meta = be.meta

        def forward(self, x):
            seen.append(pulled[0] - done[0])  # frames pulled but not finished, now
            return self.be.forward(x)

        def __getattr__(self, name):
            return getattr(self.be, name)

    rng = np.random.default_rng(0)

    def frames():
        for i in range(12):
            pulled[0] += 1
            yield f"f{i}", rng.integers(0, 256, (8, 8, 3), np.uint8), None
            done[0] += 1

    res = compare_builds(Counting(first), Counting(second), frames(), "model")
    assert res["frames"] == 12 and res["argmax_agreement"] == 1.0
    assert len(seen) == 24 and max(seen) == 1


def test_the_runners_compare_does_not_load_every_frame_first(tmp_path, toy, monkeypatch, capfd):
    """Decoding and inference interleave in the comparison (and in the run): never more than a
    few frames decoded ahead of inference, whatever the number of frames."""
    import onnxruntime

    from rdd.runtime import cli

    imgs = _images(tmp_path / "imgs", 16)
    events: list[str] = []
    imread, run = cv2.imread, onnxruntime.InferenceSession.run

    def counting_imread(*a, **kw):
        events.append("decode")
        return imread(*a, **kw)

    def counting_run(self, *a, **kw):
        events.append("infer")
        return run(self, *a, **kw)

    monkeypatch.setattr(cv2, "imread", counting_imread)
    monkeypatch.setattr(onnxruntime.InferenceSession, "run", counting_run)
    report = tmp_path / "r.json"
    rc = cli.main(
        [
            "--model",
            str(toy),
            "--images",
            str(imgs),
            "--compare",
            "ort",
            "--report",
            str(report),
            "--no-progress",
            "--queue-size",
            "1",
        ]
    )
    assert rc == 0, capfd.readouterr().err
    rep = json.loads(report.read_text())
    assert rep["frames"] == 16 and rep["compare"]["frames"] == 16
    assert rep["compare"]["argmax_agreement"] == 1.0
    assert events.count("decode") == 32
    runs = [len(m) for m in re.findall("D+", "".join(e[0].upper() for e in events))]
    assert max(runs) <= 4, f"{max(runs)} frames decoded in a row before an inference"


# --------------------------------------------------------------------------- 8. --warmup > frames
@pytest.mark.parametrize("warmup,frames,excluded", [(100, 5, 0), (4, 5, 0), (3, 5, 3), (0, 5, 0)])
def test_a_warmup_longer_than_the_run_is_not_an_fps_of_one_frame(
    tmp_path, toy, capfd, warmup, frames, excluded
):
    """Issue #33: ``--warmup 100`` on 5 frames excluded 4 of them and reported an FPS "measured"
    on one frame. A warm-up that would leave fewer than 2 frames is not applied: every frame is
    measured, and the report says so (``warmup`` excluded, ``warmup_asked``, a one-line
    ``note``)."""
    from rdd.runtime import cli

    imgs = _images(tmp_path / "imgs", frames)
    report = tmp_path / "r.json"
    assert (
        cli.main(
            [
                "--model",
                str(toy),
                "--images",
                str(imgs),
                "--warmup",
                str(warmup),
                "--report",
                str(report),
                "--no-progress",
            ]
        )
        == 0
    ), capfd.readouterr().err
    rep = json.loads(report.read_text())
    assert rep["frames"] == frames and rep["warmup_asked"] == warmup
    assert rep["warmup"] == excluded and rep["measured_frames"] == frames - excluded >= 2
    assert rep["fps"] is not None and rep["fps"] > 0
    if excluded < warmup:
        assert "\n" not in rep["note"] and str(warmup) in rep["note"], rep["note"]
    else:
        assert "note" not in rep


# --------------------------------------------------------------------------- 6. rdd-bench
FAST = [
    "--duration",
    "0",
    "--warmup-ms",
    "0",
    "--min-runs",
    "3",
    "--rounds",
    "1",
    "--e2e-frames",
    "0",
    "--threads",
    "1",
    "--rows",
    "ort_cpu",
]


def _labelled(tmp_path: Path, n: int = 4, channels=(0, 1)) -> tuple[Path, Path]:
    """8×8 frames and masks equal to the argmax of the toy model of ``channels``."""
    img, lab = tmp_path / "img", tmp_path / "lab"
    img.mkdir()
    lab.mkdir()
    rng = np.random.default_rng(3)
    for i in range(n):
        rgb = rng.integers(0, 256, (8, 8, 3), np.uint8)
        cv2.imwrite(str(img / f"f{i}.png"), rgb[..., ::-1].copy())
        mask = (rgb[..., channels[1]] > rgb[..., channels[0]]).astype(np.uint8)
        cv2.imwrite(str(lab / f"f{i}.png"), mask)
    return img, lab


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bench_out_that_is_an_input_or_unwritable_is_refused_first(tmp_path):
    """``rdd-bench --out`` naming the model's folder, a model file, the image folder, an
    existing file or a place nobody can write: exit 2 before anything runs, nothing written."""
    models = tmp_path / "models"
    toy_onnx(models / "a.onnx")
    img, lab = _labelled(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me\n")
    before = _tree(tmp_path)
    for out, model, needle in (
        (models, models, "--out"),
        (models, models / "a.onnx", "--out"),
        (models / "a.onnx", models / "a.onnx", "--out"),
        (img, models, "--out"),
        (tmp_path / "notes.txt", models, "is a file"),
        (tmp_path / "notes.txt" / "b", models, "--out"),
        (Path("/proc/rdd-bench-out"), models, "--out"),
    ):
        p = _run("rdd-bench", ["--model", model, "--images", img, "--labels", lab, *FAST, "--out", out])
        line = _refused(p, needle, str(out))
        assert p.stdout == "", (out, line)
        assert _tree(tmp_path) == before, out
        assert not Path("/proc/rdd-bench-out").exists()


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--duration", "nan"),
        ("--duration", "inf"),
        ("--duration", "-1"),
        ("--warmup-ms", "nan"),
        ("--warmup-ms", "-5"),
        ("--recommend", "nan"),
        ("--recommend", "inf"),
        ("--recommend", "-1"),
        ("--min-runs", "-1"),
        ("--rounds", "0"),
        ("--e2e-frames", "-1"),
        ("--threads", "-1"),
        ("--frames", "0"),
        ("--batch", "0"),
        ("--max-input-pixels", "-5"),
        ("--max-input-pixels", "nan"),
        ("--sizes", "8x-8"),
        ("--sizes", "nanxnan"),
        ("--sizes", "0x0"),
    ],
)
def test_bench_odd_numbers_are_one_line_usage_errors(tmp_path, toy, flag, value):
    p = _run("rdd-bench", ["--model", toy, flag, value, "--out", tmp_path / "b"])
    line = _refused(p, f"argument {flag}", value)
    assert p.stdout == "" and not (tmp_path / "b").exists(), line


def _wait_for(proc: subprocess.Popen, err: bytearray, pattern: bytes, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if re.search(pattern, bytes(err)):
            return True
        time.sleep(0.05)
    return False


def _pump(proc: subprocess.Popen) -> tuple[bytearray, threading.Thread]:
    err = bytearray()

    def pump() -> None:
        while chunk := os.read(proc.stderr.fileno(), 4096):
            err.extend(chunk)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return err, t


@pytest.mark.parametrize(
    "sig,code,reason", [(signal.SIGTERM, 143, "sigterm"), (signal.SIGINT, 130, "sigint")]
)
def test_bench_interrupted_while_timing_keeps_the_rows_measured(tmp_path, toy, sig, code, reason):
    """SIGTERM / Ctrl-C in the timing loop: exit 143 / 130, and ``bench.json`` holds the rows
    measured so far with ``completed: false`` (the batch-1 row; batch 2 was being timed)."""
    img, lab = _labelled(tmp_path)
    out = tmp_path / "b"
    proc = subprocess.Popen(
        [
            *_script("rdd-bench"),
            "--model",
            str(toy),
            "--images",
            str(img),
            "--labels",
            str(lab),
            "--duration",
            "3",
            "--warmup-ms",
            "0",
            "--min-runs",
            "1",
            "--rounds",
            "1",
            "--e2e-frames",
            "0",
            "--threads",
            "1",
            "--rows",
            "ort_cpu",
            "--batch",
            "1",
            "2",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_ENV,
        cwd=REPO,
    )
    err, pump = _pump(proc)
    try:
        assert _wait_for(proc, err, rb"@ batch 2", 120), bytes(err).decode(errors="replace")
        time.sleep(0.3)
        proc.send_signal(sig)
        proc.stdout.read()
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    pump.join(timeout=10)
    text = bytes(err).decode(errors="replace")
    assert rc == code, text
    assert "Traceback" not in text and f"interrupted ({reason.upper()})" in text, text
    rep = json.loads((out / "bench.json").read_text())
    assert rep["completed"] is False and rep["stop_reason"] == reason
    ok = [r for r in rep["results"] if r["status"] == "ok"]
    assert [(r["row"], r["batch"]) for r in ok] == [("ORT CPU FP32", 1)], rep["results"]
    assert ok[0]["miou"] == 1.0
    assert _hidden(out) == []


def test_bench_interrupted_in_an_end_to_end_run_stops_the_benchmark(tmp_path, toy):
    """The end-to-end FPS column runs the runner's pipeline, which takes a Ctrl-C as "stop after
    the frame in hand": that stop must end the benchmark too (exit 143, ``completed: false``),
    not just shorten one e2e run and carry on as if nothing happened."""
    img, lab = _labelled(tmp_path)
    clip = _video(tmp_path / "long.mp4", 3000, size=(48, 64), fps=25.0)
    out = tmp_path / "b"
    proc = subprocess.Popen(
        [
            *_script("rdd-bench"),
            "--model",
            str(toy),
            "--images",
            str(img),
            "--labels",
            str(lab),
            "--duration",
            "0",
            "--warmup-ms",
            "0",
            "--min-runs",
            "1",
            "--rounds",
            "1",
            "--threads",
            "1",
            "--rows",
            "ort_cpu",
            "--clip",
            str(clip),
            "--e2e-frames",
            "3000",
            "--sizes",
            "96x128",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_ENV,
        cwd=REPO,
    )
    err, pump = _pump(proc)
    try:
        assert _wait_for(proc, err, rb"timing 1 rows @ batch 1", 120), bytes(err).decode()
        time.sleep(0.5)  # timing took milliseconds: this is the e2e run
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    pump.join(timeout=10)
    text = bytes(err).decode(errors="replace")
    assert rc == 143, text
    assert "Traceback" not in text and "interrupted (SIGTERM)" in text, text
    rep = json.loads((out / "bench.json").read_text())
    assert rep["completed"] is False and rep["stop_reason"] == "sigterm"


def test_bench_a_corrupt_build_is_a_failed_row_the_others_are_measured(tmp_path):
    img, lab = _labelled(tmp_path)
    models = tmp_path / "models"
    bad = models / "a_broken.onnx"
    models.mkdir()
    bad.write_bytes(b"\x08\x07 not a protobuf \xff\xfe" * 50)
    good = toy_onnx(models / "b_good.onnx")
    out = tmp_path / "b"
    p = _run("rdd-bench", ["--model", bad, good, "--images", img, "--labels", lab, *FAST, "--out", out])
    assert p.returncode == 0, p.stderr
    rows = json.loads((out / "bench.json").read_text())["results"]
    by_model = {}
    for r in rows:
        if r.get("model") and r["kind"] == "ort_cpu":
            by_model.setdefault(r["model"], []).append(r)
    [b] = by_model["a_broken.onnx"]
    assert b["status"].startswith("failed: ") and "\n" not in b["status"], b
    [g] = by_model["b_good.onnx"]
    assert g["status"] == "ok" and g["miou"] == 1.0 and g["latency_ms"]["p50"] > 0


def test_bench_two_students_are_each_compared_with_themselves(tmp_path):
    """Issue #33: with two FP32 students, the second was compared with the first (agreement < 1
    and a ΔmIoU that is the difference between two models, not a build's loss)."""
    img, lab = _labelled(tmp_path)
    a = toy_onnx(tmp_path / "a.onnx", (0, 1), model="a")
    b = toy_onnx(tmp_path / "b.onnx", (2, 1), model="b")
    out = tmp_path / "out"
    p = _run("rdd-bench", ["--model", a, b, "--images", img, "--labels", lab, *FAST, "--out", out])
    assert p.returncode == 0, p.stderr
    ok = {
        r["model"]: r for r in json.loads((out / "bench.json").read_text())["results"] if r["status"] == "ok"
    }
    assert set(ok) == {"a.onnx", "b.onnx"}
    assert ok["a.onnx"]["miou"] == 1.0 and ok["b.onnx"]["miou"] < 0.9  # two different models
    for r in ok.values():
        assert r["argmax_agreement"] == 1.0 and r["miou_loss"] == 0.0, r
        assert r["max_abs_logit_diff"] in (0.0, None), r


def test_bench_recommends_a_build_of_the_better_model(tmp_path):
    """``--recommend``: a fast bad model and a slower good one. The bad model's FP32 row is its
    own reference (loss 0), but the threshold is relative to the best model's FP32 row, so the
    recommendation is the good model."""
    img, lab = _labelled(tmp_path)
    bad = toy_onnx(tmp_path / "a_bad.onnx", (1, 0), model="bad")  # the inverse
    good = toy_onnx(tmp_path / "b_good.onnx", (0, 1), model="good", extra_ops=400)
    out = tmp_path / "out"
    p = _run(
        "rdd-bench",
        [
            "--model",
            bad,
            good,
            "--images",
            img,
            "--labels",
            lab,
            *FAST,
            "--min-runs",
            "20",
            "--recommend",
            "1",
            "--out",
            out,
        ],
    )
    assert p.returncode == 0, p.stderr
    rep = json.loads((out / "bench.json").read_text())
    ok = {r["model"]: r for r in rep["results"] if r["status"] == "ok"}
    assert ok["a_bad.onnx"]["miou"] < 0.5 and ok["b_good.onnx"]["miou"] == 1.0
    assert ok["a_bad.onnx"]["latency_ms"]["p50"] < ok["b_good.onnx"]["latency_ms"]["p50"]
    assert rep["recommendation"]["model"] == "b_good.onnx", rep["recommendation"]


# --------------------------------------------------------------------------- 7. outputs together
def test_masks_that_cannot_be_committed_take_every_output_with_them(tmp_path, toy, monkeypatch, capfd):
    """Issue #33: ``--save-masks`` and ``--out`` were committed separately, so a masks folder
    that could not be put in place left an overlay and a report claiming the masks. Here another
    process fills the masks folder between the checks and the renames: the run fails (one line),
    and no overlay, report, masks or temporary is left; the other process's file is untouched."""
    from rdd.runtime import cli
    from rdd.runtime.stream.masks import MaskWriter

    imgs = _images(tmp_path / "imgs", 4)
    work = tmp_path / "work"
    work.mkdir()
    out, report, masks = work / "o.mp4", work / "r.json", work / "m"
    check = MaskWriter.check

    def check_then_intrude(self) -> None:
        check(self)
        masks.mkdir(exist_ok=True)
        (masks / "intruder.png").write_bytes(b"someone else's")

    monkeypatch.setattr(MaskWriter, "check", check_then_intrude)
    rc = cli.main(
        [
            "--model",
            str(toy),
            "--images",
            str(imgs),
            "--out",
            str(out),
            "--save-masks",
            str(masks),
            "--report",
            str(report),
            "--no-progress",
        ]
    )
    err = capfd.readouterr().err
    assert rc not in (0, 130, 143), err
    lines = _lines(err)
    assert len(lines) == 1 and str(masks) in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in work.iterdir()) == ["m"]
    assert sorted(p.name for p in masks.iterdir()) == ["intruder.png"]
    assert (masks / "intruder.png").read_bytes() == b"someone else's"


def test_two_runs_writing_the_same_outputs_leave_one_consistent_set(tmp_path, toy):
    """Two runs at once, different inputs (3 and 5 frames), the same ``--out``, ``--save-masks``
    and ``--report``: whatever the timing, what is left is one run's overlay, masks and report."""
    small, large = _images(tmp_path / "small", 3), _images(tmp_path / "large", 5, size=(32, 40))
    for round_ in range(3):
        work = tmp_path / f"work{round_}"
        work.mkdir()
        out, report, masks = work / "o.mp4", work / "r.json", work / "m"
        procs = [
            subprocess.Popen(
                [
                    *_script("rdd-infer"),
                    "--model",
                    str(toy),
                    "--images",
                    str(src),
                    "--out",
                    str(out),
                    "--save-masks",
                    str(masks),
                    "--report",
                    str(report),
                    "--no-progress",
                    "--realtime",
                    "--fps",
                    str(8 + 4 * round_),
                    "--resize",
                    "native",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_ENV,
                cwd=REPO,
            )
            for src in (small, large)
        ]
        results = [(p.wait(timeout=120), p.communicate()) for p in procs]
        codes = [rc for rc, _ in results]
        assert 0 in codes, results
        for rc, (_, err) in results:
            if rc != 0:  # the loser says why in one line
                assert rc in (1, 2) and len(_lines(err)) == 1, err
        rep = json.loads(report.read_text())
        n = rep["frames"]
        assert rep["completed"] is True and n in (3, 5)
        src = small if n == 3 else large
        assert rep["source"]["path"] == str(src)
        assert _count_frames(out) == n
        cap = cv2.VideoCapture(str(out))
        size = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        cap.release()
        assert size == ((24, 32) if n == 3 else (32, 40))
        assert sorted(p.stem for p in masks.iterdir()) == sorted(p.stem for p in src.iterdir())
        assert rep["masks_written"] == n
        assert sorted(p.name for p in work.iterdir()) == ["m", "o.mp4", "r.json"]  # no temp


# --------------------------------------------------------------------------- 5. double Ctrl-C
#: (moment, seconds after it, seconds between the two SIGINTs); "handlers" = rdd-infer's
#: SIGINT/SIGTERM handlers are installed (what follows: numpy, OpenCV, onnxruntime imports, model
#: loading), "run" = the third frame is done. Before "handlers" the interpreter itself is starting
#: (site imports): no program handles a signal there.
_DOUBLE_CTRL_C = [
    ("handlers", 0.0, 0.0),
    ("handlers", 0.1, 0.01),
    ("handlers", 0.3, 0.0),
    ("handlers", 0.7, 0.05),
    ("run", 0.0, 0.0),
    ("run", 0.0, 0.01),
    ("run", 0.15, 0.002),
    ("run", 0.4, 0.05),
    ("run", 0.9, 0.0),
]


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (Python installs none of its own)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    m = re.search(r"^SigCgt:\s*([0-9a-f]+)", text, re.MULTILINE)
    return bool(m and int(m.group(1), 16) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status")
def test_double_ctrl_c_always_exits_130(tmp_path, toy):
    """Issue #33: two quick Ctrl-C could end ``rdd-infer`` with SIGABRT ("Fatal Python error",
    a C++ "terminate called") or a traceback, depending on where the second one landed. Whatever
    the moment: exit 130, no traceback, no temporary left, and any report says it did not
    complete."""
    clip = _video(tmp_path / "long.mp4", 300, size=(48, 64), fps=25.0)
    for i, (moment, delay, gap) in enumerate(_DOUBLE_CTRL_C):
        work = tmp_path / f"w{i}"
        work.mkdir()
        out, report = work / "o.mp4", work / "r.json"
        proc = subprocess.Popen(
            [
                *_script("rdd-infer"),
                "--model",
                str(toy),
                "--video",
                str(clip),
                "--out",
                str(out),
                "--report",
                str(report),
                "--realtime",
                "--resize",
                "native",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_ENV,
            cwd=REPO,
        )
        err, pump = _pump(proc)
        try:
            if moment == "run":
                assert _wait_for(proc, err, rb"\b([3-9]|\d\d+)/300\b", 120), bytes(err).decode()
            else:
                deadline = time.monotonic() + 60
                while not _catches_sigterm(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.002)
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            time.sleep(gap)
            proc.send_signal(signal.SIGINT)
            proc.stdout.read()
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        pump.join(timeout=10)
        text = bytes(err).decode(errors="replace")
        case = f"case {i} {(moment, delay, gap)}: rc {rc}\n{text}"
        assert rc == 130, case
        for bad in ("Traceback", "Fatal Python error", "terminate called", "Aborted", "Exception ignored"):
            assert bad not in text, case
        assert "error: interrupted (SIGINT)" in text, case
        assert _hidden(work) == [], case
        if report.exists():
            rep = json.loads(report.read_text())
            assert rep["completed"] is False and rep["stop_reason"] == "sigint", case
            assert _count_frames(out) == rep["frames"], case
        else:
            assert not out.exists(), case
