"""rdd.runtime.stream.live: the ``--serve`` live view (MJPEG stream + figures page), issue #34 point 3.

HTTP tests with http.client / urllib / raw sockets, and one real headless-browser test: Debian's
Chromium driven through the DevTools protocol over a websocket (a minimal stdlib client below).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from rdd.runtime.stream.live import BOUNDARY, LiveView

H, W = 360, 480


def solid(rgb, h=H, w=W) -> np.ndarray:
    return np.full((h, w, 3), rgb, np.uint8)


@pytest.fixture
def live():
    view = LiveView(port=0)
    view.start()
    yield view
    view.close()


def get(view: LiveView, path: str) -> tuple[int, dict[str, str], bytes]:
    host, port = urlsplit(view.url).hostname, urlsplit(view.url).port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class Stream:
    """A /stream.mjpg viewer that parses the multipart body strictly."""

    def __init__(self, view: LiveView, timeout: float = 10.0):
        u = urlsplit(view.url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        self.conn.request("GET", "/stream.mjpg")
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        if self.status == 200:
            assert self.resp.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
            assert self.resp.fp.readline() == f"--{BOUNDARY}\r\n".encode()

    def part(self) -> np.ndarray:
        """The next part, decoded to RGB; checks its headers and the boundary after it."""
        f, headers = self.resp.fp, {}
        while (line := f.readline()) != b"\r\n":
            assert line.endswith(b"\r\n"), line
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        assert headers["content-type"] == "image/jpeg"
        jpeg = f.read(int(headers["content-length"]))
        assert f.readline() == b"\r\n" and f.readline() == f"--{BOUNDARY}\r\n".encode()
        bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert bgr is not None and bgr.shape[2] == 3
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.resp.close()  # the response holds the socket open too
        self.conn.close()


def stalled_viewer(view: LiveView) -> socket.socket:
    """A raw /stream.mjpg client with a tiny receive buffer that is never read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect((urlsplit(view.url).hostname, urlsplit(view.url).port))
    s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    return s


def blocked_in_sendall() -> bool:
    """Whether some viewer thread of the live view is blocked writing to its socket."""
    frames = sys._current_frames()
    return any(
        t.name == "rdd-live-viewer"
        and t.ident in frames
        and "sendall" in "".join(traceback.format_stack(frames[t.ident])[-2:])
        for t in threading.enumerate()
    )


def wait_until(cond, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if v := cond():
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------------------------------------
def test_page_and_stats(live):
    status, headers, body = get(live, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert '<img id="stream" src="/stream.mjpg"' in page and "/stats.json" in page
    assert "waiting for the first frame" in page and "rdd-edge live" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no external assets

    status, headers, body = get(live, "/stats.json")
    assert (status, headers["x-frame"], json.loads(body)) == (200, "0", {})
    assert get(live, "/snapshot.jpg")[0] == 503  # no frame yet

    live.publish(
        solid((10, 20, 30)),
        {
            "frames": np.int64(7),
            "fps": float("nan"),
            "dropped": 2,
            "miou": np.float32(0.5),
            "latency_ms": {"p50": 3.5, "p99": float("inf")},
            "stop_reason": None,
            "completed": False,
        },
    )
    status, headers, body = get(live, "/stats.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["x-frame"] == "1"
    stats = json.loads(body, parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))
    assert stats == {
        "frames": 7,
        "fps": None,
        "dropped": 2,
        "miou": 0.5,
        "latency_ms": {"p50": 3.5, "p99": None},
        "stop_reason": None,
        "completed": False,
    }

    status, headers, body = get(live, "/snapshot.jpg?x=1")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert img.shape == (H, W, 3) and np.abs(img.astype(int) - (10, 20, 30)).max() <= 4


def test_404_and_no_files(live):
    for path in (
        "/nope",
        "/stream.mjpg/x",
        "/../../etc/passwd",
        "/rdd/runtime/live.py",
        "/index.html/..",
        "//etc/passwd",
    ):
        status, _, body = get(live, path)
        assert status == 404, path
        assert body == b"not found\n"
    status, _, body = get(live, "/?file=/etc/passwd")  # query string ignored
    assert status == 200 and b"root:" not in body


def test_mjpeg_parts_decode_to_published_frames(live):
    rng = np.random.default_rng(0)
    first = cv2.resize(
        rng.integers(0, 256, (9, 12, 3), np.uint8), (W, H), interpolation=cv2.INTER_LINEAR
    )  # smooth: JPEG-friendly
    live.publish(first, {"frames": 1})
    s = Stream(live)
    try:
        got = s.part()
        assert got.shape == first.shape
        assert np.abs(got.astype(int) - first).mean() < 3.0
        live.publish(solid((200, 30, 90)), {"frames": 2})
        got = s.part()
        assert np.abs(got.astype(int) - (200, 30, 90)).max() <= 6
    finally:
        s.close()


def test_intermediate_frames_skipped_newest_delivered(live):
    live.publish(solid(0), {})
    s = Stream(live)
    try:
        assert s.part().mean() < 3
        for i in range(1, 101):  # far faster than encoding
            live.publish(solid(2 * i + 40), {"frames": i})
        seen = [round((s.part().mean() - 40) / 2)]
        while seen[-1] != 100:
            seen.append(round((s.part().mean() - 40) / 2))
        assert seen == sorted(seen) and len(seen) < 100  # in order, skipping
    finally:
        s.close()


def test_several_viewers(live):
    live.publish(solid((0, 0, 0)), {})
    viewers = [Stream(live) for _ in range(4)]
    try:
        assert all(v.status == 200 for v in viewers)
        for v in viewers:
            assert v.part().max() <= 4
        colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250)]
        for c in colours:
            live.publish(solid(c), {})
            for v in viewers:  # each sees the new frame
                while np.abs(v.part().astype(int) - c).max() > 8:
                    pass
    finally:
        for v in viewers:
            v.close()


