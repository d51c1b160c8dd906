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
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from rdd.spec import CAMVID_CLASSES, as_hw, atomic_path, write_json_atomic, write_text_atomic

SKY, BUILDING, POLE, ROAD, SIDEWALK, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)
VOID = 255  # unlabelled clutter (bins, boxes): ignored by the loss and the metrics
_NONE = 254  # sprite canvas: "not covered"
NUM_CLASSES = CAMVID_CLASSES.num_classes
FAR = 1.0e4  # depth of the sky

_Color = tuple[float, float, float]


# --------------------------------------------------------------------------- world description
@dataclass
class _Camera:
    H: int
    W: int
    f: float  # focal length in pixels
    hc: float  # camera height above the ground, metres
    y_h: float  # horizon row
    x_v: float  # vanishing-point column
    cam_x: float  # lateral position of the camera, metres (road centre at X = 0)


@dataclass
class _Side:
    sign: int  # -1 left, +1 right
    facade_x: float  # |X| of the facade plane
    sidewalk: float  # sidewalk width
    z0: np.ndarray  # building segments along the street: start / end (metres), sorted
    z1: np.ndarray
    height: np.ndarray
    color: np.ndarray  # n×3
    glass: np.ndarray  # n×3
    win_period: np.ndarray  # horizontal window period (m)
    win_width: np.ndarray  # window width (m)
    floor_h: np.ndarray  # storey height (m)
    win_h: np.ndarray  # window height (m)
    shop: np.ndarray  # bool: ground floor shop front
    fences: list[tuple[float, float, float, float, float, _Color]] = field(default_factory=list)
    # (x, z0, z1, height, bar_spacing, color)


@dataclass
class _Sprite:
    kind: str
    x: float
    z: float
    vz: float = 0.0  # metres / second along the street (video)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _World:
    road_half: float
    sides: tuple[_Side, _Side]
    sprites: list[_Sprite]
    sky_top: _Color
    sky_horizon: _Color
    clouds: float
    cloud_seed: int
    road_color: _Color
    sidewalk_color: _Color
    marking_color: _Color
    crosswalks: list[float]
    skyline_seed: int
    gain: float
    tint: _Color
    sun_side: int
    sun_k: float  # shadow length per metre of building height
    shadow: float  # shadow brightness factor
    fog: float  # haze distance (m)
    noise: float  # sensor noise sigma (0..255 units)
    blur: str
    blur_amount: float
    camera_kw: dict[str, float]


