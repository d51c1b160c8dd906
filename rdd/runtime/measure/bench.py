"""``rdd-bench``: every build × backend this device runs, measured one way.

Which build of the student to ship on this device, how fast it is and what it costs in mIoU:

* **Rows** (:func:`plan_rows`): every build (:func:`~rdd.runtime.backends.discover_builds`) ×
  every backend and device of its format that the format table lists
  (:data:`~rdd.runtime.backends.FORMATS`), plus the rows every report lists (ORT CPU FP32/INT8,
  ORT CUDA, ORT TensorRT EP, TensorRT FP16/INT8, OpenVINO CPU FP32/INT8, torch eager) measured
  or skipped with the reason (``skipped: TensorRT unavailable``).
* **Columns** per row × size × threads (× batch): latency p50/p90/p99 and throughput under
  trtexec's protocol with interleaved rounds and end-to-end FPS through the runner's
  :class:`~rdd.runtime.stream.stream.Pipeline` (:mod:`rdd.runtime.measure.harness`, the one
  harness), mIoU on the same labelled frames, argmax agreement and max |Δlogit| against the
  row's **reference** (the ORT CPU FP32 row of the FP32 build it was made from: each model is
  compared with itself only, :func:`references`), file size and SHA-256, load /
  first-inference times and peak RSS, and the device block.
* **Process and threading model** (docs/BENCH.md): every row in one process, timed in
  interleaved rounds (a load change hits every row alike), with ONNX Runtime's intra-op threads
  not spinning (:data:`rdd.runtime.backends.ort.SPIN`), the setting the runner and the export
  stage use too, so one model on one backend has one latency.

Torch-free: torch is imported only for a ``.pt`` row. The command line is
:mod:`rdd.runtime.measure.bench_cli`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdd.runtime.backends import BACKENDS, FORMATS, Build, available, open_build, row_kinds
from rdd.runtime.errors import InputError
from rdd.runtime.measure.frames import Frames
from rdd.runtime.measure.harness import PeakRss, e2e_interleaved, input_batch, time_builds
from rdd.runtime.measure.score import Agreement, predict, score

__all__ = [
    "Row",
    "runtime_status",
    "plan_rows",
    "references",
    "run_bench",
    "LOGIT_FRAMES",
    "display_path",
]

LOGIT_FRAMES = 8  # max |Δlogit| is taken over the first frames only (logits are large)


@dataclass(frozen=True)
class Row:
    """One benchmark row: a build on one backend and device (``status`` ``None``: to run)."""

    kind: str
    label: str
    backend: str
    device: str
    precision: str
    build: Build | None
    status: str | None
    reference: Build | None = None  # the FP32 build this row is compared with

    @property
    def name(self) -> str:
        return f"{self.label} {self.precision.upper()}"


def runtime_status() -> dict[str, str | None]:
    """Row kind → ``None`` when this device runs it, else ``"skipped: <reason>"``."""
    out = {}
    for kind, (backend, device, _) in row_kinds().items():
        why = available(backend, device)
        out[kind] = None if why is None else f"skipped: {why}"
    return out


def _source(build: Build) -> str | None:
    """SHA-256 of the build this one was made from, as it records it (INT8 / IR / engine)."""
    try:
        if build.format == "onnx":
            from rdd.contract import read_onnx_props

            return read_onnx_props(build.path).get("rdd_source_sha256")
        if build.format == "engine":
            from rdd.contract import read_engine_sidecar

            side = read_engine_sidecar(build.path)
            return side[1].get("onnx_sha256") if side else None
        if build.format == "ir":  # the runtime info the export writes into the .xml
            import re

            m = re.search(
                r'<rdd_source_sha256\s+value="([0-9a-f]{64})"', build.path.read_text(errors="replace")
            )
            return m.group(1) if m else None
    except (InputError, OSError):
        return None
    return None


def references(builds: Sequence[Build]) -> dict[Path, Build | None]:
    """Each build's reference: the builds of one model are compared with one FP32 build of it.

    Builds belong to one model when their recorded sources (``rdd_source_sha256``, an engine's
    ``onnx_sha256``), followed through the given builds, end at the same file; the reference is
    its FP32 full-head float-input build if given, else its first FP32 build. A build that
    records no source belongs to the one FP32 build of its export folder (its folder, or the
    parent of ``openvino/``, ``trt/``, ``variants/``) when there is exactly one. A build with no
    reference is compared with nothing (``None``); different students never share one."""
    by_sha = {b.sha256: b for b in builds}

    def root(b: Build) -> str | None:
        seen, cur, src = set(), b, _source(b)
        while src and src not in seen:
            seen.add(src)
            nxt = by_sha.get(src)
            if nxt is None:
                return src
            cur, src = nxt, _source(nxt)
        return cur.sha256 if seen else None

    def rank(b: Build) -> tuple:
        return (b.precision != "fp32", _tags(b) != ("full", "float"), b.format != "onnx")

    roots = {b.path: root(b) for b in builds}
    groups: dict[str, list[Build]] = {}
    for b in builds:
        if roots[b.path]:
            groups.setdefault(roots[b.path], []).append(b)
    out: dict[Path, Build | None] = {}
    for b in builds:
        group = groups.get(roots[b.path]) or []
        fp32 = sorted((g for g in group if g.precision == "fp32"), key=rank)
        if not group:  # no recorded source: the export folder's one FP32 build
            folders = {b.path.parent, b.path.parent.parent}
            near = [
                f
                for f in builds
                if f.precision == "fp32"
                and roots[f.path] is None
                and f.path.parent in folders
                and f.format != "artifact"
            ]
            fp32 = [b] if b.precision == "fp32" else near if len(near) == 1 else []
        out[b.path] = fp32[0] if fp32 else None
    return out


def _tags(b: Build) -> tuple[str, str]:
    """``(head, input)`` of an ONNX build from its ``rdd_meta`` (``("full", "float")`` else)."""
    if b.format != "onnx":
        return "full", "float"
    try:
        from rdd.contract import ModelMeta, read_onnx_props

        m = ModelMeta.from_json(read_onnx_props(b.path)["rdd_meta"], source=b.name)
        return m.head, "uint8" if m.input_dtype == "uint8" else "float"
    except (InputError, KeyError, OSError):
        return "full", "float"


def plan_rows(
    builds: Sequence[Build],
    status: Mapping[str, str | None] | None = None,
    kinds: Sequence[str] | None = None,
) -> list[Row]:
    """Every build × (backend, device) of its format, plus the :class:`~rdd.runtime.backends.Format`
    ``expected`` rows no build covers (skipped with the reason)."""
    status = runtime_status() if status is None else status
    refs = references(builds)
    # a device no format expects (OpenVINO GPU / NPU, torch CUDA) gets rows only where it runs
    expected = {(be, dev) for f in FORMATS.values() for be, dev, _ in f.expected}
    rows: list[Row] = []
    for b in builds:
        for be in FORMATS[b.format].backends:
            for dev, (kind, label) in BACKENDS[be].rows.items():
                listed = (be, dev) in expected or (status.get(kind) is None and dev != "auto")
                if kind in status and listed:
                    why = status[kind] or (f"failed: {b.error}" if b.error else None)
                    rows.append(Row(kind, label, be, dev, b.precision, b, why, refs.get(b.path)))
    covered = {(r.kind, r.precision) for r in rows}
    for fmt in FORMATS.values():
        for be, dev, prec in fmt.expected:
            kind, label = BACKENDS[be].rows[dev]
            if (kind, prec) not in covered:
                covered.add((kind, prec))
                rows.append(
                    Row(
                        kind,
                        label,
                        be,
                        dev,
                        prec,
                        None,
                        status.get(kind) or f"skipped: no {prec.upper()} {fmt.what} given",
                    )
                )
    order = list(row_kinds())
    rows.sort(key=lambda r: order.index(r.kind) if r.kind in order else len(order))
    return [r for r in rows if not kinds or r.kind in kinds]


def display_path(p: Path) -> str:
    """``p`` relative to the working folder when under it, else its file name (reports never
    record an absolute path of the machine that wrote them)."""
    try:
        return Path(p).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(p).name


@dataclass
class _Open:
    """A row opened at one size and thread count."""

    row: Row
    backend: Any
    hw: tuple[int, int]
    base: dict[str, Any]
    preds: tuple | None = None


def _open(row: Row, size: Any, threads: int | None, frames: Frames | None, max_pixels: int | None) -> _Open:
    """Open a row's build and run it three times: load and first-inference times, peak RSS."""
    from rdd.runtime.stream.transforms import inference_size

    b = row.build
    base = {
        "row": row.name,
        "kind": row.kind,
        "precision": row.precision,
        "model": b.name,
        "model_path": display_path(b.path),
        "model_sha256": b.sha256,
        "model_bytes": b.size_bytes,
        "threads": threads,
    }
    rss = PeakRss()
    t0 = time.perf_counter()
    be = open_build(
        b,
        backend=row.backend,
        device=row.device,
        threads=threads if "threads" in BACKENDS[row.backend].options else None,
        max_pixels=max_pixels,
    )
    base["load_ms"] = 1e3 * (time.perf_counter() - t0)
    base["compile_ms"] = getattr(be, "compile_ms", None)
    frame_hw = frames[0].image.shape[:2] if frames else (be.meta.input_size or (360, 480))
    hw = inference_size(tuple(frame_hw), be.meta, size)
    x1 = input_batch(be, hw, frames, 1)
    for i in range(3):
        t1 = time.perf_counter()
        be.infer(x1)
        if i == 0:
            base["first_inference_ms"] = 1e3 * (time.perf_counter() - t1)
    base.update(
        peak_rss_mb=rss.growth_mb(),
        size=list(hw),
        precision=be.precision,
        head=be.meta.head,
        input="uint8" if be.meta.input_dtype == "uint8" else "float",
    )
    base["row"] = _row_name(row, be)
    return _Open(row, be, hw, base)