def test_stalled_viewer_never_slows_publish():
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (H, W, 3), np.uint8) for _ in range(4)]  # ~250 kB JPEGs
    with LiveView(port=0, jpeg_quality=95) as view:
        view.publish(noise[0], {})
        stalled = stalled_viewer(view)
        fast = Stream(view)
        try:
            for i in range(30):  # fill the stalled viewer's socket buffers: its write blocks
                view.publish(noise[i % 4], {"frames": i})
                time.sleep(0.01)
            wait_until(lambda: blocked_in_sendall(), what="a viewer thread blocked in sendall")
            t0 = time.perf_counter()
            for i in range(200):
                view.publish(noise[i % 4], {"frames": i, "fps": 30.0})
            elapsed = time.perf_counter() - t0
            assert elapsed < 0.5, f"200 publishes took {elapsed:.3f} s"
            view.publish(solid((0, 255, 0)), {"frames": 200})  # the fast viewer gets it
            deadline = time.monotonic() + 10
            while np.abs(fast.part().astype(int) - (0, 255, 0)).max() > 8:
                assert time.monotonic() < deadline
            t0 = time.perf_counter()
        finally:
            fast.close()
        # leaving the block closes the view with the stalled write still pending
    assert time.perf_counter() - t0 < 3.0
    stalled.settimeout(5)
    try:  # the server shut the stalled connection down
        while stalled.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass
    stalled.close()


def test_max_viewers_503():
    with LiveView(port=0, max_viewers=2) as view:
        view.publish(solid(1), {})
        a, b = Stream(view), Stream(view)
        assert (a.status, b.status) == (200, 200)
        c = Stream(view)
        assert c.status == 503 and c.resp.read() == b"too many viewers\n"
        assert get(view, "/stats.json")[0] == 200  # others still served
        a.close()

        def reconnect():  # the freed slot is noticed at the next write to `a`
            view.publish(solid(2), {})
            d = Stream(view)
            if d.status == 200:
                return d
            d.close()

        wait_until(reconnect, what="a freed viewer slot").close()
        b.close()
        c.close()


def test_close_ends_every_thread():
    before = set(threading.enumerate())
    view = LiveView(port=0)
    view.start()
    view.publish(solid(9), {"frames": 1})
    s1, s2 = Stream(view), Stream(view)
    s1.part()
    stalled = stalled_viewer(view)
    idle = socket.create_connection((urlsplit(view.url).hostname, urlsplit(view.url).port))
    for i in range(10):
        view.publish(np.random.default_rng(i).integers(0, 256, (H, W, 3), np.uint8), {})
    wait_until(lambda: view._viewers == 3, what="three streams")
    assert len(set(threading.enumerate()) - before) >= 5  # server + 4 connections
    t0 = time.perf_counter()
    view.close()
    assert time.perf_counter() - t0 < 3.0
    assert set(threading.enumerate()) - before == set()
    view.close()  # idempotent
    view.publish(solid(1), {})  # a no-op once closed
    for sock in (s1, s2):
        sock.close()
    stalled.close()
    idle.close()
    with pytest.raises(OSError):  # no longer listening
        socket.create_connection(("127.0.0.1", urlsplit(view.url).port), timeout=2)