class _Rand:
    """A ``numpy.random.Generator`` front-end for the many *scalar* draws of world building:
    scalars come from a pre-drawn buffer (numpy's per-call overhead dominates otherwise);
    array draws go to the generator itself. Deterministic like the generator it wraps."""

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._buf: list[float] = []
        self._i = 0

    def _next(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self.gen.random(512).tolist()
            self._i = 0
        self._i += 1
        return self._buf[self._i - 1]

    def random(self, size: Any = None) -> Any:
        return self._next() if size is None else self.gen.random(size)

    def uniform(self, lo: float = 0.0, hi: float = 1.0, size: Any = None) -> Any:
        return lo + (hi - lo) * self._next() if size is None else self.gen.uniform(lo, hi, size)

    def integers(self, lo: int, hi: int | None = None, size: Any = None) -> Any:
        if size is not None:
            return self.gen.integers(lo, hi, size)
        if hi is None:
            lo, hi = 0, lo
        return min(int(lo + (hi - lo) * self._next()), hi - 1)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _jitter_color(rng: np.random.Generator, base: Sequence[float], amount: float) -> _Color:
    """``base`` scaled by U(1 ± amount) plus per-channel noise of σ = 40·amount, clipped."""
    r = [rng.random() for _ in range(4)]
    k = 1 - amount + 2 * amount * r[0]
    out = (min(255.0, max(0.0, float(b) * k + (float(e) - 0.5) * amount * 140))
           for b, e in zip(base, r[1:]))
    return tuple(out)  # type: ignore[return-value]


# colour families deliberately overlap between classes
_GREYS = [(95, 95, 98), (120, 118, 115), (140, 138, 135), (165, 162, 158), (185, 183, 180)]
_FACADES = _GREYS + [(170, 150, 120), (150, 90, 70), (190, 170, 140), (120, 100, 90),
                     (200, 195, 185), (140, 120, 130), (110, 115, 125)]
_CAR_COLORS = [(180, 182, 185), (40, 40, 45), (230, 230, 232), (150, 30, 30), (30, 50, 120),
               (110, 112, 115), (70, 90, 60), (200, 170, 60), (90, 90, 95), (130, 120, 100)]
_CLOTHES = [(30, 30, 35), (60, 60, 70), (110, 110, 115), (40, 50, 90), (140, 40, 40),
            (180, 170, 150), (70, 90, 60), (200, 200, 200), (90, 70, 50), (50, 80, 130)]
_SKIN = [(230, 190, 160), (200, 150, 120), (150, 100, 70), (100, 70, 50)]


def _make_side(rng: np.random.Generator, sign: int, road_half: float, z_lo: float,
               z_hi: float) -> _Side:
    sidewalk = _u(rng, 2.2, 6.0)
    facade_x = road_half + sidewalk + (_u(rng, 0.0, 2.5) if rng.random() < 0.4 else 0.0)
    z0s, z1s = [], []
    z = z_lo - _u(rng, 0, 10)
    while z < z_hi:
        length = _u(rng, 6, 28)
        if rng.random() < 0.15:  # alley / gap between buildings
            z += _u(rng, 3, 12)
        z0s.append(z)
        z1s.append(z + length)
        z += length
    n = len(z0s)
    colors = np.array([_jitter_color(rng, _FACADES[i], 0.12)
                       for i in rng.integers(0, len(_FACADES), n)])
    glass_base = np.array([[40, 50, 60], [70, 85, 100], [110, 130, 150], [30, 30, 35],
                           [150, 160, 170]], np.float64)
    glass = glass_base[rng.integers(0, len(glass_base), n)] * rng.uniform(0.8, 1.2, (n, 1))
    period = rng.uniform(1.8, 3.5, n)
    return _Side(sign=sign, facade_x=facade_x, sidewalk=sidewalk, z0=np.array(z0s),
                 z1=np.array(z1s), height=rng.uniform(5, 32, n), color=colors, glass=glass,
                 win_period=period, win_width=period * rng.uniform(0.3, 0.65, n),
                 floor_h=rng.uniform(2.8, 3.8, n), win_h=rng.uniform(1.0, 1.9, n),
                 shop=rng.random(n) < 0.4)


def _make_world(gen: np.random.Generator, z_lo: float, z_hi: float, *,
                cam_speed: float = 0.0) -> _World:
    """Random street with objects at depths ``[z_lo, z_hi]`` (metres, world frame)."""
    rng: Any = _Rand(gen)
    road_half = _u(rng, 3.0, 6.5)
    sides = (_make_side(rng, -1, road_half, z_lo, z_hi + 200.0),
             _make_side(rng, +1, road_half, z_lo, z_hi + 200.0))
    sprites: list[_Sprite] = []
    span = z_hi - z_lo

    def place(n: int, lo: float = 4.0) -> np.ndarray:
        return np.sort(rng.uniform(z_lo + lo, z_hi, n))

    # fences along kerbs or facades
    for side in sides:
        for _ in range(_pick(rng, (0, 1, 1, 2, 2))):
            z0 = _u(rng, z_lo + 2, z_lo + 0.5 * span)
            fx = road_half + (0.3 if rng.random() < 0.5 else side.sidewalk * _u(rng, 0.6, 0.95))
            side.fences.append((fx * side.sign, z0, z0 + _u(rng, 10, 60), _u(rng, 0.9, 2.0),
                                _u(rng, 0.1, 0.3),
                                _jitter_color(rng, [(90, 90, 95), (120, 100, 80), (70, 100, 70),
                                                    (150, 150, 150)][rng.integers(4)], 0.15)))
    density = span / 100.0
    for side in sides:
        s = side.sign
        # trees
        for z in place(int(rng.integers(1, 9) * density) + 1):
            x = s * (road_half + side.sidewalk * _u(rng, 0.4, 0.85))
            ru = _u(rng, 1.4, 3.5)
            sprites.append(_Sprite("tree", x, float(z), params=dict(
                trunk_h=_u(rng, 2.0, 4.0), trunk_w=_u(rng, 0.2, 0.45), ru=ru,
                rv=ru * _u(rng, 0.9, 1.4), seed=int(rng.integers(2**31)),
                green=_jitter_color(rng, [(60, 110, 40), (80, 120, 50), (50, 80, 40),
                                          (120, 120, 60), (90, 100, 70)][rng.integers(5)], 0.2),
                trunk=_jitter_color(rng, (80, 65, 50), 0.2))))
        # poles, some with signs, traffic lights or lamp arms
        for z in place(int(rng.integers(1, 6) * density) + 1):
            x = s * (road_half + _u(rng, 0.3, 0.8))
            kind = _pick(rng, ("plain", "sign", "sign", "sign", "light", "light", "lamp"))
            sprites.append(_Sprite("pole", x, float(z), params=dict(
                height=_u(rng, 3.0, 8.0), width=_u(rng, 0.08, 0.25), kind=str(kind),
                color=_jitter_color(rng, [(110, 110, 110), (60, 65, 60), (150, 150, 145),
                                          (80, 70, 60)][rng.integers(4)], 0.15),
                sign_shape=_pick(rng, ("circle", "rect", "triangle")),
                sign_color=[(200, 30, 30), (30, 70, 170), (230, 230, 230), (220, 190, 40),
                            (40, 130, 60)][rng.integers(5)],
                sign_h=_u(rng, 2.0, 3.0), sign_size=_u(rng, 0.6, 1.1), lit=int(rng.integers(3)),
                toward_road=-s)))
        # pedestrians on the sidewalk
        for z in place(int(rng.integers(0, 5) * density) + 1):
            x = s * (road_half + side.sidewalk * _u(rng, 0.2, 0.8))
            sprites.append(_person(rng, x, float(z), view="front", vz=_u(rng, -1.5, 1.5)))
        # unlabelled clutter (bins, boxes, bollards)
        for z in place(int(rng.integers(0, 3) * density)):
            x = s * (road_half + side.sidewalk * _u(rng, 0.3, 0.95))
            sprites.append(_Sprite("void", x, float(z), params=dict(
                w=_u(rng, 0.4, 1.2), h=_u(rng, 0.5, 1.3),
                color=_jitter_color(rng, _GREYS[rng.integers(len(_GREYS))], 0.3))))
        # parked cars along the kerb
        for z in place(int(rng.integers(0, 4) * density)):
            sprites.append(_car(rng, s * (road_half - _u(rng, 0.9, 1.2)), float(z),
                                front=s < 0, vz=0.0))
    # traffic in the lanes: same direction (right lane, rear view), oncoming (left, front view)
    for z in place(int(rng.integers(1, 5) * density) + 1, lo=6.0):
        sprites.append(_car(rng, road_half * _u(rng, 0.35, 0.6), float(z), front=False,
                            vz=cam_speed * _u(rng, 0.8, 1.2)))
    for z in place(int(rng.integers(0, 4) * density), lo=6.0):
        sprites.append(_car(rng, -road_half * _u(rng, 0.35, 0.6), float(z), front=True,
                            vz=-_u(rng, 5, 12) if cam_speed else 0.0))
    # cyclists near the kerb (rear view) and crossing (side view)
    for z in place(int(rng.integers(1, 4) * density) + 1, lo=5.0):
        s = _pick(rng, (-1, 1))
        sprites.append(_cyclist(rng, float(s) * road_half * _u(rng, 0.6, 0.9), float(z),
                                view="rear", vz=float(s) * _u(rng, 3, 6) if cam_speed else 0.0))
    if rng.random() < 0.5:
        sprites.append(_cyclist(rng, _u(rng, -road_half, road_half), _u(rng, 8, 30),
                                view="side", vz=0.0))
    # at least one pedestrian and one cyclist close enough to be clearly visible (per 60 m of
    # street, so that long video clips keep meeting them)
    for k in range(max(1, int(span // 60))):
        side = _pick(rng, (-1, 1))
        z = z_lo + 60 * k
        sprites.append(_person(rng, side * (road_half + _u(rng, 0.5, 2.0)),
                               z + _u(rng, 6, 25), view="front", vz=_u(rng, -1.5, 1.5)))
        sprites.append(_cyclist(rng, side * road_half * _u(rng, 0.6, 0.9), z + _u(rng, 6, 25),
                                view="rear", vz=side * _u(rng, 3, 6) if cam_speed else 0.0))
    # pedestrians crossing the road
    crosswalks = [_u(rng, z_lo + 8, z_lo + 40)] if rng.random() < 0.4 else []
    for _ in range(int(rng.integers(0, 3))):
        z = crosswalks[0] + _u(rng, 0.5, 3.5) if crosswalks else _u(rng, z_lo + 6, z_lo + 40)
        sprites.append(_person(rng, _u(rng, -road_half, road_half), z, view="side", vz=0.0))

    overcast = rng.random() < 0.4
    if overcast:
        g = _u(rng, 150, 215)
        sky_top, sky_hor = (g - 15, g - 10, g - 5), (g + 10, g + 10, g + 8)
    else:
        sky_top = _jitter_color(rng, (60, 120, 200), 0.15)
        sky_hor = _jitter_color(rng, (175, 200, 225), 0.08)
    tint = tuple(float(v) for v in rng.uniform(0.9, 1.1, 3))
    road_grey = _u(rng, 65, 140)
    blur = _pick(rng, ("none", "none", "gauss", "motion"))
    return _World(
        road_half=road_half, sides=sides, sprites=sprites, sky_top=sky_top, sky_horizon=sky_hor,
        clouds=_u(rng, 0, 0.6) if not overcast else _u(rng, 0, 0.2),
        cloud_seed=int(rng.integers(2**31)),
        road_color=_jitter_color(rng, (road_grey, road_grey * 0.98, road_grey * 1.02), 0.05),
        sidewalk_color=_jitter_color(rng, (road_grey + _u(rng, -10, 60),) * 3, 0.08),
        marking_color=_jitter_color(rng, (225, 225, 215), 0.05), crosswalks=crosswalks,
        skyline_seed=int(rng.integers(2**31)), gain=_u(rng, 0.6, 1.25), tint=tint,  # type: ignore
        sun_side=_pick(rng, (-1, 1)), sun_k=_u(rng, 0.15, 0.8),
        shadow=_u(rng, 0.45, 0.8) if rng.random() < 0.7 else 1.0, fog=_u(rng, 120, 700),
        noise=_u(rng, 1.0, 6.0), blur=blur, blur_amount=_u(rng, 0.4, 1.2),
        camera_kw=dict(f_rel=_u(rng, 0.55, 0.85), hc=_u(rng, 1.2, 1.9),
                       y_h_rel=_u(rng, 0.36, 0.5), x_v_rel=_u(rng, 0.4, 0.6),
                       cam_x_rel=_u(rng, 0.15, 0.55)))


def _person(rng: np.random.Generator, x: float, z: float, *, view: str, vz: float) -> _Sprite:
    return _Sprite("person", x, z, vz=vz, params=dict(
        height=_u(rng, 1.45, 1.95), view=view, phase=_u(rng, 0, 2 * np.pi),
        shirt=_jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 0.15),
        pants=_jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 0.15),
        skin=_jitter_color(rng, _SKIN[rng.integers(len(_SKIN))], 0.1),
        hair=_jitter_color(rng, (50, 40, 30), 0.4), facing=float(_pick(rng, (-1, 1)))))


def _car(rng: np.random.Generator, x: float, z: float, *, front: bool, vz: float) -> _Sprite:
    return _Sprite("car", x, z, vz=vz, params=dict(
        w=_u(rng, 1.65, 2.0), h=_u(rng, 1.35, 1.9), length=_u(rng, 3.8, 5.0), front=front,
        color=_jitter_color(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.1)))


def _cyclist(rng: np.random.Generator, x: float, z: float, *, view: str, vz: float) -> _Sprite:
    return _Sprite("cyclist", x, z, vz=vz, params=dict(
        view=view, phase=_u(rng, 0, 2 * np.pi), facing=float(_pick(rng, (-1, 1))),
        shirt=_jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 0.15),
        pants=_jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 0.15),
        skin=_jitter_color(rng, _SKIN[rng.integers(len(_SKIN))], 0.1),
        frame=_jitter_color(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.1)))


