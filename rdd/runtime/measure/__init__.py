"""Measuring builds: one frame type, one scorer, one benchmark.

* :mod:`~rdd.runtime.measure.frames` — :class:`Frames` (images + optional labels) from a
  dataset, a folder / file / glob, a video or memory;
* :mod:`~rdd.runtime.measure.score` — predict, mIoU, argmax agreement, max |Δlogit|, the
  streaming comparison of two builds (fractions in code, points only when printed);
* :mod:`~rdd.runtime.measure.bench` — ``rdd-bench``'s rows and its flat loop, under the one
  latency protocol (:mod:`rdd.runtime.timing`) and process / threading model;
  :mod:`~rdd.runtime.measure.harness` — the one latency harness (``time_builds``), end-to-end
  FPS, peak RSS;
  :mod:`~rdd.runtime.measure.bench_report` — Pareto front, recommendation, tables, plot.

Export's gates, ``rdd-bench``, ``rdd-infer --compare``, the study diagnostics and
``benchmarks/`` all call these.
"""