def _row_name(row: Row, be: Any) -> str:
    """``ORT CPU FP32``; a build that ends at low-resolution logits or takes uint8 frames says
    so (``ORT CPU INT8 (lowres, uint8)``); OpenVINO's precision is what it reports it ran."""
    tags = [
        t for t, on in (("lowres", be.meta.head == "lowres"), ("uint8", be.meta.input_dtype == "uint8")) if on
    ]
    return f"{row.label} {be.precision.upper()}" + (f" ({', '.join(tags)})" if tags else "")


def _accuracy(opened: Sequence[_Open], frames: Frames) -> dict[int, dict[str, Any]]:
    """mIoU per row; agreement and Δlogit with the row's reference row (the ORT CPU row of its
    reference build, else that build's first row), on the same frames at each row's size."""
    for o in opened:
        if o.preds is None:
            o.preds = predict(o.backend, frames, o.hw, keep_logits=LOGIT_FRAMES)
    by_build: dict[Path, _Open] = {}
    for o in sorted(opened, key=lambda o: o.row.kind != "ort_cpu"):
        by_build.setdefault(o.row.build.path, o)
    out = {}
    for i, o in enumerate(opened):
        k = o.backend.meta.num_classes
        res = score(o.preds[0], frames, k)
        res.pop("iou", None)
        ref = by_build.get(o.row.reference.path) if o.row.reference is not None else None
        if ref is not None:
            a = Agreement()
            for j, (p, r) in enumerate(zip(o.preds[0], ref.preds[0])):
                za = o.preds[1][j] if o.preds[1] and j < len(o.preds[1]) else None
                zr = ref.preds[1][j] if ref.preds[1] and j < len(ref.preds[1]) else None
                a.update(p, r, za, zr)
            ref_miou = score(ref.preds[0], frames, k)["miou"]
            res.update(
                a.result(),
                reference=ref.base["row"],
                reference_model=ref.row.build.name,
                miou_loss=(
                    100 * (ref_miou - res["miou"])
                    if res.get("miou") is not None and ref_miou is not None
                    else None
                ),
            )
        out[i] = res
    return out