# --------------------------------------------------------------------------- rendering
# Layers write four 2-D buffers: a colour *slot* (index into a per-frame palette), a shade
# multiplier, the label and the depth. Colour is only expanded to H×W×3 once, at the end —
# 3-channel numpy work is what makes naive procedural renderers slow.
class _Frame:
    """Slot / shade / label / depth buffers of one frame, plus its palette."""

    def __init__(self, cam: _Camera) -> None:
        self.cam = cam
        H, W = cam.H, cam.W
        self.slot = np.zeros((H, W), np.uint16)
        self.shade = np.ones((H, W), np.float32)
        self.lab = np.full((H, W), SKY, np.uint8)
        self.depth = np.full((H, W), FAR, np.float32)
        self.yc = np.arange(H, dtype=np.float32) + 0.5  # pixel centres
        self.xc = np.arange(W, dtype=np.float32) + 0.5
        self.colors: list[Sequence[float]] = []

    def add(self, color: Sequence[float]) -> int:
        """Register a colour; returns its slot."""
        self.colors.append(color)
        return len(self.colors) - 1

    def add_many(self, colors: np.ndarray) -> np.ndarray:
        first = len(self.colors)
        self.colors.extend(np.asarray(colors, np.float32).reshape(-1, 3))
        return np.arange(first, len(self.colors), dtype=np.uint16)

    def put(self, r0: int, c0: int, cover: np.ndarray, slot: Any, shade: Any, lab: Any,
            depth: Any) -> None:
        """Write values (scalars or arrays broadcastable to ``cover``) where ``cover``."""
        h, w = cover.shape
        win = (slice(r0, r0 + h), slice(c0, c0 + w))
        np.copyto(self.slot[win], slot, where=cover, casting="unsafe")
        np.copyto(self.shade[win], shade, where=cover, casting="unsafe")
        np.copyto(self.lab[win], lab, where=cover, casting="unsafe")
        np.copyto(self.depth[win], depth, where=cover, casting="unsafe")


def _fmod(a: np.ndarray, p: Any) -> np.ndarray:
    """``a mod p`` for positive ``p`` (3× faster than numpy's ``%`` on floats)."""
    return a - np.floor(a / p) * p