def test_disconnected_viewer_ends_quietly(live, caplog):
    live.publish(solid(5), {})
    s = Stream(live)
    s.part()
    wait_until(lambda: live._viewers == 1, what="one stream")
    s.close()
    for i in range(20):
        live.publish(solid(i), {})
        if live._viewers == 0:
            break
        time.sleep(0.05)
    assert live._viewers == 0
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_start_errors_are_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as e:
            LiveView("127.0.0.1", port).start()
        assert "\n" not in str(e.value) and f"127.0.0.1:{port}" in str(e.value)
    with pytest.raises(OSError) as e:
        LiveView("no-such-host.invalid", 8080).start()
    assert "\n" not in str(e.value) and "no-such-host.invalid:8080" in str(e.value)
    for host, port in (("127.0.0.1", 70000), ("127.0.0.1", -1), ("", 8080)):
        with pytest.raises(ValueError) as e:
            LiveView(host, port)
        assert "\n" not in str(e.value) and f"{port}" in str(e.value)
    with LiveView(port=0) as view:
        with pytest.raises(ValueError, match="uint8"):
            view.publish(np.zeros((4, 4, 3), np.float32), {})
        with pytest.raises(ValueError, match="H×W×3"):
            view.publish(np.zeros((4, 4), np.uint8), {})
        with pytest.raises(ValueError):
            view.publish(np.zeros((0, 4, 3), np.uint8), {})
    with pytest.raises(RuntimeError):
        _ = LiveView(port=0).url  # not started


# --- a real browser --------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1000,700",
    "--remote-debugging-port=0",
]