def run_bench(
    builds: Sequence[Build],
    *,
    frames: Frames | None = None,
    clip: Any = None,
    sizes: Sequence[Any] = ("model",),
    threads: Sequence[int | None] = (None,),
    batches: Sequence[int] = (1,),
    kinds: Sequence[str] | None = None,
    e2e_frames: int = 60,
    timing: dict[str, Any] | None = None,
    status: Mapping[str, str | None] | None = None,
    log: Callable[[str], None] | None = None,
    max_pixels: int | None = None,
    results: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Measure every runnable row (see the module docstring); returns the JSON-ready report.

    ``frames``: :class:`~rdd.runtime.measure.frames.Frames` (accuracy columns and the latency
    input; random frames when ``None``). ``clip``: video, image folder or frames for end-to-end
    FPS (``None``/``e2e_frames=0``: no e2e column). ``timing``: keyword arguments of
    :func:`rdd.runtime.timing.measure_interleaved`. ``results``: a list the rows are appended to
    as they are measured (an interrupted run keeps what it measured).
    """
    from rdd.runtime.provenance import device_info
    from rdd.runtime.timing import protocol

    timing = {"rounds": 5, **(timing or {})}
    say = log or (lambda *_: None)
    rows = plan_rows(builds, status, kinds)
    results = [] if results is None else results
    for r in rows:
        if r.status is not None:
            results.append(
                {
                    "row": r.name,
                    "kind": r.kind,
                    "precision": r.precision,
                    "model": r.build.name if r.build else None,
                    "size": None,
                    "status": r.status,
                }
            )
    runnable = [r for r in rows if r.status is None]
    settings = [(s, t) for s in sizes for t in threads]
    accuracy: dict[tuple, dict[str, Any]] = {}
    for size, t in settings:
        opened: list[_Open] = []
        for r in runnable:
            try:
                o = _open(r, size, t, frames, max_pixels)
            except (InputError, ValueError, RuntimeError, ImportError, OSError) as e:
                results.append(
                    {
                        "row": r.name,
                        "kind": r.kind,
                        "precision": r.precision,
                        "model": r.build.name,
                        "threads": t,
                        "size": None,
                        "status": "failed: " + " ".join(str(e).split()),
                    }
                )
                continue
            opened.append(o)
            say(f"opened {o.base['row']} ({r.build.name}) @ {o.hw[0]}x{o.hw[1]} threads {t}")
        if frames is not None and opened:
            key = str(size)
            if key not in accuracy:
                accuracy[key] = {id(o.row): a for o, a in zip(opened, _accuracy(opened, frames).values())}
        for b in batches:
            bases = {}
            for i, o in enumerate(opened):
                if b > 1 and not o.backend.meta.dynamic_batch:
                    results.append({**o.base, "batch": b, "status": "skipped: fixed batch 1"})
                    continue
                bases[str(i)] = o
            say(f"timing {len(bases)} rows @ batch {b} ...")
            stats = {}
            for hw in dict.fromkeys(o.hw for o in bases.values()):  # one size: one call
                group = {k: o.backend for k, o in bases.items() if o.hw == hw}
                stats.update(
                    time_builds(group, hw, frame=frames[0].image if frames else None, batch=b, **timing)
                )
            e2e = (
                e2e_interleaved(
                    {k: (bases[k].backend, bases[k].hw) for k in stats},
                    clip,
                    e2e_frames,
                    int(timing.get("rounds", 1)),
                )
                if b == 1 and clip is not None and e2e_frames
                else {}
            )
            for k, st in stats.items():
                o = bases[k]
                row = {
                    **o.base,
                    "batch": b,
                    "status": "ok",
                    "latency_ms": {q: st[q] for q in ("p50", "p90", "p99", "mean", "min")},
                    "throughput": st["throughput"],
                    "runs": st["runs"],
                    **accuracy.get(str(size), {}).get(id(o.row), {}),
                }
                if k in e2e:
                    row["e2e_fps"] = e2e[k]
                results.append(row)
        for o in opened:
            o.preds = None
    clock = getattr(timing.get("clock"), "__name__", "perf_counter")
    return {
        "device": device_info(),
        "protocol": protocol(
            clock=clock,
            **{k: v for k, v in timing.items() if k in ("warmup_s", "duration_s", "min_runs", "rounds")},
            process="one process, every row interleaved",
            ort_spinning=_spin(),
        ),
        "results": results,
    }


def _spin() -> bool:
    from rdd.runtime.backends.ort import SPIN

    return SPIN
