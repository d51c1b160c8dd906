"""Live view of a running pipeline for headless devices: MJPEG stream + figures page (``--serve``).

Like jetson-inference's ``webrtc://`` output, with the standard library's
:class:`http.server.ThreadingHTTPServer` only (numpy + OpenCV + stdlib, no other imports)::

    with LiveView("127.0.0.1", 8080) as live:      # port 0: an ephemeral port
        print("live view at", live.url)
        for overlay_rgb, stats in pipeline:
            live.publish(overlay_rgb, stats)       # O(1), never waits for a viewer

Endpoints (GET; anything else is 404, a query string is ignored, nothing is read from disk):

``/``              HTML page: ``<img src="/stream.mjpg">`` and a figures panel (ids ``frames``,
                   ``fps``, ``p50``, ``p99``, ``dropped``, ``miou``, ``status``) refreshed by
                   ``fetch('/stats.json')`` every 500 ms; inline CSS/JS, works offline; shows
                   "waiting for the first frame" until one is published.
``/stream.mjpg``   ``multipart/x-mixed-replace; boundary=rddframe``: the body opens with
                   ``--rddframe\\r\\n``, then per frame ``Content-Type: image/jpeg\\r\\n``
                   ``Content-Length: N\\r\\n\\r\\n`` + N JPEG bytes + ``\\r\\n--rddframe\\r\\n``
                   (the closing boundary is sent at once, so browsers show a frame without
                   waiting for the next one). Over ``max_viewers`` concurrent streams: 503.
``/stats.json``    the latest stats dict (numbers finite or ``null``); header ``X-Frame`` is the
                   sequence number of the latest frame (0: none yet).
``/snapshot.jpg``  the latest frame as one JPEG (503 before the first frame).

Viewer isolation: :meth:`LiveView.publish` only swaps a reference to (a copy of) the newest frame
and bumps a sequence number under a condition variable. Each stream has its own thread that
waits for a sequence number newer than the one it last sent, takes the newest (frames published
meanwhile are skipped), and writes it to its socket; a slow or stalled socket blocks only that
thread (and is dropped after ``SEND_TIMEOUT_S``). JPEG encoding runs in viewer threads, once per
sequence number, cached and shared by every viewer. A viewer that disconnects ends its thread
quietly; :meth:`LiveView.close` shuts every connection down, so blocked writes return, and joins
every thread.

Security: binds 127.0.0.1 by default (reach it from another machine through ``ssh -L``).
``host="0.0.0.0"`` exposes the stream and figures, unauthenticated and unencrypted, to every
machine that can reach the device.
"""

from __future__ import annotations

import html
import json
import logging
import math
import socket
import socketserver
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

__all__ = ["LiveView"]

log = logging.getLogger(__name__)

BOUNDARY = "rddframe"
REQUEST_TIMEOUT_S = 10.0  # to send a request line and headers
SEND_TIMEOUT_S = 30.0  # a stream whose socket accepts nothing for this long is dropped
KEEPALIVE_S = 5.0  # re-send the latest frame when none is new (detects gone viewers)