def _noise_field(seed: int, shape: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in [0, 1]: a small random grid upsampled bilinearly."""
    g = np.random.default_rng(seed).random(shape, dtype=np.float32)
    return cv2.resize(g, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)


def _draw_sky(fr: _Frame, w: _World) -> None:
    cam = fr.cam
    rows = int(np.clip(np.ceil(cam.y_h + 1), 1, cam.H))
    n = 48  # gradient steps, top → horizon
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    grad = np.asarray(w.sky_top, np.float32) * (1 - t) + np.asarray(w.sky_horizon, np.float32) * t
    slots = fr.add_many(grad)
    step = np.clip((fr.yc[:rows] / max(cam.y_h, 1.0) * (n - 1)).astype(np.int64), 0, n - 1)
    fr.slot[:rows] = slots[step][:, None]
    if w.clouds > 0:  # brighten towards white-ish; clipped at the end
        c = _noise_field(w.cloud_seed, (5, 9), (rows, cam.W))
        fr.shade[:rows] = 1 + np.clip((c - 0.45) * 2.5, 0, 1) * (w.clouds * 0.8)
    # distant skyline just above the horizon (far buildings, low contrast in the haze)
    prof = _noise_field(w.skyline_seed, (1, 24), (1, cam.W))[0]
    steps = _noise_field(w.skyline_seed + 1, (1, 90), (1, cam.W))[0]
    top_row = cam.y_h - (prof * 0.09 + (steps > 0.55) * 0.03) * cam.H
    cover = fr.yc[:rows, None] >= top_row[None, :]
    fr.put(0, 0, cover, fr.add(np.asarray(w.sky_horizon) * 0.8 + 20), 1.0, BUILDING, 400.0)


def _draw_ground(fr: _Frame, w: _World, cam_z: float) -> None:
    cam = fr.cam
    r0 = int(np.ceil(cam.y_h + 0.5))
    if r0 >= cam.H:
        return
    yc = fr.yc[r0:]
    zg = (cam.f * cam.hc / (yc - cam.y_h)).astype(np.float32)  # per-row depth (m)
    zw = zg + np.float32(cam_z)  # world depth
    kx = (fr.xc - cam.x_v) / np.float32(cam.f)
    xg = kx[None, :] * zg[:, None] + np.float32(cam.cam_x)  # rows×W lateral position (m)
    ax = np.abs(xg)
    road = ax < w.road_half
    # world-anchored asphalt / pavement variation, evaluated on a coarse grid and upsampled
    hs, ws = max(2, (cam.H - r0) // 6), max(2, cam.W // 6)
    zs = cv2.resize(zw[:, None], (1, hs), interpolation=cv2.INTER_AREA)[:, 0]
    xs = cv2.resize(xg, (ws, hs), interpolation=cv2.INTER_AREA)
    var = 1 + 0.08 * np.sin(0.9 * xs + 0.37 * zs[:, None]) * np.sin(0.21 * zs[:, None] - 0.5 * xs)
    shade = cv2.resize(var.astype(np.float32), (cam.W, cam.H - r0), interpolation=cv2.INTER_LINEAR)
    # markings: dashed centre line, edge lines, optional zebra crossing
    dash = _fmod(zw, 9.0) < 4.0
    marks = (ax < 0.08) & dash[:, None]
    marks |= np.abs(ax - (w.road_half - 0.35)) < 0.07
    for zc in w.crosswalks:
        band = (zw >= zc) & (zw < zc + 4.0)
        if band.any():
            marks |= band[:, None] & (_fmod(xg, 1.0) < 0.5)
    marks &= road
    # sidewalk: tile grooves and a bright kerb
    tiles = (_fmod(xg, 0.9) < 0.04) | (_fmod(zw, 0.9) < 0.04)[:, None]
    kerb = (ax >= w.road_half) & (ax < w.road_half + 0.18)
    shade[tiles & ~road] *= 0.8
    shade[kerb] = 1.15
    s_road, s_side, s_mark = (fr.add(c) for c in (w.road_color, w.sidewalk_color,
                                                  w.marking_color))
    slot = np.where(road, np.uint16(s_road), np.uint16(s_side))
    slot[marks] = s_mark
    # building shadows: facades on the sun side shade the ground next to them
    if w.shadow < 1.0:
        side = w.sides[0] if w.sun_side < 0 else w.sides[1]
        idx = np.clip(np.searchsorted(side.z0, zw, side="right") - 1, 0, None)
        ok = (np.searchsorted(side.z0, zw, side="right") > 0) & (zw < side.z1[idx])
        hgt = np.where(ok, side.height[idx], 0.0).astype(np.float32)
        reach = side.facade_x - w.sun_k * hgt  # |X| beyond which the ground is in shadow
        shade[(xg * side.sign) > reach[:, None]] *= w.shadow
    fr.slot[r0:] = slot
    fr.shade[r0:] = shade
    fr.lab[r0:] = np.where(road, np.uint8(ROAD), np.uint8(SIDEWALK))
    fr.depth[r0:] = zg[:, None]


def _draw_facades(fr: _Frame, w: _World, cam_z: float, z_far: float) -> None:
    cam = fr.cam
    split = int(np.clip(round(cam.x_v), 0, cam.W))
    for side in w.sides:
        c0, c1 = (0, split) if side.sign < 0 else (split, cam.W)
        if c1 <= c0:
            continue
        dx = fr.xc[c0:c1] - cam.x_v
        xrel = side.sign * side.facade_x - cam.cam_x
        with np.errstate(divide="ignore", invalid="ignore"):
            zc = cam.f * xrel / dx  # per-column depth of the facade plane
        zw = zc + cam_z
        idx = np.clip(np.searchsorted(side.z0, zw, side="right") - 1, 0, len(side.z0) - 1)
        valid = (zc > 0.3) & (zc < z_far) & (zw >= side.z0[idx]) & (zw < side.z1[idx])
        if not valid.any():
            continue
        zc = np.where(valid, zc, 1.0).astype(np.float32)
        hgt = side.height[idx]
        y_top = np.where(valid, cam.y_h + cam.f * (cam.hc - hgt) / zc, np.inf)
        y_bot = np.where(valid, cam.y_h + cam.f * cam.hc / zc, -np.inf)
        r0 = int(np.clip(np.floor(y_top.min()), 0, cam.H))
        r1 = int(np.clip(np.ceil(y_bot.max()) + 1, 0, cam.H))
        if r1 <= r0:
            continue
        yc = fr.yc[r0:r1, None]
        cover = (yc >= y_top) & (yc < y_bot) & (zc < fr.depth[r0:r1, c0:c1])
        if not cover.any():
            continue
        big_y = np.float32(cam.hc) - (yc - np.float32(cam.y_h)) * (zc / np.float32(cam.f))
        u = (zw - side.z0[idx]).astype(np.float32)  # distance along the facade (m)
        per, fh = side.win_period[idx], side.floor_h[idx].astype(np.float32)
        wcol = (_fmod(u, per) > (per - side.win_width[idx])) & (u > 0.6) & \
            (u < (side.z1 - side.z0)[idx] - 0.6)
        yin = _fmod(big_y, fh)
        win = wcol & (yin > 0.8) & (yin < 0.8 + side.win_h[idx]) & (big_y > fh) & \
            (big_y < hgt - 0.6)
        win |= side.shop[idx] & (big_y > 0.3) & (big_y < 2.6) & (_fmod(u, 6.0) > 0.5)
        sun = 1.12 if side.sign != w.sun_side else (0.7 if w.shadow < 1 else 0.9)
        base_slots = fr.add_many(side.color)
        glass_slots = fr.add_many(side.glass)
        slot = np.where(win, glass_slots[idx], base_slots[idx])
        shade = np.float32(sun) * (1 + 0.04 * np.sin(u * 2.3)).astype(np.float32)
        shade = np.where(win, 0.75 + 0.5 * yin / fh,
                         np.where((yin < 0.18) & (big_y > 1.0), shade * 0.82, shade))
        fr.put(r0, c0, cover, slot, shade, BUILDING, zc)


def _draw_fences(fr: _Frame, w: _World, cam_z: float) -> None:
    cam = fr.cam
    dx = fr.xc - cam.x_v
    for side in w.sides:
        for fx, z0, z1, fh, spacing, color in side.fences:
            with np.errstate(divide="ignore", invalid="ignore"):
                zc = cam.f * (fx - cam.cam_x) / dx
            zw = zc + cam_z
            valid = (zc > 0.5) & (zw >= z0) & (zw < z1)
            if not valid.any():
                continue
            cols = np.flatnonzero(valid)
            c0, c1 = int(cols[0]), int(cols[-1]) + 1
            zc, zw = zc[c0:c1].astype(np.float32), zw[c0:c1]
            y_top = cam.y_h + cam.f * (cam.hc - fh - 0.1) / zc
            y_bot = cam.y_h + cam.f * cam.hc / zc
            r0 = int(np.clip(np.floor(y_top.min()), 0, cam.H))
            r1 = int(np.clip(np.ceil(y_bot.max()) + 1, 0, cam.H))
            if r1 <= r0:
                continue
            u = zw - z0
            m_per_px = zc / cam.f
            bar_w = np.maximum(0.05, m_per_px)  # at least ~1 px wide
            bars = (_fmod(u, spacing) < bar_w) | (u < 0.1) | (u > (z1 - z0) - 0.1)
            yc = fr.yc[r0:r1, None]
            big_y = cam.hc - (yc - cam.y_h) * m_per_px
            rail_w = np.maximum(0.06, m_per_px)
            rails = (np.abs(big_y - fh) < rail_w) | (np.abs(big_y - 0.15) < rail_w)
            cover = (big_y >= 0) & (big_y <= fh + rail_w) & (bars | rails) & valid[c0:c1] & \
                (zc < fr.depth[r0:r1, c0:c1])
            if cover.any():
                fr.put(r0, c0, cover, fr.add(color), 0.85 + 0.3 * (big_y / fh), FENCE, zc)


# ---- sprites: shapes in metres (u right, v up, origin at the sprite's ground point) ---------
class _Canvas:
    """Rasterises shapes given in metres into a local patch of slots / labels / shade."""

    SHIFT = 4

    def __init__(self, cam: _Camera, x: float, z: float, ops: list[tuple], extent: tuple) -> None:
        umin, umax, vmin, vmax = extent
        self.s = cam.f / z  # pixels per metre at this depth
        self.ax = cam.x_v + cam.f * (x - cam.cam_x) / z
        self.ay = cam.y_h + cam.f * cam.hc / z
        self.x0 = int(np.floor(self.ax + umin * self.s)) - 1
        self.y0 = int(np.floor(self.ay - vmax * self.s)) - 1
        self.w = int(np.ceil((umax - umin) * self.s)) + 3
        self.h = int(np.ceil((vmax - vmin) * self.s)) + 3
        self.ops = ops

    def pts(self, uv: Sequence[tuple[float, float]]) -> np.ndarray:
        k = 1 << self.SHIFT
        ax, ay, s, x0, y0 = self.ax - self.x0, self.ay - self.y0, self.s, self.x0, self.y0
        return np.array([(int(round((ax + u * s) * k)), int(round((ay - v * s) * k)))
                         for u, v in uv], np.int32)

    def render(self, fr: _Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """Draw the ops (later ones on top) → (slots, labels, shade) patches; label 254 = empty.

        Shapes are drawn once, as op numbers 1..n into a uint8 patch; slots and labels follow
        from the op number by table lookup.
        """
        n = len(self.ops)
        if n > 253:
            raise ValueError(f"a sprite may have at most 253 shapes, got {n}")
        ids = np.zeros((self.h, self.w), np.uint8)
        first = len(fr.colors)
        labels = np.full(n + 1, _NONE, np.uint8)
        shade: np.ndarray | float = 1.0
        sh = self.SHIFT
        # transform every anchor point of every shape at once (metres → fixed-point pixels)
        flat: list[tuple[float, float]] = []
        for op in self.ops:
            if op[0] == "poly":
                flat.extend(op[3])
            elif op[0] in ("ellipse", "crown"):
                flat.append(op[3])
            else:
                flat.extend((op[3], op[4]))
        if flat:
            uv = np.array(flat, np.float64)
            k16 = 1 << sh
            pts = np.empty(uv.shape, np.int32)
            np.rint((self.ax - self.x0 + uv[:, 0] * self.s) * k16, out=pts[:, 0], casting="unsafe")
            np.rint((self.ay - self.y0 - uv[:, 1] * self.s) * k16, out=pts[:, 1], casting="unsafe")
            pl = pts.tolist()
        i = 0
        for k, op in enumerate(self.ops, 1):
            kind = op[0]
            fr.add(op[1])
            labels[k] = op[2]
            if kind == "poly":
                m = len(op[3])
                cv2.fillPoly(ids, [pts[i:i + m]], k, cv2.LINE_8, sh)
                i += m
            elif kind == "ellipse":  # center (u, v), radii (ru, rv), thickness m (-1: filled)
                (ru, rv), th = op[4], op[5]
                axes = (max(1, int(round(ru * self.s * (1 << sh)))),
                        max(1, int(round(rv * self.s * (1 << sh)))))
                t = -1 if th < 0 else max(1, int(round(th * self.s)))
                cv2.ellipse(ids, tuple(pl[i]), axes, 0, 0, 360, k, t, cv2.LINE_8, sh)
                i += 1
            elif kind == "line":  # (u0, v0), (u1, v1), width m
                t = max(1, int(round(op[5] * self.s)))
                cv2.line(ids, tuple(pl[i]), tuple(pl[i + 1]), k, t, cv2.LINE_8, sh)
                i += 2
            elif kind == "crown":  # textured foliage blob: (cu, cv), (ru, rv), seed
                if isinstance(shade, float):
                    shade = np.ones((self.h, self.w), np.float32)
                self._crown(ids, shade, k, *op[3:])
                i += 1
            else:
                raise ValueError(f"unknown shape {kind!r}")
        slot = ids.astype(np.uint16)
        slot += np.uint16(first)
        slot -= np.uint16(1)  # op k → colour slot first + k - 1 (uncovered pixels: don't care)
        return slot, labels[ids], shade

    def _crown(self, ids, shade, k, center, radii, seed) -> None:
        (cu, cv_), (ru, rv) = center, radii
        p = self.pts([(cu - ru, cv_ + rv), (cu + ru, cv_ - rv)]) >> self.SHIFT
        px0, py0, px1, py1 = int(p[0, 0]), int(p[0, 1]), int(p[1, 0]) + 1, int(p[1, 1]) + 1
        if px1 - px0 < 2 or py1 - py0 < 2:
            return
        field, tex = _crown_template(seed)
        both = cv2.resize(np.dstack([field, tex]), (px1 - px0, py1 - py0),
                          interpolation=cv2.INTER_LINEAR)
        x0, y0 = max(px0, 0), max(py0, 0)
        x1, y1 = min(px1, self.w), min(py1, self.h)
        both = both[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
        inside = both[..., 0] < 0.85
        ids[y0:y1, x0:x1][inside] = k
        shade[y0:y1, x0:x1][inside] = both[..., 1][inside]


@lru_cache(maxsize=512)
def _crown_template(seed: int, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Foliage of a tree crown on an ``n×n`` grid over the unit ellipse's bounding box:
    ``field < 0.85`` is inside (a lobed, noisy blob with holes), ``tex`` the leaf shading."""
    uv = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    d = uv[None, :] ** 2 + uv[:, None] ** 2
    g = np.random.default_rng(seed)
    lobes = cv2.resize(g.random((5, 5), dtype=np.float32), (n, n), interpolation=cv2.INTER_LINEAR)
    leaves = cv2.resize(g.random((16, 16), dtype=np.float32), (n, n),
                        interpolation=cv2.INTER_LINEAR)
    field = d + 0.7 * (lobes - 0.5) + 0.25 * (leaves - 0.5)
    tex = 0.5 + 0.9 * leaves * (1.1 - 0.4 * np.clip(d, 0, 1))
    return field.astype(np.float32), tex.astype(np.float32)


def _composite(fr: _Frame, canvas: _Canvas, depth: float) -> None:
    cam = fr.cam
    x0, y0 = canvas.x0, canvas.y0
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + canvas.w, cam.W), min(y0 + canvas.h, cam.H)
    if xb <= xa or yb <= ya:
        return
    slot, lab, shade = canvas.render(fr)
    win = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
    lab = lab[win]
    cover = (lab != _NONE) & (fr.depth[ya:yb, xa:xb] > depth)
    fr.put(ya, xa, cover, slot[win], shade if isinstance(shade, float) else shade[win], lab,
           depth)


