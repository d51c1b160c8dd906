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
from rdd.runtime.sources import (StreamSource, is_gstreamer_pipeline, parse_camera, redact_url,
                                 stream_scheme)
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
    g = helper.make_graph([helper.make_node("Conv", ["image", "w", "b"], ["logits"])], "g", [x], [y],
                          initializer=[wgt, bias])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    classes = CAMVID_CLASSES if k == 11 else None
    meta = {"format": "rdd-edge/1", "model": "conv1x1", "input_name": "image",
            "input_layout": "NCHW", "input_dtype": "float32", "output_name": "logits",
            "output_kind": "logits", "normalization": Normalization().to_dict(),
            "classes": (classes.to_dict() if classes else
                        {"names": [f"c{i}" for i in range(k)], "ignore_index": 65535}),
            "input_size": [H, W], "dynamic_batch": batch == "N", "dynamic_spatial": True}
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
    img[H // 2:] = (200, 60, 30)
    x = (6 * i) % (W - 16)
    img[10:30, x:x + 16] = (250, 250, 250)
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
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(owner.delay_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    def __enter__(self) -> "_MjpegServer":
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
    with pytest.raises(InputError, match="--camera index must be >= 0"):
        parse_camera("-1")


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
    rc, out, err = _run(capfd, ["--model", conv_onnx, "--video", "rtsp://127.0.0.1:1/x",
                                "--report", tmp_path / "r.json"])
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
        rc, _, err = _run(capfd, ["--model", conv_onnx, "--stream-timeout", "1",
                                  "--video", f"http://127.0.0.1:{s.getsockname()[1]}/x"])
        took = time.monotonic() - t0
    assert rc == 2 and len(err) == 1 and "no answer within 1 s" in err[0], err
    assert took < 8


def test_camera_device_path_errors(capfd, conv_onnx):
    rc, _, err = _run(capfd, ["--model", conv_onnx, "--camera", "/dev/no_such_video9"])
    assert rc == 2 and err == ["error: camera device not found: /dev/no_such_video9"]


def test_http_mjpeg_stream_runs(capfd, conv_onnx, tmp_path):
    report = tmp_path / "r.json"
    with _MjpegServer(frames=30) as srv:
        rc, out, err = _run(capfd, ["--model", conv_onnx, "--video", srv.url, "--max-frames", "6",
                                    "--warmup", "1", "--report", report])
    assert rc == 0, err
    rep = json.loads(report.read_text())
    assert rep["frames"] == 6 and rep["frame_size"] == [H, W]
    assert rep["source"]["kind"] == "stream" and rep["source"]["live"] is True
    assert rep["source"]["url"] == srv.url and rep["source"]["scheme"] == "http"
    assert rep.get("stop_reason") != "stream_ended"
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("reconnect, served, frames", [(0, 1, 5), (1, 2, 10)])
def test_stream_that_drops_ends_with_report_and_exit_2(capfd, conv_onnx, tmp_path, reconnect,
                                                       served, frames):
    """The server closes after 5 frames; with --reconnect 1 it serves a second connection, then
    404s: the run ends 'stream_ended', exit code 2, one error line, a report of what was read."""
    report = tmp_path / "r.json"
    with _MjpegServer(frames=5, connections=2) as srv:
        rc, out, err = _run(capfd, ["--model", conv_onnx, "--video", srv.url, "--warmup", "0",
                                    "--reconnect", reconnect, "--report", report])
        assert srv.served == served
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: stream http://127.0.0.1:"), err
    assert f"after {frames} frames" in err[0] and f"--reconnect {reconnect}" in err[0]
    assert str(report) in err[0]
    rep = json.loads(report.read_text())
    assert rep["frames"] == frames and rep["completed"] is False
    assert rep["stop_reason"] == "stream_ended" and rep["stream_error"] in err[0]
    assert rep["source"]["reconnects"] == reconnect
    assert len(out.strip().splitlines()) == 1  # the summary of what was processed


def test_file_url_is_a_finite_stream(capfd, conv_onnx, tmp_path):
    clip = _write_clip(tmp_path / "c.mp4", 5)
    report = tmp_path / "r.json"
    rc, _, err = _run(capfd, ["--model", conv_onnx, "--video", clip.as_uri(), "--warmup", "0",
                              "--report", report])
    assert rc == 0, err
    rep = json.loads(report.read_text())
    assert rep["frames"] == 5 and rep["source"]["live"] is False and rep["source"]["scheme"] == "file"
    src = StreamSource(clip.as_uri())
    try:
        assert len(src) == 5 and src.fps == pytest.approx(10.0)
    finally:
        src.close()
