"""The world model of a synthetic street scene: camera, street sides, sprites, and the random
draws that build one (:func:`_make_world`). Class ids are CamVid's (:data:`rdd.spec.CAMVID_CLASSES`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rdd.spec import CAMVID_CLASSES

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
    out = (min(255.0, max(0.0, float(b) * k + (float(e) - 0.5) * amount * 140)) for b, e in zip(base, r[1:]))
    return tuple(out)  # type: ignore[return-value]


# colour families deliberately overlap between classes
_GREYS = [(95, 95, 98), (120, 118, 115), (140, 138, 135), (165, 162, 158), (185, 183, 180)]
_FACADES = _GREYS + [
    (170, 150, 120),
    (150, 90, 70),
    (190, 170, 140),
    (120, 100, 90),
    (200, 195, 185),
    (140, 120, 130),
    (110, 115, 125),
]
_CAR_COLORS = [
    (180, 182, 185),
    (40, 40, 45),
    (230, 230, 232),
    (150, 30, 30),
    (30, 50, 120),
    (110, 112, 115),
    (70, 90, 60),
    (200, 170, 60),
    (90, 90, 95),
    (130, 120, 100),
]
_CLOTHES = [
    (30, 30, 35),
    (60, 60, 70),
    (110, 110, 115),
    (40, 50, 90),
    (140, 40, 40),
    (180, 170, 150),
    (70, 90, 60),
    (200, 200, 200),
    (90, 70, 50),
    (50, 80, 130),
]
_SKIN = [(230, 190, 160), (200, 150, 120), (150, 100, 70), (100, 70, 50)]


def _make_side(rng: np.random.Generator, sign: int, road_half: float, z_lo: float, z_hi: float) -> _Side:
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
    colors = np.array([_jitter_color(rng, _FACADES[i], 0.12) for i in rng.integers(0, len(_FACADES), n)])
    glass_base = np.array(
        [[40, 50, 60], [70, 85, 100], [110, 130, 150], [30, 30, 35], [150, 160, 170]], np.float64
    )
    glass = glass_base[rng.integers(0, len(glass_base), n)] * rng.uniform(0.8, 1.2, (n, 1))
    period = rng.uniform(1.8, 3.5, n)
    return _Side(
        sign=sign,
        facade_x=facade_x,
        sidewalk=sidewalk,
        z0=np.array(z0s),
        z1=np.array(z1s),
        height=rng.uniform(5, 32, n),
        color=colors,
        glass=glass,
        win_period=period,
        win_width=period * rng.uniform(0.3, 0.65, n),
        floor_h=rng.uniform(2.8, 3.8, n),
        win_h=rng.uniform(1.0, 1.9, n),
        shop=rng.random(n) < 0.4,
    )


def _make_world(gen: np.random.Generator, z_lo: float, z_hi: float, *, cam_speed: float = 0.0) -> _World:
    """Random street with objects at depths ``[z_lo, z_hi]`` (metres, world frame)."""
    rng: Any = _Rand(gen)
    road_half = _u(rng, 3.0, 6.5)
    sides = (
        _make_side(rng, -1, road_half, z_lo, z_hi + 200.0),
        _make_side(rng, +1, road_half, z_lo, z_hi + 200.0),
    )
    sprites: list[_Sprite] = []
    span = z_hi - z_lo

    def place(n: int, lo: float = 4.0) -> np.ndarray:
        return np.sort(rng.uniform(z_lo + lo, z_hi, n))

    # fences along kerbs or facades
    for side in sides:
        for _ in range(_pick(rng, (0, 1, 1, 2, 2))):
            z0 = _u(rng, z_lo + 2, z_lo + 0.5 * span)
            fx = road_half + (0.3 if rng.random() < 0.5 else side.sidewalk * _u(rng, 0.6, 0.95))
            side.fences.append(
                (
                    fx * side.sign,
                    z0,
                    z0 + _u(rng, 10, 60),
                    _u(rng, 0.9, 2.0),
                    _u(rng, 0.1, 0.3),
                    _jitter_color(
                        rng,
                        [(90, 90, 95), (120, 100, 80), (70, 100, 70), (150, 150, 150)][rng.integers(4)],
                        0.15,
                    ),
                )
            )
    density = span / 100.0
    for side in sides:
        s = side.sign
        # trees
        for z in place(int(rng.integers(1, 9) * density) + 1):
            x = s * (road_half + side.sidewalk * _u(rng, 0.4, 0.85))
            ru = _u(rng, 1.4, 3.5)
            sprites.append(
                _Sprite(
                    "tree",
                    x,
                    float(z),
                    params=dict(
                        trunk_h=_u(rng, 2.0, 4.0),
                        trunk_w=_u(rng, 0.2, 0.45),
                        ru=ru,
                        rv=ru * _u(rng, 0.9, 1.4),
                        seed=int(rng.integers(2**31)),
                        green=_jitter_color(
                            rng,
                            [(60, 110, 40), (80, 120, 50), (50, 80, 40), (120, 120, 60), (90, 100, 70)][
                                rng.integers(5)
                            ],
                            0.2,
                        ),
                        trunk=_jitter_color(rng, (80, 65, 50), 0.2),
                    ),
                )
            )
        # poles, some with signs, traffic lights or lamp arms
        for z in place(int(rng.integers(1, 6) * density) + 1):
            x = s * (road_half + _u(rng, 0.3, 0.8))
            kind = _pick(rng, ("plain", "sign", "sign", "sign", "light", "light", "lamp"))
            sprites.append(
                _Sprite(
                    "pole",
                    x,
                    float(z),
                    params=dict(
                        height=_u(rng, 3.0, 8.0),
                        width=_u(rng, 0.08, 0.25),
                        kind=str(kind),
                        color=_jitter_color(
                            rng,
                            [(110, 110, 110), (60, 65, 60), (150, 150, 145), (80, 70, 60)][rng.integers(4)],
                            0.15,
                        ),
                        sign_shape=_pick(rng, ("circle", "rect", "triangle")),
                        sign_color=[
                            (200, 30, 30),
                            (30, 70, 170),
                            (230, 230, 230),
                            (220, 190, 40),
                            (40, 130, 60),
                        ][rng.integers(5)],
                        sign_h=_u(rng, 2.0, 3.0),
                        sign_size=_u(rng, 0.6, 1.1),
                        lit=int(rng.integers(3)),
                        toward_road=-s,
                    ),
                )
            )
        # pedestrians on the sidewalk
        for z in place(int(rng.integers(0, 5) * density) + 1):
            x = s * (road_half + side.sidewalk * _u(rng, 0.2, 0.8))
            sprites.append(_person(rng, x, float(z), view="front", vz=_u(rng, -1.5, 1.5)))
        # unlabelled clutter (bins, boxes, bollards)
        for z in place(int(rng.integers(0, 3) * density)):
            x = s * (road_half + side.sidewalk * _u(rng, 0.3, 0.95))
            sprites.append(
                _Sprite(
                    "void",
                    x,
                    float(z),
                    params=dict(
                        w=_u(rng, 0.4, 1.2),
                        h=_u(rng, 0.5, 1.3),
                        color=_jitter_color(rng, _GREYS[rng.integers(len(_GREYS))], 0.3),
                    ),
                )
            )
        # parked cars along the kerb
        for z in place(int(rng.integers(0, 4) * density)):
            sprites.append(_car(rng, s * (road_half - _u(rng, 0.9, 1.2)), float(z), front=s < 0, vz=0.0))
    # traffic in the lanes: same direction (right lane, rear view), oncoming (left, front view)
    for z in place(int(rng.integers(1, 5) * density) + 1, lo=6.0):
        sprites.append(
            _car(rng, road_half * _u(rng, 0.35, 0.6), float(z), front=False, vz=cam_speed * _u(rng, 0.8, 1.2))
        )
    for z in place(int(rng.integers(0, 4) * density), lo=6.0):
        sprites.append(
            _car(
                rng,
                -road_half * _u(rng, 0.35, 0.6),
                float(z),
                front=True,
                vz=-_u(rng, 5, 12) if cam_speed else 0.0,
            )
        )
    # cyclists near the kerb (rear view) and crossing (side view)
    for z in place(int(rng.integers(1, 4) * density) + 1, lo=5.0):
        s = _pick(rng, (-1, 1))
        sprites.append(
            _cyclist(
                rng,
                float(s) * road_half * _u(rng, 0.6, 0.9),
                float(z),
                view="rear",
                vz=float(s) * _u(rng, 3, 6) if cam_speed else 0.0,
            )
        )
    if rng.random() < 0.5:
        sprites.append(_cyclist(rng, _u(rng, -road_half, road_half), _u(rng, 8, 30), view="side", vz=0.0))
    # at least one pedestrian and one cyclist close enough to be clearly visible (per 60 m of
    # street, so that long video clips keep meeting them)
    for k in range(max(1, int(span // 60))):
        side = _pick(rng, (-1, 1))
        z = z_lo + 60 * k
        sprites.append(
            _person(
                rng,
                side * (road_half + _u(rng, 0.5, 2.0)),
                z + _u(rng, 6, 25),
                view="front",
                vz=_u(rng, -1.5, 1.5),
            )
        )
        sprites.append(
            _cyclist(
                rng,
                side * road_half * _u(rng, 0.6, 0.9),
                z + _u(rng, 6, 25),
                view="rear",
                vz=side * _u(rng, 3, 6) if cam_speed else 0.0,
            )
        )
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
        road_half=road_half,
        sides=sides,
        sprites=sprites,
        sky_top=sky_top,
        sky_horizon=sky_hor,
        clouds=_u(rng, 0, 0.6) if not overcast else _u(rng, 0, 0.2),
        cloud_seed=int(rng.integers(2**31)),
        road_color=_jitter_color(rng, (road_grey, road_grey * 0.98, road_grey * 1.02), 0.05),
        sidewalk_color=_jitter_color(rng, (road_grey + _u(rng, -10, 60),) * 3, 0.08),
        marking_color=_jitter_color(rng, (225, 225, 215), 0.05),
        crosswalks=crosswalks,
        skyline_seed=int(rng.integers(2**31)),
        gain=_u(rng, 0.6, 1.25),
        tint=tint,  # type: ignore
        sun_side=_pick(rng, (-1, 1)),
        sun_k=_u(rng, 0.15, 0.8),
        shadow=_u(rng, 0.45, 0.8) if rng.random() < 0.7 else 1.0,
        fog=_u(rng, 120, 700),
        noise=_u(rng, 1.0, 6.0),
        blur=blur,
        blur_amount=_u(rng, 0.4, 1.2),
        camera_kw=dict(
            f_rel=_u(rng, 0.55, 0.85),
            hc=_u(rng, 1.2, 1.9),
            y_h_rel=_u(rng, 0.36, 0.5),
            x_v_rel=_u(rng, 0.4, 0.6),
            cam_x_rel=_u(rng, 0.15, 0.55),
        ),
    )


def _person(rng: np.random.Generator, x: float, z: float, *, view: str, vz: float) -> _Sprite:
    return _Sprite(
        "person",
        x,
        z,
        vz=vz,
        params=dict(
            height=_u(rng, 1.45, 1.95),
            view=view,
            phase=_u(rng, 0, 2 * np.pi),
            shirt=_jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 0.15),
            pants=_jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 0.15),
            skin=_jitter_color(rng, _SKIN[rng.integers(len(_SKIN))], 0.1),
            hair=_jitter_color(rng, (50, 40, 30), 0.4),
            facing=float(_pick(rng, (-1, 1))),
        ),
    )


def _car(rng: np.random.Generator, x: float, z: float, *, front: bool, vz: float) -> _Sprite:
    return _Sprite(
        "car",
        x,
        z,
        vz=vz,
        params=dict(
            w=_u(rng, 1.65, 2.0),
            h=_u(rng, 1.35, 1.9),
            length=_u(rng, 3.8, 5.0),
            front=front,
            color=_jitter_color(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.1),
        ),
    )


def _cyclist(rng: np.random.Generator, x: float, z: float, *, view: str, vz: float) -> _Sprite:
    return _Sprite(
        "cyclist",
        x,
        z,
        vz=vz,
        params=dict(
            view=view,
            phase=_u(rng, 0, 2 * np.pi),
            facing=float(_pick(rng, (-1, 1))),
            shirt=_jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 0.15),
            pants=_jitter_color(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 0.15),
            skin=_jitter_color(rng, _SKIN[rng.integers(len(_SKIN))], 0.1),
            frame=_jitter_color(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.1),
        ),
    )