def _sprite_ops(sp: _Sprite, cam: _Camera, t: float, z: float) -> tuple[list[tuple], tuple]:
    """Draw operations and (umin, umax, vmin, vmax) extent of a sprite at depth ``z``."""
    p = sp.params
    ops: list[tuple] = []
    if sp.kind == "tree":
        ru, rv, th = p["ru"], p["rv"], p["trunk_h"]
        ops.append(("poly", p["trunk"], TREE,
                    [(-p["trunk_w"] / 2, 0), (p["trunk_w"] / 2, 0), (p["trunk_w"] / 3, th + rv),
                     (-p["trunk_w"] / 3, th + rv)]))
        ops.append(("crown", p["green"], TREE, (0.0, th + rv * 0.8), (ru, rv), p["seed"]))
        return ops, (-ru, ru, 0.0, th + 1.8 * rv)
    if sp.kind == "pole":
        h, pw, c = p["height"], p["width"], p["color"]
        ops.append(("poly", c, POLE, [(-pw / 2, 0), (pw / 2, 0), (pw / 2, h), (-pw / 2, h)]))
        umin, umax, vmax = -0.6, 0.6, h + 0.2
        if p["kind"] == "sign":
            s, sh, col = p["sign_size"], p["sign_h"], p["sign_color"]
            sh = min(sh, h - s / 2)
            if p["sign_shape"] == "circle":
                ops.append(("ellipse", (235, 235, 235), SIGN, (0.0, sh), (s / 2, s / 2), -1))
                ops.append(("ellipse", col, SIGN, (0.0, sh), (s * 0.42, s * 0.42), -1))
            elif p["sign_shape"] == "rect":
                ops.append(("poly", col, SIGN, [(-s / 2, sh - s * 0.4), (s / 2, sh - s * 0.4),
                                                (s / 2, sh + s * 0.4), (-s / 2, sh + s * 0.4)]))
                ops.append(("line", (240, 240, 240), SIGN, (-s * 0.3, sh), (s * 0.3, sh), 0.06))
            else:
                ops.append(("poly", (235, 235, 235), SIGN,
                            [(-s / 2, sh - s * 0.4), (s / 2, sh - s * 0.4), (0, sh + s * 0.45)]))
                ops.append(("poly", col, SIGN, [(-s * 0.3, sh - s * 0.27), (s * 0.3, sh - s * 0.27),
                                                (0, sh + s * 0.22)]))
        elif p["kind"] == "light":
            top = h
            ops.append(("poly", (35, 35, 35), SIGN, [(-0.18, top - 0.95), (0.18, top - 0.95),
                                                     (0.18, top), (-0.18, top)]))
            lamp_cols = [(230, 40, 30), (240, 180, 30), (40, 220, 90)]
            for k in range(3):
                col = lamp_cols[k] if k == p["lit"] else (60, 60, 55)
                ops.append(("ellipse", col, SIGN, (0.0, top - 0.17 - 0.3 * k), (0.1, 0.1), -1))
        elif p["kind"] == "lamp":
            d = p["toward_road"] * 1.6
            ops.append(("line", c, POLE, (0.0, h - 0.1), (d, h + 0.15), max(pw * 0.5, 0.05)))
            ops.append(("poly", (200, 200, 180), POLE, [(d - 0.25, h + 0.05), (d + 0.25, h + 0.05),
                                                        (d + 0.2, h + 0.2), (d - 0.2, h + 0.2)]))
            umin, umax, vmax = min(umin, d - 0.3), max(umax, d + 0.3), h + 0.4
        return ops, (umin, umax, 0.0, vmax)
    if sp.kind == "void":
        ww, hh = p["w"], p["h"]
        ops.append(("poly", p["color"], VOID,
                    [(-ww / 2, 0), (ww / 2, 0), (ww / 2, hh), (-ww / 2, hh)]))
        return ops, (-ww / 2, ww / 2, 0.0, hh)
    if sp.kind == "person":
        return _person_ops(p, t), (-0.6, 0.6, 0.0, p["height"] + 0.05)
    if sp.kind == "cyclist":
        return _cyclist_ops(p, t), (-1.1, 1.1, 0.0, 1.9)
    if sp.kind == "car":
        return _car_ops(sp, cam, z)
    raise ValueError(f"unknown sprite kind {sp.kind!r}")


