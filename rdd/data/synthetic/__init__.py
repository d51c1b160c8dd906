"""Procedural street scenes with CamVid's 11 classes — the pipeline's offline data.

A scene is a small 3-D world (a straight street seen from a car) ray-cast with a pinhole camera:
the ground plane (road with lane markings / zebra crossings, kerbs, tiled sidewalks), two facade
planes (buildings with perspective-correct windows, gaps and varying heights), fence planes
(thin see-through bars) and a distant skyline are computed per pixel with vectorised numpy;
trees, poles, signs, traffic lights, cars, pedestrians, cyclists and unlabelled clutter (ignore
255) are sprites rasterised with OpenCV and composited through a depth buffer (occlusion).
Lighting (gain, tint, building shadows on the ground, shaded facades), depth haze, blur and
sensor noise are applied last, and class colours deliberately overlap (grey road / sidewalk /
building / overcast sky / silver cars, dark clothes in shadow) so that some pixels are only
separable by texture and context — the "hard pixels" distillation is about.

Everything is deterministic from the seed. ``render_scene(seed, (360, 480))`` costs ~30 ms of
CPU on a busy shared 2-core box (roughly half that on an idle core); all per-pixel work is
done on 2-D arrays (colour slots into a per-frame palette, shade, label, depth) and expanded
to RGB once at the end.

Public API::

    image, mask = render_scene(seed, size=(360, 480))        # uint8 H×W×3 RGB, uint8 H×W
    summary = write_synthetic_dataset(root, n_train, n_val, size, seed)  # `folder` layout
    summary = write_synthetic_video(video_path, masks_dir, n_frames, size, seed, fps=15)

Modules: :mod:`~rdd.data.synthetic.world` (the world model and its random construction),
:mod:`~rdd.data.synthetic.raster` (per-pixel planes), :mod:`~rdd.data.synthetic.sprites`
(OpenCV sprites, depth compositing), :mod:`~rdd.data.synthetic.render` (one frame) and
:mod:`~rdd.data.synthetic.writers` (dataset and video on disk).
"""

from __future__ import annotations

from .render import render_scene
from .world import NUM_CLASSES, VOID
from .writers import write_synthetic_dataset, write_synthetic_video

__all__ = ["render_scene", "write_synthetic_dataset", "write_synthetic_video", "NUM_CLASSES", "VOID"]
