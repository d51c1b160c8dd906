"""The runner's inputs and outputs: stream URLs / cameras / reconnects, saved masks, batching,
real-time accounting and temporal stability. Tiny hand-built ONNX models, clips made here."""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from rdd.runtime import InputError, open_source
from rdd.runtime.cli import main
from rdd.runtime.stream.capture import (
    StreamSource,
    is_gstreamer_pipeline,
    parse_camera,
    redact_url,
    stream_scheme,
)
from rdd.spec import CAMVID_CLASSES, Normalization

onnx = pytest.importorskip("onnx")

H, W = 48, 64


# --------------------------------------------------------------------------- fixtures
def _conv_onnx(path: Path, *, batch: int | str = "N", k: int = 11, seed: int = 0) -> Path:
    """A 1×1 convolution 3 → k logits (NCHW float, dynamic H×W) with rdd_meta (CamVid classes)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    wgt = numpy_helper.from_array(rng.normal(size=(k, 3, 1, 1)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(size=(k,)).astype(np.float32), "b")
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, k, "H", "W"])
    g = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"])], "g", [x], [y], initializer=[wgt, bias]
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    classes = CAMVID_CLASSES if k == 11 else None
    meta = {
        "format": "rdd-edge/1",
        "model": "conv1x1",
        "input_name": "image",
        "input_layout": "NCHW",
        "input_dtype": "float32",
        "output_name": "logits",
        "output_kind": "logits",
        "normalization": Normalization().to_dict(),
        "classes": (
            classes.to_dict() if classes else {"names": [f"c{i}" for i in range(k)], "ignore_index": 65535}
        ),
        "input_size": [H, W],
        "dynamic_batch": batch == "N",
        "dynamic_spatial": True,
    }
    helper.set_model_props(model, {"rdd_meta": json.dumps(meta)})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory) -> Path:
    return _conv_onnx(tmp_path_factory.mktemp("onnx") / "conv.onnx")


def _frame(i: int) -> np.ndarray:
    """BGR frame ``i``: a bright square moving right over a two-tone background."""
    img = np.zeros((H, W, 3), np.uint8)
    img[: H // 2] = (40, 120, 200)
    img[H // 2 :] = (200, 60, 30)
    x = (6 * i) % (W - 16)
    img[10:30, x : x + 16] = (250, 250, 250)
    return img


def _write_clip(path: Path, n: int, fps: float = 10.0) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    for i in range(n):
        w.write(_frame(i))
    w.release()
    return path


class _MjpegServer:
    """An HTTP MJPEG (multipart/x-mixed-replace) server on 127.0.0.1, in a thread.

    Each connection gets ``frames`` JPEG frames ``delay_s`` apart and is then closed; after
    ``connections`` connections every further request gets a 404 (the stream is gone).
    """

    def __init__(self, frames: int, *, connections: int = 1, delay_s: float = 0.01) -> None:
        self.frames, self.connections, self.delay_s = frames, connections, delay_s
        self.served = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if owner.served >= owner.connections:
                    self.send_error(404)
                    return
                owner.served += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(owner.frames):
                        jpg = cv2.imencode(".jpg", _frame(i))[1].tobytes()
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n"
                        )
                        self.wfile.flush()
                        time.sleep(owner.delay_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    def __enter__(self) -> _MjpegServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(timeout=5)


def _run(capfd, argv) -> tuple[int, str, list[str]]:
    rc = main([str(a) for a in [*argv, "--no-progress", "--threads", "1"]])
    out, err = capfd.readouterr()
    return rc, out, [ln for ln in err.splitlines() if ln.strip()]


# --------------------------------------------------------------------------- sources: pure parts
def test_stream_text_classification_and_redaction():
    assert stream_scheme("rtsp://10.0.0.2:8554/cam") == "rtsp"
    assert stream_scheme("HTTPS://x/y.mjpg") == "https"
    assert stream_scheme("file:///tmp/a.mp4") == "file"
    assert stream_scheme("/data/drive.mp4") is None and stream_scheme("rtsp:/x") is None
    assert is_gstreamer_pipeline("v4l2src ! videoconvert ! appsink")
    assert not is_gstreamer_pipeline("clip!.mp4")
    assert redact_url("rtsp://admin:s3cret@10.0.0.2/live") == "rtsp://admin:***@10.0.0.2/live"
    assert redact_url("rtsp://10.0.0.2/live") == "rtsp://10.0.0.2/live"
    assert parse_camera("0") == 0 and parse_camera(2) == 2 and parse_camera("/dev/video0") == "/dev/video0"
    with pytest.raises(InputError, match="camera index must be >= 0") as e:
        parse_camera("-1")
    assert e.value.as_flags() == "--camera index must be >= 0, got -1"  # the command line's spelling


def test_stream_url_reaches_opencv_unchanged(monkeypatch):
    seen = []

    class FakeCap:
        def __init__(self, *args):
            seen.append(args)

        def isOpened(self):
            return False

    monkeypatch.setattr(cv2, "VideoCapture", FakeCap)
    url = "rtsp://user:pw@127.0.0.1:8554/a/b?x=1"
    with pytest.raises(InputError, match=r"cannot open stream rtsp://user:\*\*\*@127.0.0.1:8554/a/b"):
        open_source(video=url, stream_timeout=1.5)
    assert seen[0][0] == url and seen[0][1] == cv2.CAP_FFMPEG
    assert list(seen[0][2]) == [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 1500, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 1500]
    seen.clear()
    with pytest.raises(InputError, match="camera 3 could not be opened"):
        open_source(camera="3")
    assert seen == [(3,)]


def test_gstreamer_pipeline_without_gstreamer_is_one_clear_error():
    if cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(InputError, match="no GStreamer support"):
        open_source(video="videotestsrc num-buffers=3 ! videoconvert ! appsink")


# --------------------------------------------------------------------------- streams end to end
def test_unreachable_rtsp_fails_fast_in_one_line(capfd, conv_onnx, tmp_path):
    t0 = time.monotonic()
    rc, out, err = _run(
        capfd, ["--model", conv_onnx, "--video", "rtsp://127.0.0.1:1/x", "--report", tmp_path / "r.json"]
    )
    assert time.monotonic() - t0 < 10
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("error: cannot open stream rtsp://127.0.0.1:1/x")
    assert not out and not (tmp_path / "r.json").exists()


def test_silent_server_hits_the_open_timeout(capfd, conv_onnx):
    """A port that accepts but never answers: the open timeout (not FFmpeg's default) applies."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        t0 = time.monotonic()
        rc, _, err = _run(
            capfd,
            [
                "--model",
                conv_onnx,
                "--stream-timeout",
                "1",
                "--video",
                f"http://127.0.0.1:{s.getsockname()[1]}/x",
            ],
        )
        took = time.monotonic() - t0
    assert rc == 2 and len(err) == 1 and "no answer within 1 s" in err[0], err
    assert took < 8


def test_camera_device_path_errors(capfd, conv_onnx):
    rc, _, err = _run(capfd, ["--model", conv_onnx, "--camera", "/dev/no_such_video9"])
    assert rc == 2 and err == ["error: camera device not found: /dev/no_such_video9"]


def test_http_mjpeg_stream_runs(capfd, conv_onnx, tmp_path):
    report = tmp_path / "r.json"
    with _MjpegServer(frames=30) as srv:
        rc, out, err = _run(
            capfd,
            [
                "--model",
                conv_onnx,
                "--video",
                srv.url,
                "--max-frames",
                "6",
                "--warmup",
                "1",
                "--report",
                report,
                "--fps",
                "40",
            ],
        )
    assert rc == 0, err
    rep = json.loads(report.read_text())
    assert rep["realtime"]["frames_read"] == 6 and 1 <= rep["frames"] <= 6
    assert rep["realtime"]["fps_from"] == "--fps" and rep["realtime"]["deadline_ms"] == 25.0
    assert rep["frames"] + rep["realtime"]["dropped_frames"] == 6 and rep["frame_size"] == [H, W]
    assert rep["source"]["kind"] == "stream" and rep["source"]["live"] is True
    assert rep["source"]["url"] == srv.url and rep["source"]["scheme"] == "http"
    assert rep.get("stop_reason") != "stream_ended"
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("reconnect, served, frames", [(0, 1, 5), (1, 2, 10)])
def test_stream_that_drops_ends_with_report_and_exit_2(capfd, conv_onnx, tmp_path, reconnect, served, frames):
    """The server closes after 5 frames; with --reconnect 1 it serves a second connection, then
    404s: the run ends 'stream_ended', exit code 2, one error line, a report of what was read."""
    report = tmp_path / "r.json"
    with _MjpegServer(frames=5, connections=2) as srv:
        rc, out, err = _run(
            capfd,
            [
                "--model",
                conv_onnx,
                "--video",
                srv.url,
                "--warmup",
                "0",
                "--reconnect",
                reconnect,
                "--report",
                report,
            ],
        )
        assert srv.served == served
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: stream http://127.0.0.1:"), err
    assert f"after {frames} frames" in err[0] and f"--reconnect {reconnect}" in err[0]
    assert str(report) in err[0]
    rep = json.loads(report.read_text())
    rt = rep["realtime"]  # a live stream is always accounted in real time: frames may be dropped
    assert rt["mode"] == "live" and rt["frames_read"] == frames
    assert 1 <= rep["frames"] == frames - rt["dropped_frames"] and rep["completed"] is False
    assert rep["stop_reason"] == "stream_ended" and rep["stream_error"] in err[0]
    assert rep["source"]["reconnects"] == reconnect
    assert len(out.strip().splitlines()) == 1  # the summary of what was processed


def test_file_url_is_a_finite_stream(capfd, conv_onnx, tmp_path):
    clip = _write_clip(tmp_path / "c.mp4", 5)
    report = tmp_path / "r.json"
    rc, _, err = _run(
        capfd, ["--model", conv_onnx, "--video", clip.as_uri(), "--warmup", "0", "--report", report]
    )
    assert rc == 0, err
    rep = json.loads(report.read_text())
    assert rep["frames"] == 5 and rep["source"]["live"] is False and rep["source"]["scheme"] == "file"
    src = StreamSource(clip.as_uri())
    try:
        assert len(src) == 5 and src.fps == pytest.approx(10.0)
    finally:
        src.close()


# --------------------------------------------------------------------------- temporal figures
def test_label_change_rate_and_flicker_meter_golden():
    from rdd.runtime.stream.temporal import FlickerMeter, label_change_rate

    a = np.array([[0, 1], [2, 3]], np.uint8)
    b = np.array([[0, 1], [2, 4]], np.uint8)
    assert label_change_rate(a, b) == 0.25
    assert label_change_rate(a, b, np.array([[1, 1], [1, 0]], bool)) == 0.0
    assert np.isnan(label_change_rate(a, b, np.zeros((2, 2), bool)))
    with pytest.raises(ValueError, match="differ in shape"):
        label_change_rate(a, b[:1])
    m = FlickerMeter(ignore_index=255)
    gt0 = np.array([[0, 255], [2, 3]], np.uint8)
    gt1 = np.array([[1, 1], [2, 3]], np.uint8)
    m.update(a, gt0)
    m.update(b, gt1)  # pred: 1/4 changed; gt on 3 valid pixels: 1/3; pred there: 1/3
    m.update(b.copy(), None)  # pred: 0 changed; no gt pair
    s = m.summary(with_gt=True)
    assert s["flicker"] == pytest.approx(0.125) and s["flicker_pairs"] == 2
    assert s["flicker_gt"] == pytest.approx(1 / 3) and s["flicker_gt_pairs"] == 1
    assert s["flicker_at_gt"] == pytest.approx(1 / 3)
    assert set(m.summary(with_gt=False)) == {"flicker", "flicker_pairs"}


def test_interval_and_realtime_summary_golden():
    from rdd.runtime.stream.temporal import interval_stats, realtime_summary

    iv = interval_stats([0.0, 0.1, 0.2, 0.4])  # intervals 100, 100, 200 ms
    assert iv["mean"] == pytest.approx(400 / 3) and iv["p50"] == pytest.approx(100)
    assert iv["std"] == pytest.approx(np.std([100, 100, 200]))
    assert np.isnan(interval_stats([1.0])["std"])
    rt = realtime_summary(
        fps=10.0,
        fps_from="source",
        live=False,
        frames_read=10,
        frames=4,
        latencies_s=[0.05, 0.2, 0.09, 0.11],
        done_s=[0.0, 0.1, 0.2, 0.4],
    )
    assert rt["mode"] == "paced_file" and rt["deadline_ms"] == pytest.approx(100)
    assert rt["dropped_frames"] == 6 and rt["drop_rate"] == pytest.approx(0.6)
    assert rt["deadline_misses"] == 2 and rt["deadline_miss_rate"] == pytest.approx(0.5)
    assert rt["jitter_ms"] == {"std": iv["std"], "p99": iv["p99"]}


# --------------------------------------------------------------------------- --save-masks
def _images(root: Path, n: int, size=(40, 56)) -> list[np.ndarray]:
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"im_{i:02d}.png"), img)
        out.append(img[..., ::-1].copy())  # RGB
    return out


