"""The frame stream: sources in, the threaded pipeline, outputs and stop handling.

* :mod:`~rdd.runtime.stream.sources` — the source interface, image folders / files / globs;
  :mod:`~rdd.runtime.stream.capture` — video files, stream URLs / GStreamer pipelines, cameras;
  :mod:`~rdd.runtime.stream.labels` — label folders;
* :mod:`~rdd.runtime.stream.transforms` — the inference size (:class:`Resize`, parsed once),
  preprocessing, label resize, the colour overlay;
* :mod:`~rdd.runtime.stream.stream` — :class:`Pipeline`, three threads joined by bounded
  channels; :mod:`~rdd.runtime.stream.pacing` (real time, batches),
  :mod:`~rdd.runtime.stream.temporal` (flicker, pacing statistics) and
  :mod:`~rdd.runtime.stream.figures` (stage times, latency, streaming mIoU → the report's
  figures) are its collaborators;
* :mod:`~rdd.runtime.stream.writers` / :mod:`~rdd.runtime.stream.masks` — outputs staged and
  committed together; :mod:`~rdd.runtime.stream.outputs` — output paths checked before the
  first frame; :mod:`~rdd.runtime.stream.live` — the live view (``--serve``);
* :mod:`~rdd.runtime.stream.stop` — stop reasons, exit codes, the signal-safe stop request.

This package imports nothing itself: the command line loads :mod:`.stop` (standard library
only) before numpy, OpenCV or a runtime.
"""