def _person_ops(p: dict, t: float) -> list[tuple]:
    h, side = p["height"], p["view"] == "side"
    ph = p["phase"] + t * 7.0
    hip, sh = h * 0.52, h * 0.82
    stride = (0.28 if side else 0.05) * np.sin(ph)
    tw = 0.16 if side else 0.22
    ops: list[tuple] = []
    for sgn in (-1, 1):  # legs
        fu = sgn * stride + (0.0 if side else sgn * 0.09)
        hu = sgn * (0.02 if side else 0.08)
        ops.append(("line", p["pants"], PEDESTRIAN, (hu, hip), (fu, 0.05), 0.13))
    ops.append(("poly", p["shirt"], PEDESTRIAN, [(-tw * 0.8, hip - 0.05), (tw * 0.8, hip - 0.05),
                                                  (tw, sh), (-tw, sh)]))
    swing = (0.2 if side else 0.04) * np.sin(ph + np.pi)
    for sgn in (-1, 1):  # arms
        su = 0.0 if side else sgn * tw
        ops.append(("line", p["shirt"], PEDESTRIAN, (su, sh - 0.03),
                    (su + sgn * swing + (0 if side else sgn * 0.05), hip - 0.02), 0.09))
    ops.append(("ellipse", p["skin"], PEDESTRIAN, (0.0, h - 0.12), (0.09, 0.12), -1))
    ops.append(("ellipse", p["hair"], PEDESTRIAN, (0.0, h - 0.07), (0.095, 0.07), -1))
    return ops


def _cyclist_ops(p: dict, t: float) -> list[tuple]:
    ph = p["phase"] + t * 6.0
    f = p["facing"]
    ops: list[tuple] = []
    if p["view"] == "side":
        r = 0.34
        for cu in (-0.55, 0.55):
            ops.append(("ellipse", (25, 25, 25), BICYCLIST, (cu, r), (r, r), 0.05))
        ops.append(("line", p["frame"], BICYCLIST, (-0.55, r), (0.0, r + 0.05), 0.04))
        ops.append(("line", p["frame"], BICYCLIST, (0.0, r + 0.05), (0.45 * f, 0.9), 0.04))
        ops.append(("line", p["frame"], BICYCLIST, (-0.1 * f, 0.95), (0.0, r + 0.05), 0.04))
        ops.append(("line", p["frame"], BICYCLIST, (0.45 * f, 0.9), (0.55 * f, r), 0.04))
        seat, shoulder = (-0.1 * f, 1.0), (0.25 * f, 1.5)
        pedal = (0.12 * np.cos(ph), r + 0.05 + 0.15 * np.sin(ph))
        ops.append(("line", p["pants"], BICYCLIST, seat, pedal, 0.12))
        ops.append(("line", p["shirt"], BICYCLIST, seat, shoulder, 0.3))
        ops.append(("line", p["shirt"], BICYCLIST, shoulder, (0.45 * f, 0.95), 0.08))
        ops.append(("ellipse", p["skin"], BICYCLIST, (0.33 * f, 1.72), (0.1, 0.12), -1))
    else:  # seen from behind: wheels are thin vertical ellipses
        ops.append(("ellipse", (25, 25, 25), BICYCLIST, (0.0, 0.34), (0.035, 0.34), -1))
        for sgn in (-1, 1):
            k = 0.12 * np.sin(ph + (0 if sgn < 0 else np.pi))
            ops.append(("line", p["pants"], BICYCLIST, (sgn * 0.1, 0.98),
                        (sgn * 0.12, 0.45 + k), 0.12))
        ops.append(("poly", p["shirt"], BICYCLIST,
                    [(-0.17, 0.95), (0.17, 0.95), (0.22, 1.55), (-0.22, 1.55)]))
        ops.append(("line", p["frame"], BICYCLIST, (-0.3, 1.15), (0.3, 1.15), 0.04))
        ops.append(("ellipse", p["skin"], BICYCLIST, (0.0, 1.7), (0.1, 0.12), -1))
    return ops