class DevTools:
    """Chrome DevTools protocol over a minimal RFC 6455 websocket client (text frames only)."""

    def __init__(self, ws_url: str, timeout: float = 20.0):
        u = urlsplit(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.f = self.sock.makefile("rb")
        assert b" 101 " in self.f.readline()
        while self.f.readline() not in (b"\r\n", b""):
            pass
        self.last_id = 0

    def _send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        size = bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + struct.pack(">H", n))
        masked = np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)
        self.sock.sendall(b"\x81" + size + mask + masked.tobytes())

    def _recv(self) -> dict:
        chunks = []
        while True:
            b0, b1 = self.f.read(2)
            n = b1 & 0x7F
            if n >= 126:
                n = struct.unpack(">H" if n == 126 else ">Q", self.f.read(2 if n == 126 else 8))[0]
            payload = self.f.read(n)  # frames from the server are not masked
            if b0 & 0x0F == 0x8:
                raise EOFError("DevTools closed the websocket")
            chunks.append(payload)
            if b0 & 0x80:
                return json.loads(b"".join(chunks))

    def call(self, method: str, **params):
        self.last_id += 1
        self._send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while (msg := self._recv()).get("id") != self.last_id:  # skip events
            pass
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg["result"]

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")

    def screenshot(self) -> np.ndarray:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def browser(tmp_path: Path):
    exe = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if exe is None:
        if not os.environ.get("CI"):
            pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); CI fails instead")
        pytest.fail(f"{CHROMIUM} not installed: .ci/run installs it (apt-get install chromium)")
    profile = tmp_path / "profile"
    log = open(tmp_path / "chromium.log", "wb")
    proc = subprocess.Popen(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    devtools = None
    try:
        port_file = profile / "DevToolsActivePort"
        wait_until(
            lambda: port_file.exists() and port_file.read_text().strip() or proc.poll(),
            timeout=60,
            what="Chromium's DevTools port",
        )
        assert proc.poll() is None, (tmp_path / "chromium.log").read_text()[-2000:]
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        devtools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield devtools
    finally:
        if devtools is not None:
            devtools.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def colour_fraction(shot: np.ndarray, rect: dict, rgb, tol: int = 40) -> float:
    """Share of the <img>'s on-screen area whose pixels are within ``tol`` of ``rgb``."""
    x, y = int(rect["x"]), int(rect["y"])
    crop = shot[y : y + int(rect["height"]), x : x + int(rect["width"])].astype(int)
    assert crop.size, rect
    return float((np.abs(crop - rgb).max(axis=2) <= tol).mean())


def test_browser_shows_stream_and_live_figures(browser):
    magenta, green = (230, 20, 230), (20, 210, 40)
    colour, stop = [magenta], threading.Event()

    def publisher(view: LiveView) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            frame = solid((70, 70, 70))
            frame[H // 10 : H - H // 10, W // 10 : W - W // 10] = colour[0]  # 64 % of the image
            view.publish(
                frame,
                {
                    "frames": i,
                    "fps": 25.0 + i % 3,
                    "dropped": i // 10,
                    "latency_ms": {"p50": 12.5, "p99": 30.0 + i % 5},
                    "miou": 0.5 + (i % 100) / 1000,
                    "completed": False,
                },
            )
            time.sleep(0.04)

    text = "document.getElementById('{}').textContent".format
    with LiveView(port=0) as view:
        browser.call("Page.navigate", url=view.url)
        wait_until(lambda: browser.eval(text("status")) == "waiting", what="the page's first poll")
        assert browser.eval("!document.getElementById('wait').hidden")
        assert browser.eval(text("wait")) == "waiting for the first frame"

        pub = threading.Thread(target=publisher, args=(view,), daemon=True)
        pub.start()
        try:
            wait_until(
                lambda: browser.eval("document.getElementById('stream').naturalWidth") == W,
                what="the first MJPEG frame in the <img>",
            )
            wait_until(lambda: browser.eval(text("status")) == "running", what="status running")
            assert browser.eval("document.getElementById('wait').hidden")
            rect = browser.eval(
                "JSON.parse(JSON.stringify(document.getElementById('stream').getBoundingClientRect()))"
            )
            assert (rect["width"], rect["height"]) == (W, H)
            # (a) the overlay is on screen
            assert colour_fraction(browser.screenshot(), rect, magenta) > 0.5
            # (b) the figures update by themselves
            n1 = int(browser.eval(text("frames")))
            time.sleep(1.2)
            n2 = int(browser.eval(text("frames")))
            assert n2 > n1
            assert re.fullmatch(r"\d+\.\d{2} %", browser.eval(text("miou")))
            assert re.fullmatch(r"\d+\.\d ms", browser.eval(text("p99")))
            assert re.fullmatch(r"2[5-7]\.0", browser.eval(text("fps")))
            # the picture is live too: a new overlay colour reaches the screen
            colour[0] = green
            wait_until(
                lambda: colour_fraction(browser.screenshot(), rect, green) > 0.5,
                what="the green overlay on screen",
            )
        finally:
            stop.set()
            pub.join()
        view.publish(solid(0), {"frames": 999, "completed": True})
        wait_until(lambda: browser.eval(text("status")) == "completed", what="status completed")
        assert browser.eval(text("frames")) == "999"


def test_rdd_infer_serve_publishes_the_run(tmp_path):
    """``rdd-infer --serve HOST:PORT``: while the run goes, the page's figures count frames and
    the snapshot is the overlay; the server is gone when the run ends."""
    repo = Path(__file__).resolve().parents[1]
    model = repo / "studies" / "camvid_converged" / "models" / "rdd_16x-s0.onnx"
    if not model.is_file():
        pytest.skip("the committed study models are not in this checkout")
    clip = tmp_path / "c.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (240, 180))
    for i in range(40):
        w.write(np.full((180, 240, 3), (i * 5) % 255, np.uint8))
    w.release()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rdd.runtime",
            "--model",
            str(model),
            "--video",
            str(clip),
            "--realtime",
            "--fps",
            "10",
            "--serve",
            "127.0.0.1:0",
            "--no-progress",
        ],
        cwd=repo,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        assert line.startswith("live view: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        seen = []
        for _ in range(40):
            time.sleep(0.25)
            with urllib.request.urlopen(url + "stats.json", timeout=5) as r:
                seen.append(json.loads(r.read())["frames"] or 0)
            if seen[-1] >= 5:
                break
        assert seen[-1] >= 5 and seen[-1] > seen[0]
        with urllib.request.urlopen(url + "snapshot.jpg", timeout=5) as r:
            img = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (180, 240, 3)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