def _expected_masks(model: Path, rgb: list[np.ndarray], size=(H, W)) -> list[np.ndarray]:
    """The model's labels at ``size``, resized back to each frame's size (nearest, exact)."""
    from rdd.runtime import OrtBackend, preprocess, resize_labels

    be = OrtBackend(model, threads=1)
    return [resize_labels(be.infer(preprocess(im, be.meta, size))[0], im.shape[:2]) for im in rgb]


def test_save_masks_for_images_by_stem(capfd, conv_onnx, tmp_path):
    rgb = _images(tmp_path / "img", 3)
    masks, report = tmp_path / "masks", tmp_path / "r.json"
    rc, _, err = _run(
        capfd,
        [
            "--model",
            conv_onnx,
            "--images",
            tmp_path / "img",
            "--warmup",
            "0",
            "--save-masks",
            masks,
            "--report",
            report,
        ],
    )
    assert rc == 0, err
    assert sorted(p.name for p in masks.iterdir()) == ["im_00.png", "im_01.png", "im_02.png"]
    for i, want in enumerate(_expected_masks(conv_onnx, rgb)):
        got = cv2.imread(str(masks / f"im_{i:02d}.png"), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint8 and got.shape == (40, 56)
        np.testing.assert_array_equal(got, want)
    rep = json.loads(report.read_text())
    assert rep["masks"] == str(masks) and rep["masks_written"] == 3 and rep["masks_dtype"] == "uint8"
    assert "flicker" not in rep  # an image folder is not a sequence
    assert not [p for p in masks.parent.iterdir() if p.name.startswith(".")]
    rc, _, err = _run(
        capfd, ["--model", conv_onnx, "--images", tmp_path / "img", "--save-masks", tmp_path / "img" / "m"]
    )  # inside an input folder
    assert rc == 2 and len(err) == 1 and "would overwrite inside the --images folder" in err[0], err


def test_save_masks_refuses_a_non_empty_folder_and_leaves_nothing_on_error(capfd, conv_onnx, tmp_path):
    _images(tmp_path / "img", 2)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.png").write_bytes(b"x")
    rc, _, err = _run(
        capfd, ["--model", conv_onnx, "--images", tmp_path / "img", "--save-masks", tmp_path / "full"]
    )
    assert rc == 2 and len(err) == 1 and "is a folder that is not empty" in err[0], err
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.png"]
    # an error after masks were written (a label of the wrong size): no folder, no staging left
    (tmp_path / "lab").mkdir()
    cv2.imwrite(str(tmp_path / "lab" / "im_01.png"), np.zeros((5, 5), np.uint8))
    rc, _, err = _run(
        capfd,
        [
            "--model",
            conv_onnx,
            "--images",
            tmp_path / "img",
            "--labels",
            tmp_path / "lab",
            "--save-masks",
            tmp_path / "m",
        ],
    )
    assert rc == 2 and len(err) == 1, err
    assert not (tmp_path / "m").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.")]


def test_mask_writer_uint16_for_many_classes(tmp_path):
    from rdd.runtime.stream.masks import MaskWriter, mask_dtype

    assert mask_dtype(256) == np.uint8 and mask_dtype(257) == np.uint16
    lab = np.array([[0, 299], [256, 7]], np.uint16)
    with MaskWriter(tmp_path / "m", 300) as mw:
        mw.write("frame_000000", lab)
        with pytest.raises(InputError, match="two frames are named 'frame_000000'"):
            mw.write("frame_000000", lab)
    got = cv2.imread(str(tmp_path / "m" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.tolist() == lab.tolist()


# --------------------------------------------------------------------------- --images, --save-overlays
def test_images_take_one_file_or_a_glob(capfd, conv_onnx, tmp_path):
    """Issue #34: ``--images`` is a folder, one image file or a (quoted) glob; one file runs that
    frame alone, a glob the files it matches (in name order)."""
    _images(tmp_path / "img", 4)
    for spec, want in (
        (tmp_path / "img" / "im_02.png", ["im_02.png"]),
        (tmp_path / "img" / "im_0[13].png", ["im_01.png", "im_03.png"]),
        (tmp_path / "img" / "*.png", ["im_00.png", "im_01.png", "im_02.png", "im_03.png"]),
    ):
        masks, report = tmp_path / f"m{len(want)}", tmp_path / f"r{len(want)}.json"
        rc, _, err = _run(
            capfd,
            ["--model", conv_onnx, "--images", spec, "--warmup", "0"]
            + ["--save-masks", masks, "--report", report],
        )
        assert rc == 0, (spec, err)
        rep = json.loads(report.read_text())
        assert rep["frames"] == len(want) and rep["masks_written"] == len(want), (spec, rep["frames"])
        assert sorted(p.name for p in masks.iterdir()) == want, spec


def test_save_overlays_and_palette_masks_one_per_frame(capfd, conv_onnx, tmp_path):
    """``--save-overlays DIR``: one colour overlay JPEG per frame (the frame blended with the
    classes' colours, at the frame's size); ``--mask-format palette``: indexed PNGs (PIL mode
    ``P``) whose pixels are the class ids and whose palette is the classes' colours."""
    from PIL import Image

    # frames of 16×16 blocks of one colour (a JPEG keeps them within a few grey levels)
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(2)
    blocks = [rng.integers(0, 256, (H // 16, W // 16, 3), np.uint8) for _ in range(3)]
    rgb = [b.repeat(16, 0).repeat(16, 1) for b in blocks]
    for i, im in enumerate(rgb):
        cv2.imwrite(str(tmp_path / "img" / f"im_{i:02d}.png"), im[..., ::-1])
    overlays, masks, report = tmp_path / "ov", tmp_path / "pal", tmp_path / "r.json"
    rc, _, err = _run(
        capfd,
        [
            "--model",
            conv_onnx,
            "--images",
            tmp_path / "img",
            "--warmup",
            "0",
            "--save-overlays",
            overlays,
            "--save-masks",
            masks,
            "--mask-format",
            "palette",
            "--report",
            report,
        ],
    )
    assert rc == 0, err
    rep = json.loads(report.read_text())
    assert rep["overlays_written"] == 3 and rep["masks_written"] == 3
    names = ["im_00", "im_01", "im_02"]
    assert sorted(p.name for p in overlays.iterdir()) == [f"{n}.jpg" for n in names]
    assert sorted(p.name for p in masks.iterdir()) == [f"{n}.png" for n in names]
    palette = CAMVID_CLASSES.palette_array().astype(np.float32)
    for name, img, want in zip(names, rgb, _expected_masks(conv_onnx, rgb)):
        with Image.open(masks / f"{name}.png") as im:
            assert im.format == "PNG" and im.mode == "P", im.mode
            ids = np.asarray(im)
            pal = np.asarray(im.getpalette()[: 3 * 11], np.uint8).reshape(11, 3)
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_array_equal(pal, CAMVID_CLASSES.palette_array())
        ov = cv2.imread(str(overlays / f"{name}.jpg"))  # a JPEG: compared within its loss
        assert (overlays / f"{name}.jpg").read_bytes()[:2] == b"\xff\xd8" and ov.shape == (H, W, 3)
        blend = 0.5 * img.astype(np.float32) + 0.5 * palette[want]  # the default --alpha 0.5
        err_blend = np.abs(ov[..., ::-1].astype(np.float32) - blend).mean()
        err_frame = np.abs(ov[..., ::-1].astype(np.float32) - img).mean()
        assert err_blend < 6 and err_frame > 4 * err_blend, (name, err_blend, err_frame)


# --------------------------------------------------------------------------- video: flicker, --batch
@pytest.fixture(scope="module")
def clip_with_masks(tmp_path_factory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("clip")
    n = 7
    _write_clip(root / "c.mp4", n)
    (root / "gt").mkdir()
    for i in range(n):
        m = np.zeros((H, W), np.uint8)
        m[H // 2 :] = 3
        x = (6 * i) % (W - 16)
        m[10:30, x : x + 16] = 8
        m[:2] = 255  # unlabelled rows
        cv2.imwrite(str(root / "gt" / f"frame_{i:06d}.png"), m)
    return root / "c.mp4", root / "gt", n


def _flicker(seq: list[np.ndarray], valid: np.ndarray | None = None) -> float:
    """Mean share of changed pixels over consecutive pairs (on ``valid`` pixels when given)."""
    return float(
        np.mean([np.mean((a != b)[valid] if valid is not None else (a != b)) for a, b in zip(seq, seq[1:])])
    )


def test_video_report_gives_flicker_beside_the_labels(capfd, conv_onnx, clip_with_masks, tmp_path):
    clip, gt, n = clip_with_masks
    masks, report = tmp_path / "m", tmp_path / "r.json"
    rc, _, err = _run(
        capfd,
        [
            "--model",
            conv_onnx,
            "--video",
            clip,
            "--labels",
            gt,
            "--resize",
            "native",
            "--save-masks",
            masks,
            "--report",
            report,
            "--warmup",
            "0",
        ],
    )
    assert rc == 0, err
    rep = json.loads(report.read_text())
    pred = [cv2.imread(str(masks / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED) for i in range(n)]
    labels = [cv2.imread(str(gt / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED) for i in range(n)]
    both = labels[0] != 255  # rows 0-1 are unlabelled in every frame
    assert rep["flicker_pairs"] == n - 1 and rep["flicker_gt_pairs"] == n - 1
    assert rep["flicker"] == pytest.approx(_flicker(pred))
    assert rep["flicker_gt"] == pytest.approx(_flicker(labels, both)) and rep["flicker_gt"] > 0
    assert rep["flicker_at_gt"] == pytest.approx(_flicker(pred, both))
    assert rep["batch"] == 1 and "realtime" not in rep


def test_batch_matches_single_frame_results(capfd, conv_onnx, clip_with_masks, tmp_path):
    clip, _, n = clip_with_masks
    reps = {}
    for b in (1, 3):
        rc, _, err = _run(
            capfd,
            [
                "--model",
                conv_onnx,
                "--video",
                clip,
                "--batch",
                b,
                "--warmup",
                "0",
                "--save-masks",
                tmp_path / f"m{b}",
                "--report",
                tmp_path / f"r{b}.json",
            ],
        )
        assert rc == 0, err
        reps[b] = json.loads((tmp_path / f"r{b}.json").read_text())
    assert reps[3]["batch"] == 3 and reps[3]["batch_calls"] == 3  # 3 + 3 + 1 frames
    assert reps[3]["frames"] == n and set(reps[3]["batch_inference_ms"]) == {"mean", "p50", "p90", "p99"}
    assert "batch_inference_ms" not in reps[1]
    for i in range(n):
        a, b = (cv2.imread(str(tmp_path / f"m{k}" / f"frame_{i:06d}.png")) for k in (1, 3))
        np.testing.assert_array_equal(a, b)
    assert reps[3]["flicker"] == pytest.approx(reps[1]["flicker"])


def test_batch_errors(capfd, conv_onnx, clip_with_masks, tmp_path):
    clip, _, _ = clip_with_masks
    fixed = _conv_onnx(tmp_path / "fixed.onnx", batch=1)
    rc, _, err = _run(capfd, ["--model", fixed, "--video", clip, "--batch", "2"])
    assert rc == 2 and len(err) == 1 and "has a fixed batch axis" in err[0], err
    rc, _, err = _run(capfd, ["--model", conv_onnx, "--video", clip, "--batch", "2", "--realtime"])
    assert rc == 2 and len(err) == 1 and "--batch applies to --images and video files" in err[0]
    rc, _, err = _run(capfd, ["--model", conv_onnx, "--video", clip, "--batch", "0"])
    assert rc == 2 and err == ["error: --batch must be >= 1, got 0"]


# --------------------------------------------------------------------------- --realtime
class _SlowBackend:
    """Wraps a backend; every inference call takes at least ``delay_s``."""

    def __init__(self, inner, delay_s: float) -> None:
        self._inner, self.delay_s = inner, delay_s
        self.meta, self.path, self.name, self.device = inner.meta, inner.path, "slow", "cpu"

    def infer(self, x):
        time.sleep(self.delay_s)
        return self._inner.infer(x)

    def describe(self):
        return {"backend": self.name, "device": self.device, "model": self.meta.model}


def test_realtime_paced_file_drops_frames_when_inference_is_slow(conv_onnx, tmp_path):
    """20 fps arrivals and ≥120 ms inference: latest-frame-wins must drop frames and every
    processed frame misses its 50 ms deadline."""
    from rdd.runtime import OrtBackend, Pipeline, PipelineConfig, VideoSource

    clip = _write_clip(tmp_path / "c.mp4", 12, fps=20.0)
    be = _SlowBackend(OrtBackend(conv_onnx, threads=1), 0.12)
    rep = Pipeline(be, VideoSource(clip), config=PipelineConfig(warmup=0, realtime=True)).run()
    rt = rep["realtime"]
    assert rt["mode"] == "paced_file" and rt["fps"] == pytest.approx(20.0) and rt["fps_from"] == "source"
    assert rt["frames_read"] == 12 and rt["dropped_frames"] >= 1
    assert rep["frames"] + rt["dropped_frames"] == 12
    assert rt["deadline_misses"] == rep["measured_frames"] and rt["deadline_ms"] == pytest.approx(50)
    assert rt["output_interval_ms"]["mean"] >= 100  # outputs no faster than inference allows
    assert rep["wall_s"] >= 11 / 20  # paced: the last frame arrives 0.55 s after the first


def test_realtime_cli_on_images_uses_fps(capfd, conv_onnx, tmp_path):
    _images(tmp_path / "img", 4)
    report = tmp_path / "r.json"
    rc, _, err = _run(
        capfd,
        [
            "--model",
            conv_onnx,
            "--images",
            tmp_path / "img",
            "--realtime",
            "--fps",
            "50",
            "--warmup",
            "0",
            "--report",
            report,
        ],
    )
    assert rc == 0, err
    rt = json.loads(report.read_text())["realtime"]
    assert rt["fps"] == 50 and rt["fps_from"] == "--fps" and rt["frames_read"] == 4
    assert set(rt["jitter_ms"]) == {"std", "p99"}


def test_help_documents_io_flags():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "rdd.runtime", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for flag in (
        "--save-masks",
        "--batch",
        "--realtime",
        "--reconnect",
        "--stream-timeout",
        "rtsp://",
        "/dev/video0",
        "latest-frame-wins",
        "frame_%06d.png",
    ):
        assert flag in text, flag


def test_help_has_examples_and_no_default_none():
    """Issue #34: ``rdd-infer --help`` shows a default only where there is one (never
    ``(default: None)``) and ends with the examples, one command a line."""
    from rdd.runtime.cli import build_parser

    text = build_parser().format_help()
    assert "(default: None)" not in text and "default: None" not in text
    assert "(default: 0.5)" in " ".join(text.split())  # --alpha: a real default is shown
    examples = text.split("\nexamples:\n", 1)[1].splitlines()
    assert len(examples) >= 3 and all(ln.startswith("  rdd-infer --model ") for ln in examples[:3]), examples
    assert "exit codes:" in text


def test_report_names_the_version_the_model_hash_and_the_startup_times(capfd, conv_onnx, tmp_path):
    """Issue #34: a report says which rdd-edge ran (``rdd_edge``), on which model file
    (``model_sha256``) and what starting took: ``load_ms`` (opening the model, compiling
    included), ``compile_ms`` (the compile step alone: OpenVINO's; ``null`` for onnxruntime,
    which has none) and ``first_inference_ms``."""
    import hashlib
    import importlib.metadata
    import importlib.util
    import math

    _images(tmp_path / "img", 2)
    sha = hashlib.sha256(conv_onnx.read_bytes()).hexdigest()
    backends = ["ort"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    for backend in backends:
        report = tmp_path / f"{backend}.json"
        rc, _, err = _run(
            capfd,
            [
                "--model",
                conv_onnx,
                "--backend",
                backend,
                "--images",
                tmp_path / "img",
                "--warmup",
                "0",
                "--report",
                report,
            ],
        )
        assert rc == 0, err
        rep = json.loads(report.read_text())
        assert rep["rdd_edge"] == importlib.metadata.version("rdd-edge"), rep["rdd_edge"]
        assert rep["model_sha256"] == sha
        for key in ("load_ms", "first_inference_ms") + (("compile_ms",) if backend == "openvino" else ()):
            v = rep[key]
            assert isinstance(v, float) and math.isfinite(v) and v > 0, (backend, key, v)
        if backend == "ort":
            assert rep["compile_ms"] is None
        else:
            assert rep["compile_ms"] <= rep["load_ms"], rep


def test_batch_splits_at_a_change_of_input_size(conv_onnx, tmp_path):
    """--resize native on images of two sizes: a batch never mixes sizes (a, b | c | d)."""
    from rdd.runtime import ImageFolderSource, OrtBackend, Pipeline, PipelineConfig

    (tmp_path / "img").mkdir()
    for name, hw in (("a", (40, 56)), ("b", (40, 56)), ("c", (30, 40)), ("d", (40, 56))):
        cv2.imwrite(str(tmp_path / "img" / f"{name}.png"), np.full((*hw, 3), 90, np.uint8))
    cfg = PipelineConfig(warmup=0, batch=3, resize="native", save_masks=tmp_path / "m")
    rep = Pipeline(OrtBackend(conv_onnx, threads=1), ImageFolderSource(tmp_path / "img"), config=cfg).run()
    assert rep["frames"] == 4 and rep["batch_calls"] == 3 and rep["masks_written"] == 4
    assert cv2.imread(str(tmp_path / "m" / "c.png"), cv2.IMREAD_UNCHANGED).shape == (30, 40)


def test_summary_line_names_batch_realtime_and_flicker():
    from rdd.runtime.stream.summary import stream_summary

    rep = {
        "batch": 4,
        "realtime": {"fps": 30.0, "dropped_frames": 3, "frames_read": 120, "deadline_misses": 7},
        "flicker": 0.012,
        "flicker_gt": 0.009,
    }
    assert stream_summary(rep) == (
        ", batch 4, real time @ 30 fps: 3/120 dropped, 7 deadline misses, flicker 1.20% (labels 0.90%)"
    )
    assert stream_summary({"batch": 1, "flicker": None}) == ""


def test_an_existing_file_wins_over_url_or_pipeline_parsing(tmp_path, monkeypatch):
    odd = _write_clip(tmp_path / "a ! b.mp4", 2)
    monkeypatch.chdir(tmp_path)
    src = open_source(video="a ! b.mp4")
    try:
        assert src.kind == "video" and len(src) == 2
    finally:
        src.close()
    assert odd.exists()


def test_interrupt_ends_a_reconnect_wait():
    """Stopping the run (Ctrl-C) while a dropped stream waits to reconnect ends the wait."""
    with _MjpegServer(frames=2) as srv:
        src = StreamSource(srv.url, reconnect=5, timeout_s=2)  # 0.5+1+2+4+5 s of backoff
        names: list[str] = []
        t = threading.Thread(target=lambda: names.extend(n for n, _ in src), daemon=True)
        t.start()
        deadline = time.monotonic() + 5
        while len(names) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        src.interrupt()
        t.join(timeout=4)
        src.close()
    assert not t.is_alive() and names == ["frame_000000", "frame_000001"]
    assert src.end_reason is None and src.reconnects == 0


def test_library_errors_name_keys_and_the_command_line_spells_flags():
    """Issue #31: an option's error names its key in the library (``rdd.Segmenter`` users have no
    flags) and its flag on the command line (``one_line``), user text with braces kept as is."""
    from rdd.runtime.errors import OptionError, one_line
    from rdd.runtime.runner import open_source
    from rdd.runtime.stream.transforms import parse_resize

    with pytest.raises(OptionError) as e:
        open_source()
    assert str(e.value) == "video, camera or images: give exactly one input, got none"
    assert one_line(e.value) == "--video, --camera or --images: give exactly one input, got none"
    with pytest.raises(OptionError) as e:
        parse_resize("{bad}")
    assert str(e.value).startswith("resize must be") and "'{bad}'" in str(e.value)
    assert one_line(e.value).startswith("--resize must be") and "'{bad}'" in one_line(e.value)


def test_run_figures_memory_is_bounded_and_means_stay_exact():
    """Issue #33: a run's per-frame figures do not grow with the input. Up to the cap every
    measured frame is kept (the statistics are those of all frames); past it the percentiles come
    from a uniform sample of ``cap`` frames while means, counts and FPS stay exact."""
    from rdd.runtime.stream.figures import FIELDS, STAGES, STEPS, RunFigures
    from rdd.runtime.stream.pacing import Batcher
    from rdd.runtime.timing import latency_stats

    def feed(figs, n):
        rng = np.random.default_rng(0)
        done, lat, t = [], [], 0.0
        for _ in range(n):
            times = {f: float(v) for f, v in zip(FIELDS[:-2], rng.uniform(0.001, 0.01, len(FIELDS) - 2))}
            t += float(rng.uniform(0.02, 0.04))
            latency = float(rng.uniform(0.01, 0.05))
            figs.frame_done(times, t - latency, t)
            done.append(t)
            lat.append(latency)
        return np.array(done), np.array(lat)

    small = RunFigures(3)
    done, lat = feed(small, 40)
    rep = small.timing(3)
    exact = latency_stats(1e3 * lat[3:])
    assert rep["latency_ms"] == pytest.approx(exact) and rep["percentiles_from"] is None
    assert rep["fps"] == pytest.approx(37 / (done[-1] - done[2]))
    intervals = small.measured("interval", 3)[0]
    np.testing.assert_allclose(intervals, np.diff(done[3:]))  # within the measured frames only
    assert len(small.measured("interval", 0)[0]) == 39  # warm-up not applied: every interval
    big = RunFigures(3, cap=50)
    done, lat = feed(big, 5000)
    rep = big.timing(3)
    assert rep["measured_frames"] == 4997 and rep["percentiles_from"] == 50
    assert all(len(r.values()) == 50 for r in big._tail.values())  # bounded
    assert rep["latency_ms"]["mean"] == pytest.approx(1e3 * lat[3:].mean())  # exact
    assert rep["stage_ms"]["inference"] > 0 and set(rep["stages_ms"]) == set(STAGES)
    assert set(rep["stage_ms"]) == set(STEPS)
    assert rep["latency_ms"]["p50"] == pytest.approx(1e3 * np.median(lat[3:]), rel=0.25)  # a sample
    assert rep["fps"] == pytest.approx(4997 / (done[-1] - done[2]))
    # the batcher: calls of warm-up frames apart, the rest bounded, the count exact
    b = Batcher(2, warmup=4)
    for k in range(1000):
        b.record(0.001 * (k + 1), 2)
    r = b.report(4)
    assert r["batch_calls"] == 1000 and b.first_call_s == 0.001
    assert r["batch_inference_ms"]["mean"] == pytest.approx(np.mean(np.arange(3, 1001)))  # 2 calls left out


def test_hints_in_library_errors_name_keys_and_flags_on_the_command_line(tmp_path):
    """Issue #31: an error about something else that hints at an option names the option's key
    in the library and its flag on the command line (one translation, ``one_line``)."""
    from rdd.runtime.errors import OptionError, one_line
    from rdd.runtime.measure.score import check_labels
    from rdd.runtime.stream.sources import image_files

    with pytest.raises(OptionError) as e:
        check_labels(np.array([[0, 7]], np.uint8), 3, 255)
    assert str(e.value).endswith("map them to ignore (label_map / ignore_ids)")
    assert one_line(e.value).endswith("map them to ignore (--label-map / --ignore-ids)")
    clip = tmp_path / "clip{1}.mp4"
    clip.write_bytes(b"x")
    with pytest.raises(OptionError) as e:
        image_files(clip)
    assert "clip{1}.mp4 is not an image file" in one_line(e.value)
    assert one_line(e.value).startswith("--images ") and one_line(e.value).endswith("videos go to --video")