def _car_ops(sp: _Sprite, cam: _Camera, z: float) -> tuple[list[tuple], tuple]:
    p = sp.params
    w, h, c = p["w"], p["h"], np.asarray(p["color"], np.float64)
    hb = h * 0.55
    dark = (25, 25, 28)
    glass = tuple(np.clip(c * 0.25 + 30, 0, 255))
    ops: list[tuple] = []
    extent = [-w / 2, w / 2, 0.0, h]
    # side face, visible when the car is off the camera axis (depth z → z + length)
    xrel = sp.x - cam.cam_x
    if abs(xrel) > w / 2:
        sgn = -1.0 if xrel > 0 else 1.0  # the face towards the camera axis
        xs = xrel + sgn * w / 2
        z2 = z + p["length"]

        def far(u_rel: float, v: float) -> tuple[float, float]:  # a point at depth z2
            return (u_rel * z / z2 - xrel, cam.hc - (cam.hc - v) * z / z2)

        near_u = sgn * w / 2
        side_poly = [(near_u, 0.25), far(xs, 0.25), far(xs, hb), far(xs - sgn * 0.15, h * 0.95),
                     (near_u - sgn * 0.15 * 0, h * 0.95), (near_u, hb)]
        ops.append(("poly", tuple(c * 0.72), CAR, side_poly))
        win = [(near_u, hb + 0.05), far(xs, hb + 0.05), far(xs - sgn * 0.1, h * 0.9),
               (near_u, h * 0.9)]
        ops.append(("poly", tuple(np.asarray(glass) * 0.9), CAR, win))
        for zz in (z + 0.7, z2 - 0.7):  # wheels on the side
            uw, vw = (xs * z / zz - xrel, cam.hc - (cam.hc - 0.33) * z / zz)
            r = 0.33 * z / zz
            ops.append(("ellipse", dark, CAR, (uw, vw), (r * 0.35, r), -1))
        us = [pt[0] for pt in side_poly]
        vs = [pt[1] for pt in side_poly]
        extent = [min(extent[0], *us), max(extent[1], *us), min(0.0, *vs), max(h, *vs)]
    # rear / front face
    ops.append(("poly", dark, CAR, [(-w / 2 + 0.05, 0), (-w / 2 + 0.35, 0), (-w / 2 + 0.35, 0.4),
                                    (-w / 2 + 0.05, 0.4)]))
    ops.append(("poly", dark, CAR, [(w / 2 - 0.35, 0), (w / 2 - 0.05, 0), (w / 2 - 0.05, 0.4),
                                    (w / 2 - 0.35, 0.4)]))
    ops.append(("poly", tuple(c), CAR, [(-w / 2, 0.22), (w / 2, 0.22), (w / 2, hb * 0.95),
                                        (w * 0.45, hb), (-w * 0.45, hb), (-w / 2, hb * 0.95)]))
    ops.append(("poly", tuple(c * 0.9), CAR, [(-w * 0.43, hb), (w * 0.43, hb), (w * 0.36, h),
                                              (-w * 0.36, h)]))
    ops.append(("poly", glass, CAR, [(-w * 0.38, hb + 0.05), (w * 0.38, hb + 0.05),
                                     (w * 0.33, h - 0.07), (-w * 0.33, h - 0.07)]))
    ops.append(("poly", dark, CAR, [(-w / 2, 0.22), (w / 2, 0.22), (w / 2, 0.36), (-w / 2, 0.36)]))
    light = (240, 240, 225) if p["front"] else (200, 30, 25)
    for sgn in (-1, 1):
        u0 = sgn * (w / 2 - 0.08)
        ops.append(("poly", light, CAR, [(u0, hb * 0.72), (u0 - sgn * 0.3, hb * 0.72),
                                         (u0 - sgn * 0.3, hb * 0.88), (u0, hb * 0.88)]))
    ops.append(("poly", (220, 220, 220), CAR, [(-0.25, 0.42), (0.25, 0.42), (0.25, 0.55),
                                               (-0.25, 0.55)]))  # number plate
    return ops, tuple(extent)  # type: ignore[return-value]


def _op_size(op: tuple) -> float:
    """Largest extent of a shape in metres (shapes under ~1 px are skipped when drawing)."""
    kind = op[0]
    if kind == "poly":
        us = [p[0] for p in op[3]]
        vs = [p[1] for p in op[3]]
        return max(max(us) - min(us), max(vs) - min(vs))
    if kind == "line":
        (u0, v0), (u1, v1) = op[3], op[4]
        return max(abs(u1 - u0), abs(v1 - v0), op[5])
    if kind in ("ellipse", "crown"):
        return 2 * max(op[4])
    return float("inf")


def _sprite_shadow(fr: _Frame, sp: _Sprite, z: float) -> None:
    """A soft dark ellipse on the ground under cars, people and cyclists."""
    cam = fr.cam
    half = {"car": sp.params.get("w", 1.8) * 0.6, "person": 0.35, "cyclist": 0.45}[sp.kind]
    depth = sp.params.get("length", 0.8) if sp.kind != "person" else 0.5
    s = cam.f / z
    cx = cam.x_v + cam.f * (sp.x - cam.cam_x) / z
    y_near = cam.y_h + cam.f * cam.hc / z
    y_far = cam.y_h + cam.f * cam.hc / (z + depth)
    cy, ry = 0.5 * (y_near + y_far), max(1.0, 0.5 * (y_near - y_far) + 0.08 * s)
    rx = max(1.0, half * s)
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, cam.W)
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, cam.H)
    if x1 <= x0 or y1 <= y0:
        return
    dx = (fr.xc[x0:x1] - cx) / rx
    dy = (fr.yc[y0:y1] - cy) / ry
    a = np.clip(1.2 - (dx[None, :] ** 2 + dy[:, None] ** 2), 0, 1) * 0.55
    lab = fr.lab[y0:y1, x0:x1]
    fr.shade[y0:y1, x0:x1] *= 1 - a * ((lab == ROAD) | (lab == SIDEWALK))


_NOISE_LUT = None


def _gauss_lut() -> np.ndarray:
    """256 standard-normal quantiles: uint8 uniform noise → Gaussian noise by table lookup
    (luminance noise, the same on the three channels)."""
    global _NOISE_LUT
    if _NOISE_LUT is None:
        from statistics import NormalDist

        nd = NormalDist()
        _NOISE_LUT = np.array([nd.inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)
    return _NOISE_LUT


def _render(world: _World, size: tuple[int, int], cam_z: float, t: float,
            noise_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    H, W = size
    k = world.camera_kw
    cam = _Camera(H=H, W=W, f=k["f_rel"] * W, hc=k["hc"], y_h=k["y_h_rel"] * H,
                  x_v=k["x_v_rel"] * W, cam_x=k["cam_x_rel"] * world.road_half)
    fr = _Frame(cam)
    _draw_sky(fr, world)
    _draw_ground(fr, world, cam_z)
    _draw_facades(fr, world, cam_z, z_far=300.0)
    _draw_fences(fr, world, cam_z)
    # sprites at their current depth; behind the camera, too close or under ~3 px: culled
    visible = []
    for sp in world.sprites:
        z = sp.z + sp.vz * t - cam_z
        if 2.0 < z < 150.0 and cam.f * 1.6 / z >= 4.0:
            visible.append((z, sp))
    for z, sp in visible:
        if sp.kind in ("car", "person", "cyclist"):
            _sprite_shadow(fr, sp, z)
    for z, sp in visible:
        ops, extent = _sprite_ops(sp, cam, t, z)
        ops = [op for op in ops if _op_size(op) * (cam.f / z) >= 1.0]  # level of detail
        _composite(fr, _Canvas(cam, sp.x, z, ops, extent), z)
    # colour = palette[slot] · shade, hazed towards the horizon colour, blurred, plus sensor
    # noise — done channel by channel on 2-D arrays (cheaper than H×W×3 temporaries)
    pal = np.asarray(fr.colors, np.float32).reshape(-1, 3)
    pal *= np.asarray(world.tint, np.float32) * np.float32(world.gain)
    d = fr.depth / np.float32(world.fog)
    haze = 1 - 1 / (1 + d + 0.5 * d * d)  # ≈ 1 - exp(-depth / fog)
    haze[fr.depth >= FAR] = 0
    keep = fr.shade * (1 - haze)
    horizon = np.asarray(world.sky_horizon, np.float32) * np.float32(world.gain)
    noise = np.take(_gauss_lut() * np.float32(world.noise),
                    noise_rng.integers(0, 256, (H, W), dtype=np.uint8))
    noise += np.float32(0.5)  # rounding offset for the final truncation
    chans = []
    for c in range(3):
        ch = np.take(pal[:, c], fr.slot)
        ch *= keep
        ch += horizon[c] * haze
        if world.blur == "gauss":
            ch = cv2.GaussianBlur(ch, (0, 0), world.blur_amount)
        elif world.blur == "motion":
            n = max(3, int(round(world.blur_amount * 6)) | 1)
            ch = cv2.blur(ch, (n, 1))
        ch += noise
        chans.append(ch)
    img = cv2.merge(chans)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8), fr.lab


# --------------------------------------------------------------------------- public API
def render_scene(seed: int,
                 size: int | Sequence[int] = (360, 480)) -> tuple[np.ndarray, np.ndarray]:
    """Render one random street scene.

    Args:
        seed: any non-negative int; the same seed gives the same scene (bit-exact).
        size: ``(H, W)`` or one int.
    Returns:
        ``image``: uint8 ``H×W×3`` RGB; ``mask``: uint8 ``H×W`` CamVid train ids
        ``[0, 11)`` plus 255 for unlabelled clutter.
    """
    H, W = as_hw(size)
    if H < 8 or W < 8:
        raise ValueError(f"render_scene: size must be at least 8×8, got {(H, W)}")
    ss = np.random.SeedSequence(int(seed))
    world_rng, noise_rng = (np.random.default_rng(s) for s in ss.spawn(2))
    world = _make_world(world_rng, 0.0, 110.0)
    return _render(world, (H, W), cam_z=0.0, t=0.0, noise_rng=noise_rng)


def _scene_seed(seed: int, split: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), split, index]).generate_state(1)[0])