def _jsonable(v: Any) -> Any:
    """``v`` as JSON values: numpy scalars/arrays to Python, NaN/inf to ``None``, others to str."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return str(v)


class LiveView:
    """HTTP live view: ``start()``, then ``publish()`` per frame from the pipeline, ``close()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        jpeg_quality: int = 80,
        max_viewers: int = 8,
        title: str = "rdd-edge live",
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"live view: bad host {host!r}:{port} (use 0.0.0.0 for all interfaces)")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"live view: bad port in {host}:{port!r} (0-65535; 0 = any free port)")
        if not 0 <= jpeg_quality <= 100 or max_viewers < 1:
            raise ValueError(
                f"live view: jpeg_quality {jpeg_quality} (0-100), max_viewers {max_viewers} (>= 1)"
            )
        self.host, self.port = host, port
        self.jpeg_quality, self.max_viewers, self.title = jpeg_quality, max_viewers, title
        self._cond = threading.Condition()  # guards _seq, _frame, _stats, _closed, _viewers
        self._seq = 0
        self._frame: np.ndarray | None = None
        self._stats: dict[str, Any] = {}
        self._viewers = 0
        self._closed = False
        self._enc_lock = threading.Lock()  # one encoder at a time; guards _jpeg
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None
        self._page = _PAGE.replace("$TITLE", html.escape(title)).encode()

    # -- pipeline side ------------------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        """Bind and serve in a background thread; returns the bound ``(host, port)``."""
        if self._closed:
            raise RuntimeError("live view: closed")
        if self._server is not None:
            return self._address
        try:
            self._server = _Server(self, (self.host, self.port))
        except OSError as e:
            err = OSError(f"live view: cannot serve on {self.host}:{self.port}: {e.strerror or e}")
            err.errno = e.errno
            raise err from None
        self._address = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="rdd-live-server", daemon=True
        )
        self._thread.start()
        return self._address

    @property
    def url(self) -> str:
        """``http://host:port/`` of the page (still readable after :meth:`close`)."""
        if self._address is None:
            raise RuntimeError("live view: not started")
        host, port = self._address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def publish(
        self, frame_rgb: np.ndarray, stats: dict[str, Any] | None = None, *, bgr: bool = False
    ) -> None:
        """Make ``frame_rgb`` (uint8 H×W×3 RGB, or BGR with ``bgr``; copied) and ``stats`` the
        latest; never blocks on viewers (no encoding, no I/O). A no-op after :meth:`close`."""
        if not (
            isinstance(frame_rgb, np.ndarray)
            and frame_rgb.dtype == np.uint8
            and frame_rgb.ndim == 3
            and frame_rgb.shape[2] == 3
            and frame_rgb.size
        ):
            raise ValueError(
                f"live view: frame must be uint8 H×W×3 RGB, got "
                f"{getattr(frame_rgb, 'dtype', type(frame_rgb).__name__)} "
                f"{getattr(frame_rgb, 'shape', '')}"
            )
        frame = np.array(frame_rgb[..., ::-1] if bgr else frame_rgb, copy=True)
        stats = _jsonable(dict(stats or {}))
        with self._cond:
            if self._closed:
                return
            self._frame, self._stats = frame, stats
            self._seq += 1
            self._cond.notify_all()

    def update_stats(self, stats: dict[str, Any]) -> None:
        """Replace the figures only (e.g. the final report once the run ends); the frame stays."""
        stats = _jsonable(dict(stats or {}))
        with self._cond:
            if not self._closed:
                self._stats = stats
                self._cond.notify_all()

    def close(self) -> None:
        """Stop serving, end every viewer thread (blocked writes included); idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # serve_forever returns: no new connections
        server.server_close()
        with server.lock:
            conns, threads = list(server.conns), list(server.threads)
        for conn in conns:  # a write blocked on a stalled viewer returns now
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        for t in [self._thread, *threads]:
            t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- viewer side --------------------------------------------------------------------------
    def _latest_jpeg(self) -> tuple[int, bytes]:
        """(seq, JPEG) of the newest frame, encoded at most once per sequence number."""
        with self._enc_lock:
            with self._cond:
                seq, frame = self._seq, self._frame
            if self._jpeg[0] != seq and frame is not None:
                bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if not ok:
                    raise RuntimeError("live view: JPEG encoding failed")
                self._jpeg = (seq, buf.tobytes())
            return self._jpeg

    def _stream(self, h: _Handler) -> None:
        with self._cond:
            full = self._viewers >= self.max_viewers
            if not full:
                self._viewers += 1
        if full:
            return h.reply(HTTPStatus.SERVICE_UNAVAILABLE, b"too many viewers\n", "text/plain")
        try:
            h.connection.settimeout(SEND_TIMEOUT_S)
            h.send_response(HTTPStatus.OK)
            h.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            h.send_header("Cache-Control", "no-store")
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(f"--{BOUNDARY}\r\n".encode())
            sent = 0
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._seq != sent or self._closed, KEEPALIVE_S)  # noqa: B023
                    if self._closed:
                        return
                    if self._seq == 0:
                        continue
                sent, jpeg = self._latest_jpeg()
                head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                h.wfile.write(b"".join((head.encode(), jpeg, f"\r\n--{BOUNDARY}\r\n".encode())))
        except OSError:  # gone (BrokenPipe, ConnectionReset), stalled, closed
            return
        finally:
            with self._cond:
                self._viewers -= 1

    def _get(self, h: _Handler) -> None:
        path = urlsplit(h.path).path
        if path in ("/", "/index.html"):
            h.reply(HTTPStatus.OK, self._page, "text/html; charset=utf-8")
        elif path == "/stream.mjpg":
            self._stream(h)
        elif path == "/stats.json":
            with self._cond:
                seq, stats = self._seq, self._stats
            body = json.dumps(stats, allow_nan=False).encode()
            h.reply(HTTPStatus.OK, body, "application/json", {"X-Frame": str(seq)})
        elif path == "/snapshot.jpg":
            seq, jpeg = self._latest_jpeg()
            if seq == 0:
                h.reply(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain")
            else:
                h.reply(HTTPStatus.OK, jpeg, "image/jpeg", {"X-Frame": str(seq)})
        else:
            h.reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_S
    server_version = "rdd-live"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.view._get(self)

    def reply(
        self, status: HTTPStatus, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    """Tracks its connections and handler threads, so close() can end and join them all."""

    daemon_threads = True

    def __init__(self, view: LiveView, address: tuple[str, int]) -> None:
        self.view, self.lock = view, threading.Lock()
        self.conns: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:  # HTTPServer's getfqdn() can stall on a DNS-less device
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="rdd-live-viewer",
            daemon=True,
        )
        with self.lock:
            self.conns.add(request)
            self.threads = [x for x in self.threads if x.is_alive()] + [t]
        t.start()

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("live view: request from %s failed", client_address, exc_info=True)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$TITLE</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { margin: 0; font: 15px system-ui, sans-serif; background: #111; color: #eee; }
 main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; align-items: flex-start; }
 #view { position: relative; min-width: 320px; min-height: 240px; background: #222; }
 #view img { display: block; max-width: 100%; }
 #wait { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; }
 th { text-align: left; font-weight: normal; color: #aaa; padding: 3px 12px 3px 0; }
 td { text-align: right; font-variant-numeric: tabular-nums; }
</style></head>
<body><main>
<div id="view"><img id="stream" src="/stream.mjpg" alt="">
 <div id="wait">waiting for the first frame</div></div>
<table><caption>$TITLE</caption>
 <tr><th>frames</th><td id="frames">&ndash;</td></tr>
 <tr><th>FPS</th><td id="fps">&ndash;</td></tr>
 <tr><th>latency p50</th><td id="p50">&ndash;</td></tr>
 <tr><th>latency p99</th><td id="p99">&ndash;</td></tr>
 <tr><th>dropped</th><td id="dropped">&ndash;</td></tr>
 <tr><th>mIoU so far</th><td id="miou">&ndash;</td></tr>
 <tr><th>status</th><td id="status">connecting</td></tr>
</table></main>
<script>
const $ = id => document.getElementById(id);
const num = (v, d, unit) => typeof v === 'number' ? v.toFixed(d) + (unit || '') : '\\u2013';
const img = $('stream');
img.onerror = () => setTimeout(() => { img.src = '/stream.mjpg?t=' + Date.now(); }, 1000);
async function poll() {
  try {
    const r = await fetch('/stats.json', {cache: 'no-store'});
    const seq = Number(r.headers.get('X-Frame')) || 0, s = await r.json();
    const lat = s.latency_ms || {};
    $('wait').hidden = seq > 0;
    $('frames').textContent = num(s.frames, 0);
    $('fps').textContent = num(s.fps, 1);
    $('p50').textContent = num(lat.p50, 1, ' ms');
    $('p99').textContent = num(lat.p99, 1, ' ms');
    $('dropped').textContent = num(s.dropped, 0);
    $('miou').textContent = typeof s.miou === 'number' ? (100 * s.miou).toFixed(2) + ' %' : 'n/a';
    $('status').textContent = s.completed ? 'completed'
      : s.stop_reason ? 'stopped: ' + s.stop_reason : seq > 0 ? 'running' : 'waiting';
  } catch (e) {
    $('status').textContent = 'disconnected';
  }
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""