def _classes_yaml() -> str:
    lines = ["# CamVid 11-class label space (synthetic street scenes)",
             "names: [" + ", ".join(CAMVID_CLASSES.names) + "]", "palette:"]
    lines += [f"  - [{r}, {g}, {b}]" for r, g, b in CAMVID_CLASSES.palette]
    lines.append(f"ignore_index: {CAMVID_CLASSES.ignore_index}")
    return "\n".join(lines) + "\n"


def _imwrite(path: Path, arr: np.ndarray) -> None:
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), arr, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f"could not write {path}")


def _replace_dir(tmp: Path, dst: Path) -> None:
    """Move the finished ``tmp`` folder onto ``dst`` (replacing an old one) by renames."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if old.exists():  # left over by a crash
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_synthetic_dataset(root: str | os.PathLike, n_train: int = 300, n_val: int = 60,
                            size: int | Sequence[int] = (360, 480), seed: int = 0,
                            progress: bool = False) -> dict[str, Any]:
    """Write ``n_train`` + ``n_val`` scenes in the ``folder`` layout, atomically::

        root/images/{train,val}/000000.png  root/masks/{train,val}/000000.png
        root/classes.yaml  root/summary.json

    Everything is written to a temporary sibling folder that is renamed onto ``root`` at the
    end (an existing ``root`` is replaced). Returns the summary (also in ``summary.json``):
    counts, size, seed, class names and per-split class pixel frequencies.
    """
    if n_train < 0 or n_val < 0 or n_train + n_val == 0:
        raise ValueError(f"write_synthetic_dataset: need n_train, n_val >= 0 and at least one "
                         f"scene, got n_train={n_train}, n_val={n_val}")
    H, W = as_hw(size)
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        freqs: dict[str, list[float]] = {}
        ignore: dict[str, float] = {}
        for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "masks" / split).mkdir(parents=True)
            counts = np.zeros(256, np.int64)
            it = range(n)
            if progress:
                from tqdm import tqdm

                it = tqdm(it, desc=f"synthetic {split}")
            for i in it:
                image, mask = render_scene(_scene_seed(seed, split_id, i), (H, W))
                _imwrite(tmp / "images" / split / f"{i:06d}.png", image)
                _imwrite(tmp / "masks" / split / f"{i:06d}.png", mask)
                counts += np.bincount(mask.ravel(), minlength=256)
            labelled = max(int(counts[:NUM_CLASSES].sum()), 1)
            freqs[split] = [round(float(c) / labelled, 6) for c in counts[:NUM_CLASSES]]
            ignore[split] = round(float(counts[255]) / max(int(counts.sum()), 1), 6)
        summary = {"n_train": n_train, "n_val": n_val, "size": [H, W], "seed": int(seed),
                   "classes": list(CAMVID_CLASSES.names), "class_pixel_frequency": freqs,
                   "ignore_fraction": ignore}
        write_text_atomic(tmp / "classes.yaml", _classes_yaml())
        write_json_atomic(tmp / "summary.json", summary)
        _replace_dir(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return summary


def write_synthetic_video(video_path: str | os.PathLike, masks_dir: str | os.PathLike | None,
                          n_frames: int, size: int | Sequence[int] = (360, 480), seed: int = 0,
                          fps: float = 15.0, *, images_dir: str | os.PathLike | None = None,
                          speed: float = 8.0) -> dict[str, Any]:
    """Write a clip of one moving street: the camera drives forward at ``speed`` m/s, traffic,
    cyclists and pedestrians move, lighting stays fixed.

    Writes ``video_path`` (mp4, ``mp4v`` codec, BGR frames via ``cv2.VideoWriter``), per-frame
    label masks ``masks_dir/frame_000000.png ...`` and, when ``images_dir`` is given, lossless
    PNG frames ``images_dir/frame_000000.png ...``. Each output is written atomically (temp file
    / temp folder, then rename). ``video_path=None`` skips the mp4. Returns a summary dict.
    """
    if n_frames < 1:
        raise ValueError(f"write_synthetic_video: n_frames must be >= 1, got {n_frames}")
    if fps <= 0:
        raise ValueError(f"write_synthetic_video: fps must be > 0, got {fps}")
    H, W = as_hw(size)
    ss = np.random.SeedSequence(int(seed))
    world_rng, noise_seq = ss.spawn(2)
    duration = n_frames / fps
    world = _make_world(np.random.default_rng(world_rng), 0.0, 110.0 + speed * duration,
                        cam_speed=speed)
    noise_seeds = noise_seq.spawn(n_frames)

    outs: dict[str, tuple[Path, Path]] = {}  # kind → (temporary folder, final folder)
    counts = np.zeros(256, np.int64)
    try:
        for kind, d in (("masks", masks_dir), ("images", images_dir)):
            if d is not None:
                d = Path(d)
                d.parent.mkdir(parents=True, exist_ok=True)
                outs[kind] = (Path(tempfile.mkdtemp(prefix=f".{d.name}.tmp-", dir=d.parent)), d)
        with ExitStack() as stack:
            writer = None
            if video_path is not None:
                tmp_video = stack.enter_context(atomic_path(video_path))  # renamed on success
                writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"),
                                         float(fps), (W, H))
                if not writer.isOpened():
                    raise OSError(f"cv2.VideoWriter could not open {video_path} (mp4v codec)")
                stack.callback(writer.release)  # LIFO: released before the rename
            for i in range(n_frames):
                t = i / fps
                image, mask = _render(world, (H, W), cam_z=speed * t, t=t,
                                      noise_rng=np.random.default_rng(noise_seeds[i]))
                counts += np.bincount(mask.ravel(), minlength=256)
                if writer is not None:
                    writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                if "masks" in outs:
                    _imwrite(outs["masks"][0] / f"frame_{i:06d}.png", mask)
                if "images" in outs:
                    _imwrite(outs["images"][0] / f"frame_{i:06d}.png", image)
        for tmp, dst in outs.values():
            _replace_dir(tmp, dst)
    finally:
        for tmp, _ in outs.values():
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    labelled = max(int(counts[:NUM_CLASSES].sum()), 1)
    return {"video": None if video_path is None else str(video_path),
            "masks_dir": None if masks_dir is None else str(masks_dir),
            "images_dir": None if images_dir is None else str(images_dir),
            "n_frames": n_frames, "fps": float(fps), "size": [H, W], "seed": int(seed),
            "speed_mps": speed,
            "class_pixel_frequency": [round(float(c) / labelled, 6) for c in counts[:NUM_CLASSES]]}
