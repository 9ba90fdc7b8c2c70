"""A deterministic procedural dataset in the layout of the recycling-waste segmentation competition.

Why: tests, tutorials and smoke runs need data that is instant to make, free of licences and byte-identical for a
seed, yet exercises what the real data does: 10 categories with a rare one (Battery), overlapping objects, tiny
and thin objects, multi-part polygons, compressed and uncompressed RLE, batch folders and a test split without
annotations. Each class has its own shape, colour and texture statistics, so a small CNN can learn it.

Pixel convention: a consumer rasterises an image's annotations sorted by area, largest first, so smaller objects
overwrite larger ones. Objects are drawn in that same order, each through the very mask pycocotools makes of its
stored segmentation, so labels and pixels agree exactly.
"""

from __future__ import annotations

import colorsys
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from trashseg.config import RECYCLING_CLASSES
from trashseg.fileio import atomic_write_text, atomic_write_with

CATEGORY_NAMES: tuple[str, ...] = RECYCLING_CLASSES[1:]  # the competition's categories: no background
CATEGORIES: list[dict] = [{"id": i, "name": name, "supercategory": name} for i, name in enumerate(CATEGORY_NAMES, 1)]
SPLITS: tuple[str, ...] = ("train", "val", "test")
BATCH_DIRS: tuple[str, ...] = ("batch_01_vt", "batch_02_vt", "batch_03")
RARE_CLASS = "Battery"
COMMON_CLASSES: tuple[str, ...] = tuple(name for name in CATEGORY_NAMES if name != RARE_CLASS)
MIN_OBJECTS, MAX_OBJECTS = 2, 7
MIN_SIZE = 64
JPEG_QUALITY = 92
BATTERY_RATE = 0.08  # per image: the rare class of the competition
TEAR_RATE, TEARABLE = 0.3, frozenset({"Paper", "Clothing"})
TINY_RATE, TINY_OK = 0.1, frozenset({"General trash", "Metal", "Glass", "Plastic", "Styrofoam"})
ENCODING_WEIGHTS: dict[str, float] = {"polygon": 0.92, "rle": 0.06, "rle_uncompressed": 0.02}
MIN_AREA = 12  # pixels: an object smaller than this after clipping is redrawn
MIN_PART_AREA = 4.0  # px²: slivers left by clipping or tearing are dropped
MAX_TRIES = 8


@dataclass(frozen=True)
class _Request:
    """What the planner wants in an image; flags are fixed up front so forced cases are guaranteed."""

    category: str
    tear: bool = False
    tiny: bool = False
    encoding: str = "polygon"


@dataclass(frozen=True)
class _Draft:
    """A painted object before clipping: outline parts in image coordinates and its full-frame look."""

    parts: list[np.ndarray]
    texture: np.ndarray  # (S, S, 3) float32 RGB in [0, 1]
    opacity: float | np.ndarray = 1.0  # < 1 blends with what lies beneath (glass, bags)


@dataclass(frozen=True)
class _Placed:
    """An accepted object: the polygons as stored and the mask a consumer will rasterise from them."""

    request: _Request
    polygons: list[list[float]]
    mask: np.ndarray  # (S, S) uint8, Fortran order, from pycocotools
    area: int
    bbox: list[float]
    draft: _Draft


@dataclass(frozen=True)
class _Frame:
    """Pixel coordinate grids of one image size, built once and shared by every texture."""

    size: int
    xx: np.ndarray
    yy: np.ndarray

    @classmethod
    def of(cls, size: int) -> _Frame:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        return cls(size, xx, yy)

    @property
    def scale(self) -> float:
        """Pixel lengths are tuned at 256 px; this keeps patterns proportionate at other sizes."""
        return self.size / 256

    def local(self, centre: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) in an object's own rotated axes, so its texture turns with its outline."""
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = self.xx - centre[0], self.yy - centre[1]
        return dx * c + dy * s, dy * c - dx * s


# ---------------------------------------------------------------- geometry


def _place(local: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    """Rotate local (u, v) points by `angle` and move them to `centre` (inverse of `_Frame.local`)."""
    c, s = np.cos(angle), np.sin(angle)
    return local @ np.array([[c, s], [-s, c]]) + centre


def _rect(w: float, h: float) -> np.ndarray:
    return np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])


def _rounded_rect(w: float, h: float, r: float, n_arc: int = 5) -> np.ndarray:
    """Cans, jars and batteries: a rectangle whose corners are quarter circles of radius `r`."""
    r = min(r, w / 2, h / 2)
    centres = [(w / 2 - r, h / 2 - r), (-w / 2 + r, h / 2 - r), (-w / 2 + r, -h / 2 + r), (w / 2 - r, -h / 2 + r)]
    arcs = []
    for k, (cx, cy) in enumerate(centres):
        t = np.linspace(k * np.pi / 2, (k + 1) * np.pi / 2, n_arc)
        arcs.append(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1))
    return np.concatenate(arcs)


def _wobbly(rng: np.random.Generator, n: int, roughness: float, harmonics: int, jag: float = 0.0) -> np.ndarray:
    """A closed star-shaped outline of radius ~1: low harmonics bend it, `jag` adds per-vertex spikes."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    k = np.arange(1, harmonics + 1)[:, None]
    amp = roughness * rng.uniform(0, 1, (harmonics, 1)) / np.sqrt(k)
    phase = rng.uniform(0, 2 * np.pi, (harmonics, 1))
    r = 1 + (amp * np.cos(k * theta + phase)).sum(0) + jag * rng.uniform(-1, 1, n)
    r = np.clip(r, 0.35, None)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], 1)


def _strip(rng: np.random.Generator, length: float, width: float) -> np.ndarray:
    """A long band a few pixels wide (wire, strap): both offsets of a gently bent centre line."""
    t = np.linspace(-0.5, 0.5, 28)
    bend = rng.uniform(-0.2, 0.2) * length * (1 - 4 * t**2)
    wave = rng.uniform(-0.05, 0.05) * length * np.sin(2 * np.pi * t * rng.uniform(1, 2.5))
    centre = np.stack([t * length, bend + wave], 1)
    tangent = np.gradient(centre, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1) / np.linalg.norm(tangent, axis=1, keepdims=True)
    return np.concatenate([centre + normal * width / 2, (centre - normal * width / 2)[::-1]])


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _clip_half_plane(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Sutherland–Hodgman step: the part of `poly` where p·normal <= offset (for tearing and image bounds)."""
    d = poly @ normal - offset
    out = []
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if d[i] <= 0:
            out.append(poly[i])
        if d[i] * d[j] < 0:
            out.append(poly[i] + d[i] / (d[i] - d[j]) * (poly[j] - poly[i]))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def _clip_to_image(poly: np.ndarray, size: int) -> np.ndarray:
    """Objects may run off the edge; the stored polygon never does."""
    hi = size - 1
    for normal, offset in (((1, 0), hi), ((-1, 0), 0), ((0, 1), hi), ((0, -1), 0)):
        if len(poly) < 3:
            break
        poly = _clip_half_plane(poly, np.array(normal, dtype=np.float64), offset)
    return poly


def _shrink(rng: np.random.Generator, parts: list[np.ndarray]) -> list[np.ndarray]:
    """A fragment of a few dozen pixels: scale about the centre so position and look are kept."""
    pivot = np.concatenate(parts).mean(0)
    factor = np.sqrt(rng.uniform(25, 80) / sum(_polygon_area(p) for p in parts))
    return [pivot + (p - pivot) * factor for p in parts]


def _tear(rng: np.random.Generator, parts: list[np.ndarray], frame: _Frame) -> list[np.ndarray]:
    """Cut along a random line with a gap: a torn sheet, or cloth with something thin lying across it."""
    angle = rng.uniform(0, np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])
    extent = np.sqrt(sum(_polygon_area(p) for p in parts))
    offset = float(np.concatenate(parts).mean(0) @ normal) + rng.uniform(-0.15, 0.15) * extent
    half_gap = rng.uniform(1.5, 4.0) * frame.scale
    return [
        piece
        for p in parts
        for piece in (_clip_half_plane(p, normal, offset - half_gap), _clip_half_plane(p, -normal, -offset - half_gap))
    ]


def _coco_polygons(parts: list[np.ndarray], size: int) -> list[list[float]]:
    """Clip each part to the image, drop slivers, flatten to [x1, y1, ...] rounded to 0.1 px."""
    clipped = [_clip_to_image(p, size) for p in parts]
    return [
        [round(float(c), 1) for c in p.ravel()] for p in clipped if len(p) >= 3 and _polygon_area(p) >= MIN_PART_AREA
    ]


# ---------------------------------------------------------------- colour and texture helpers


def _jitter(rng: np.random.Generator, rgb: tuple[float, float, float], spread: float) -> np.ndarray:
    """Per-instance colour variation inside a class's range: classes overlap a little but stay separable."""
    return np.clip(np.asarray(rgb) + rng.normal(0, spread, 3), 0, 1).astype(np.float32)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, frame: _Frame, cells: int) -> np.ndarray:
    """Value noise in [0, 1] with features about size/cells px: folds, uneven light, beads."""
    grid = rng.random((max(cells, 2), max(cells, 2)), dtype=np.float32)
    return np.clip(cv2.resize(grid, (frame.size, frame.size), interpolation=cv2.INTER_CUBIC), 0, 1)


def _shade(rng: np.random.Generator, frame: _Frame, cells: int, amount: float) -> np.ndarray:
    """Multiplicative low-frequency shading around 1 so no class is a flat colour."""
    return 1 + amount * (2 * _smooth_noise(rng, frame, cells) - 1)


def _colour(rgb: np.ndarray, shade: np.ndarray) -> np.ndarray:
    return np.clip(rgb[None, None, :] * shade[..., None], 0, 1).astype(np.float32)


def _mix(a: np.ndarray, b: np.ndarray | np.floating, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend by weight `t` (S, S) in [0, 1]; `a` and `b` are textures or single colours."""
    return (a * (1 - t[..., None]) + b * t[..., None]).astype(np.float32)


def _random_centre(rng: np.random.Generator, frame: _Frame, margin: float = 0.12) -> np.ndarray:
    return rng.uniform(margin, 1 - margin, 2) * frame.size


# ---------------------------------------------------------------- one painter per class


def _paint_general_trash(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """Dark, jagged and busy with mixed colour patches: the catch-all class looks like nothing specific."""
    centre, angle = _random_centre(rng, frame), rng.uniform(0, 2 * np.pi)
    radius = rng.uniform(0.07, 0.17) * frame.size
    outline = _wobbly(rng, int(rng.integers(9, 16)), 0.3, 3, jag=0.25) * [radius, radius * rng.uniform(0.6, 1)]
    cells = max(2, int(frame.size / (radius / 2.5)))
    patches = cv2.resize(
        rng.random((cells, cells, 3), dtype=np.float32), (frame.size, frame.size), interpolation=cv2.INTER_NEAREST
    )
    base = _jitter(rng, (0.2, 0.18, 0.16), 0.04)
    texture = (0.5 * base + 0.45 * patches) * _shade(rng, frame, 12, 0.25)[..., None]
    return _Draft([_place(outline, centre, angle)], np.clip(texture, 0, 1).astype(np.float32))


def _paint_paper(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """A light sheet with ruled or printed lines that follow its orientation."""
    centre, angle = _random_centre(rng, frame, 0.15), rng.uniform(0, np.pi)
    w = rng.uniform(0.18, 0.34) * frame.size
    corners = _rect(w, w * rng.uniform(0.6, 1.3)) + rng.normal(0, 0.03 * w, (4, 2))  # slight perspective
    u, v = frame.local(centre, angle)
    period = rng.uniform(5, 9) * frame.scale
    lines = (np.mod(v, period) < max(1.0, 0.22 * period)).astype(np.float32)
    sheet = _colour(_jitter(rng, (0.9, 0.88, 0.82), 0.035), _shade(rng, frame, 4, 0.06))
    ink = _jitter(rng, (0.4, 0.42, 0.6), 0.08)
    return _Draft([_place(corners, centre, angle)], _mix(sheet, ink, 0.55 * lines))


def _paint_paper_pack(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """A carton seen at an angle: a hexagon whose three faces are the same colour in three tones."""
    centre, angle = _random_centre(rng, frame), rng.uniform(0, 2 * np.pi)
    radius, squash = rng.uniform(0.09, 0.16) * frame.size, rng.uniform(0.65, 1.0)
    theta = np.arange(6) * np.pi / 3 + rng.uniform(-0.2, 0.2, 6)
    outline = np.stack([radius * np.cos(theta), radius * squash * np.sin(theta)], 1)
    u, v = frame.local(centre, angle)
    turn = np.mod(np.arctan2(v / squash, u) - theta[0], 2 * np.pi)  # faces meet at vertices 0, 2 and 4
    face = np.searchsorted(theta[[2, 4]] - theta[0], turn)
    palette = [(0.86, 0.85, 0.8), (0.3, 0.45, 0.75), (0.75, 0.25, 0.22), (0.62, 0.47, 0.3)]
    base = _jitter(rng, palette[int(rng.integers(len(palette)))], 0.04)
    tones = np.array([1.12, 0.85, 0.6], dtype=np.float32)[face]
    return _Draft([_place(outline, centre, angle)], _colour(base, tones * _shade(rng, frame, 6, 0.05)))


def _metal_can(
    rng: np.random.Generator, frame: _Frame, centre: np.ndarray, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Side view of a can: a cylinder's shading across its width plus one sharp specular stripe."""
    width, length = rng.uniform(0.07, 0.12) * frame.size, rng.uniform(0.15, 0.27) * frame.size
    _, v = frame.local(centre, angle)
    t = np.clip(v / (width / 2), -1, 1)
    shade = 0.45 + 0.45 * np.sqrt(1 - t**2) + 0.7 * np.exp(-(((t - rng.uniform(-0.5, 0.3)) / 0.13) ** 2))
    return _rounded_rect(length, width, 0.15 * width), shade


def _metal_lid(
    rng: np.random.Generator, frame: _Frame, centre: np.ndarray, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Top view of a can: an ellipse with a dark rim ring and an off-centre highlight."""
    rx = rng.uniform(0.06, 0.11) * frame.size
    ry = rx * rng.uniform(0.6, 1.0)
    u, v = frame.local(centre, angle)
    r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    hu, hv = rng.uniform(-0.4, 0.4, 2)
    shade = (
        0.6
        + 0.25 * (1 - r)
        - 0.3 * np.exp(-(((r - 0.85) / 0.06) ** 2))
        + 0.5 * np.exp(-((u / rx - hu) ** 2 + (v / ry - hv) ** 2) / 0.05)
    )
    theta = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    return np.stack([rx * np.cos(theta), ry * np.sin(theta)], 1), shade


def _metal_wire(
    rng: np.random.Generator, frame: _Frame, centre: np.ndarray, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """A thin wire: a few pixels wide, so thin structures are in the data."""
    length = rng.uniform(0.3, 0.55) * frame.size
    width = max(2.0, 0.012 * frame.size) * rng.uniform(1.0, 1.6)
    return _strip(rng, length, width), 0.8 + 0.4 * _smooth_noise(rng, frame, 24)


_METAL_FORMS: dict[str, Callable[[np.random.Generator, _Frame, np.ndarray, float], tuple[np.ndarray, np.ndarray]]] = {
    "can": _metal_can,
    "lid": _metal_lid,
    "wire": _metal_wire,
}


def _paint_metal(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """Grey, low-saturation and specular: a can (side or top view) or a thin wire."""
    form = _METAL_FORMS[str(rng.choice(list(_METAL_FORMS), p=[0.5, 0.25, 0.25]))]
    centre, angle = _random_centre(rng, frame), rng.uniform(0, 2 * np.pi)
    outline, shade = form(rng, frame, centre, angle)
    grey = _jitter(rng, (0.58, 0.6, 0.63), 0.035)
    return _Draft([_place(outline, centre, angle)], _colour(grey, shade))


def _paint_glass(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """A green or blue bottle or jar, alpha-blended with what lies beneath, with a bright highlight line."""
    centre, angle = _random_centre(rng, frame), rng.uniform(0, 2 * np.pi)
    width = rng.uniform(0.08, 0.12) * frame.size
    length = width * rng.uniform(1.2, 3.2)
    if length > 2.2 * width:  # long ones are bottles: body, shoulder, neck
        neck, shoulder, nw = 0.25 * length, 0.12 * length, 0.35 * width
        outline = np.array(
            [
                [-length / 2, -width / 2],
                [length / 2 - neck - shoulder, -width / 2],
                [length / 2 - neck, -nw / 2],
                [length / 2, -nw / 2],
                [length / 2, nw / 2],
                [length / 2 - neck, nw / 2],
                [length / 2 - neck - shoulder, width / 2],
                [-length / 2, width / 2],
            ]
        )
    else:
        outline = _rounded_rect(length, width, 0.3 * width)
    _, v = frame.local(centre, angle)
    t = np.clip(v / (width / 2), -1, 1)
    highlight = np.exp(-(((t - rng.uniform(-0.6, -0.2)) / 0.12) ** 2))
    tint = _jitter(rng, [(0.3, 0.62, 0.4), (0.35, 0.6, 0.8), (0.55, 0.8, 0.75)][int(rng.integers(3))], 0.04)
    texture = _mix(_colour(tint, 0.85 - 0.25 * t**4), np.float32(1), 0.8 * highlight)
    opacity = (rng.uniform(0.5, 0.65) + 0.3 * highlight + 0.15 * t**4).clip(0, 1)[..., None]
    return _Draft([_place(outline, centre, angle)], texture, opacity.astype(np.float32))


def _paint_plastic(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """A saturated smooth blob with a soft highlight, or now and then a thin strap of the same colour."""
    centre, angle = _random_centre(rng, frame), rng.uniform(0, 2 * np.pi)
    colour = _hsv(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.65, 0.95))
    if rng.random() < 0.25:
        outline = _strip(rng, rng.uniform(0.25, 0.5) * frame.size, rng.uniform(2.0, 5.0) * max(frame.scale, 0.6))
    else:
        radius = rng.uniform(0.06, 0.14) * frame.size
        outline = _wobbly(rng, 36, 0.25, 3) * [radius, radius * rng.uniform(0.55, 1)]
    u, v = frame.local(centre + rng.uniform(-0.04, 0.04, 2) * frame.size, angle)
    spot = np.exp(-(u**2 + v**2) / (0.002 * frame.size**2))
    body = _colour(colour, _shade(rng, frame, 6, 0.12))
    return _Draft([_place(outline, centre, angle)], _mix(body, np.float32(1), 0.45 * spot))


def _blocky(rng: np.random.Generator, w: float, h: float) -> np.ndarray:
    """A rectangle with random L-shaped notches at its corners: broken foam blocks."""
    corners = _rect(w, h)
    points = []
    for k, corner in enumerate(corners):
        if rng.random() < 0.6:
            prev, nxt = corners[k - 1] - corner, corners[(k + 1) % 4] - corner
            a, b = prev * rng.uniform(0.1, 0.3), nxt * rng.uniform(0.1, 0.3)
            points += [corner + a, corner + a + b, corner + b]
        else:
            points.append(corner)
    return np.array(points)


def _paint_styrofoam(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """Bright white and grainy, with square-cut blocky outlines."""
    centre, angle = _random_centre(rng, frame), rng.uniform(0, np.pi)
    w, h = rng.uniform(0.12, 0.26, 2) * frame.size
    grain = 0.06 * rng.standard_normal((frame.size, frame.size), dtype=np.float32)
    beads = _smooth_noise(rng, frame, max(4, frame.size // 4))
    white = _jitter(rng, (0.93, 0.93, 0.9), 0.025)
    return _Draft([_place(_blocky(rng, w, h), centre, angle)], _colour(white, 0.92 + 0.14 * beads + grain))


def _paint_plastic_bag(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """Wrinkled, light and semi-transparent, with printed stripes bent by the wrinkles."""
    centre, angle = _random_centre(rng, frame), rng.uniform(0, 2 * np.pi)
    radius = rng.uniform(0.12, 0.22) * frame.size
    outline = _wobbly(rng, 44, 0.28, 10, jag=0.05) * [radius, radius * rng.uniform(0.6, 1)]
    u, v = frame.local(centre, angle)
    wrinkles = _smooth_noise(rng, frame, 14)
    period = rng.uniform(7, 13) * frame.scale
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (u + 6 * frame.scale * wrinkles) / period)
    palette = [(0.93, 0.93, 0.9), (0.7, 0.82, 0.93), (0.93, 0.74, 0.8), (0.9, 0.9, 0.6)]
    base = _jitter(rng, palette[int(rng.integers(len(palette)))], 0.03)
    shade = (0.7 + 0.45 * wrinkles) * (1 - 0.3 * stripes)
    return _Draft([_place(outline, centre, angle)], _colour(base, shade), rng.uniform(0.6, 0.8))


def _paint_battery(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """Always small: a rounded cylinder in two colour bands with a silver terminal at one end."""
    centre, angle = _random_centre(rng, frame), rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.07, 0.11) * frame.size
    width = length * rng.uniform(0.35, 0.45)
    u, v = frame.local(centre, angle)
    pairs = [
        ((0.8, 0.5, 0.15), (0.08, 0.08, 0.08)),
        ((0.15, 0.3, 0.8), (0.92, 0.92, 0.92)),
        ((0.1, 0.6, 0.25), (0.1, 0.1, 0.1)),
        ((0.85, 0.15, 0.15), (0.75, 0.75, 0.78)),
    ]
    first, second = (_jitter(rng, c, 0.03) for c in pairs[int(rng.integers(len(pairs)))])
    band = (u > (rng.uniform(0.3, 0.6) - 0.5) * length).astype(np.float32)
    cylinder = 0.7 + 0.4 * np.sqrt(1 - np.clip(v / (width / 2), -1, 1) ** 2)
    texture = _mix(_mix(first, second, band), np.float32(0.82), (u > 0.4 * length).astype(np.float32))
    return _Draft(
        [_place(_rounded_rect(length, width, 0.3 * width), centre, angle)], np.clip(texture * cylinder[..., None], 0, 1)
    )


_FABRIC_PATTERNS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "checks": lambda a, b: np.mod(a + b, 2),
    "stripes": lambda a, b: np.mod(a, 2),
    "plaid": lambda a, b: 0.5 * (np.mod(a, 2) + np.mod(b, 2)),
}


def _paint_clothing(rng: np.random.Generator, frame: _Frame) -> _Draft:
    """Large, soft-edged and patterned (checks, stripes, plaid) in two fabric colours, with folds."""
    centre, angle = _random_centre(rng, frame, 0.25), rng.uniform(0, 2 * np.pi)
    radius = rng.uniform(0.2, 0.32) * frame.size
    outline = _wobbly(rng, 40, 0.22, 5) * [radius, radius * rng.uniform(0.65, 1)]
    u, v = frame.local(centre, angle)
    period = rng.uniform(5, 11) * frame.scale
    pattern = _FABRIC_PATTERNS[str(rng.choice(list(_FABRIC_PATTERNS)))]
    weight = pattern(np.floor(u / period), np.floor(v / period)).astype(np.float32)
    hue = rng.random()
    first = _hsv(hue, rng.uniform(0.4, 0.8), rng.uniform(0.35, 0.7))
    second = _hsv(hue + rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.7), rng.uniform(0.6, 0.9))
    folds = _shade(rng, frame, 8, 0.22)
    return _Draft([_place(outline, centre, angle)], _mix(_colour(first, folds), _colour(second, folds), weight))


PAINTERS: dict[str, Callable[[np.random.Generator, _Frame], _Draft]] = {
    "General trash": _paint_general_trash,
    "Paper": _paint_paper,
    "Paper pack": _paint_paper_pack,
    "Metal": _paint_metal,
    "Glass": _paint_glass,
    "Plastic": _paint_plastic,
    "Styrofoam": _paint_styrofoam,
    "Plastic bag": _paint_plastic_bag,
    "Battery": _paint_battery,
    "Clothing": _paint_clothing,
}


# ---------------------------------------------------------------- backgrounds


def _muted(rng: np.random.Generator) -> np.ndarray:
    """Floors and tables: desaturated mid tones, so objects stand out without being trivially separable."""
    return _hsv(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.65))


def _bg_noise(rng: np.random.Generator, frame: _Frame) -> np.ndarray:
    shade = _shade(rng, frame, int(rng.integers(3, 8)), 0.25) * _shade(rng, frame, 32, 0.08)
    return _colour(_muted(rng), shade)


def _bg_gradient(rng: np.random.Generator, frame: _Frame) -> np.ndarray:
    u, _ = frame.local(np.zeros(2), rng.uniform(0, 2 * np.pi))
    t = (u - u.min()) / (u.max() - u.min())
    return _mix(_muted(rng), _muted(rng), t)


def _bg_wood(rng: np.random.Generator, frame: _Frame) -> np.ndarray:
    """Planks: wavy grain along one axis, dark seams across the other."""
    _, v = frame.local(np.zeros(2), rng.uniform(0, np.pi))
    wavy = v + 12 * frame.scale * _smooth_noise(rng, frame, 6)
    grain = np.sin(2 * np.pi * wavy / (rng.uniform(6, 14) * frame.scale))
    seams = np.mod(v, rng.uniform(30, 60) * frame.scale) < 1.5 * max(frame.scale, 0.7)
    wood = _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.3, 0.55), rng.uniform(0.4, 0.65))
    return _colour(wood, (0.9 + 0.1 * grain) * np.where(seams, 0.55, 1.0))


def _bg_tiles(rng: np.random.Generator, frame: _Frame) -> np.ndarray:
    """Floor tiles: alternating tones with grout lines."""
    u, v = frame.local(np.zeros(2), rng.uniform(0, np.pi / 2))
    tile = rng.uniform(28, 64) * frame.scale
    checker = np.mod(np.floor(u / tile) + np.floor(v / tile), 2)
    grout = (np.mod(u, tile) < 1.5) | (np.mod(v, tile) < 1.5)
    shade = (0.92 + 0.12 * checker) * np.where(grout, 0.7, 1.0) * _shade(rng, frame, 4, 0.08)
    return _colour(_muted(rng), shade)


BACKGROUNDS: dict[str, Callable[[np.random.Generator, _Frame], np.ndarray]] = {
    "noise": _bg_noise,
    "gradient": _bg_gradient,
    "wood": _bg_wood,
    "tiles": _bg_tiles,
}


def _background(rng: np.random.Generator, frame: _Frame) -> np.ndarray:
    """A random textured background with a random per-channel tint."""
    canvas = BACKGROUNDS[str(rng.choice(list(BACKGROUNDS)))](rng, frame)
    return np.clip(canvas * (1 + rng.normal(0, 0.05, 3)).astype(np.float32), 0, 1).astype(np.float32)


# ---------------------------------------------------------------- planning, placing, drawing


FORCED_TRAIN: dict[int, tuple[_Request, ...]] = {
    # so that even a tiny dataset has the rare class, a multi-part outline, both RLE forms and a tiny object
    0: (
        _Request("Battery"),
        _Request("Clothing", tear=True),
        _Request("General trash", encoding="rle"),
        _Request("Metal", encoding="rle_uncompressed"),
    ),
    1: (_Request("Plastic", tiny=True),),
}


def _random_request(rng: np.random.Generator, category: str) -> _Request:
    flags = rng.random(2)
    encoding = str(rng.choice(list(ENCODING_WEIGHTS), p=list(ENCODING_WEIGHTS.values())))
    return _Request(
        category,
        tear=category in TEARABLE and flags[0] < TEAR_RATE,
        tiny=category in TINY_OK and flags[1] < TINY_RATE,
        encoding=encoding,
    )


def _plan(rng: np.random.Generator, split: str, index: int) -> list[_Request]:
    """2–7 objects: forced cases first, then (train) one class in rotation so all classes appear, then random."""
    n_objects = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    fixed = list(FORCED_TRAIN.get(index, ())) if split == "train" else []
    if rng.random() < BATTERY_RATE:
        fixed.append(_random_request(rng, RARE_CLASS))
    rotating = [COMMON_CLASSES[index % len(COMMON_CLASSES)]] if split == "train" else []
    n_random = max(0, n_objects - len(fixed) - len(rotating))
    others = [COMMON_CLASSES[i] for i in rng.integers(0, len(COMMON_CLASSES), n_random)]
    return (fixed + [_random_request(rng, c) for c in rotating + others])[:MAX_OBJECTS]


def _rasterise(polygons: list[list[float]], size: int) -> np.ndarray:
    """The mask exactly as a consumer gets it from the stored polygons."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, size, size)))


def _place_object(rng: np.random.Generator, frame: _Frame, request: _Request) -> _Placed | None:
    """Paint until the object keeps enough pixels (and 2+ parts when torn) inside the image; else leave it out."""
    for _ in range(MAX_TRIES):
        draft = PAINTERS[request.category](rng, frame)
        parts = _shrink(rng, draft.parts) if request.tiny else draft.parts
        parts = _tear(rng, parts, frame) if request.tear else parts
        polygons = _coco_polygons(parts, frame.size)
        if len(polygons) < (2 if request.tear else 1):
            continue
        mask = _rasterise(polygons, frame.size)
        rle = mask_utils.encode(mask)
        area = int(mask_utils.area(rle))
        if area >= MIN_AREA:
            bbox = [round(float(x), 1) for x in mask_utils.toBbox(rle)]
            return _Placed(request, polygons, mask, area, bbox, draft)
    return None


def _composite(canvas: np.ndarray, obj: _Placed) -> None:
    """Paint one object where its mask is set, blending by its opacity (1 = opaque)."""
    inside = obj.mask.astype(bool)
    opacity = obj.draft.opacity
    alpha = opacity[inside] if isinstance(opacity, np.ndarray) else np.float32(opacity)
    canvas[inside] = canvas[inside] * (1 - alpha) + obj.draft.texture[inside] * alpha


def _finish(rng: np.random.Generator, canvas: np.ndarray, frame: _Frame) -> np.ndarray:
    """Global light: brightness, a gentle illumination gradient and sensor noise; then 8-bit BGR for cv2."""
    u, _ = frame.local(np.full(2, frame.size / 2), rng.uniform(0, 2 * np.pi))
    light = rng.uniform(0.85, 1.15) * (1 + rng.uniform(0, 0.15) * u / frame.size)
    noisy = canvas * light[..., None] + 0.012 * rng.standard_normal(canvas.shape, dtype=np.float32)
    pixels = np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)


def _render(rng: np.random.Generator, frame: _Frame, requests: list[_Request]) -> tuple[np.ndarray, list[_Placed]]:
    """Draw an image; objects come back in plan order, drawn largest area first (stable, as consumers sort)."""
    canvas = _background(rng, frame)
    placed = [obj for request in requests if (obj := _place_object(rng, frame, request)) is not None]
    for obj in sorted(placed, key=lambda o: o.area, reverse=True):
        _composite(canvas, obj)
    return _finish(rng, canvas, frame), placed


# ---------------------------------------------------------------- COCO output


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's list-of-ints RLE: column-major run lengths, starting with a (possibly empty) run of zeros."""
    flat = mask.ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]]))
    counts = ([0] if flat[0] else []) + [int(r) for r in runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def _compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


ENCODERS: dict[str, Callable[[_Placed], list | dict]] = {
    "polygon": lambda obj: obj.polygons,
    "rle": lambda obj: _compressed_rle(obj.mask),
    "rle_uncompressed": lambda obj: _uncompressed_rle(obj.mask),
}


def _annotation(obj: _Placed, ann_id: int, image_id: int) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": CATEGORY_NAMES.index(obj.request.category) + 1,
        "segmentation": ENCODERS[obj.request.encoding](obj),
        "area": obj.area,
        "bbox": obj.bbox,
        "iscrowd": 0,
    }


def _file_name(image_id: int) -> str:
    """Images are dealt round-robin over the batch folders, numbered within each folder, never shared."""
    return f"{BATCH_DIRS[image_id % len(BATCH_DIRS)]}/{image_id // len(BATCH_DIRS):04d}.jpg"


def _write_jpeg(tmp_name: str, pixels: np.ndarray) -> None:
    if not cv2.imwrite(tmp_name, pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"cv2 could not write {tmp_name}")


def _coco_document(seed: int, images: list[dict], annotations: list[dict] | None) -> dict:
    doc = {
        "info": {"description": "trashseg procedural sample dataset", "seed": seed},
        "images": images,
        "categories": CATEGORIES,
    }
    if annotations is not None:
        doc["annotations"] = annotations
    return doc


def _write_json(path: Path, doc: dict) -> None:
    """Compact and key-sorted: the same seed gives byte-identical files."""
    atomic_write_text(path, json.dumps(doc, indent=None, sort_keys=True) + "\n")


def write_sample_dataset(
    out_dir: str | Path, *, n_train: int = 48, n_val: int = 16, n_test: int = 16, size: int = 256, seed: int = 0
) -> dict[str, int]:
    """Write train/val/test/train_all COCO files and JPEGs under `out_dir`; return the image and annotation counts.

    Image and annotation ids are unique across all splits, so `train_all.json` is train and val concatenated.
    Every image comes from its own rng seeded with (seed, split, index): changing one split's size never changes
    another split's pixels (only ids and file names shift).
    """
    if min(n_train, n_val, n_test) < 0 or seed < 0:
        raise ValueError(
            f"counts and seed must be >= 0, got n_train={n_train} n_val={n_val} n_test={n_test} seed={seed}"
        )
    if size < MIN_SIZE:
        raise ValueError(f"size must be >= {MIN_SIZE} px so that objects fit, got {size}")
    out = Path(out_dir)
    frame = _Frame.of(size)
    counts = {"train": n_train, "val": n_val, "test": n_test}
    images: dict[str, list[dict]] = {split: [] for split in SPLITS}
    annotations: dict[str, list[dict]] = {"train": [], "val": []}  # the test split is unlabelled
    image_id = ann_id = 0
    for split_code, split in enumerate(SPLITS):
        for index in range(counts[split]):
            rng = np.random.default_rng([seed, split_code, index])
            pixels, objects = _render(rng, frame, _plan(rng, split, index))
            file_name = _file_name(image_id)
            atomic_write_with(out / file_name, partial(_write_jpeg, pixels=pixels))
            images[split].append({"id": image_id, "file_name": file_name, "height": size, "width": size})
            if split in annotations:
                for obj in objects:
                    annotations[split].append(_annotation(obj, ann_id, image_id))
                    ann_id += 1
            image_id += 1
    _write_json(out / "train.json", _coco_document(seed, images["train"], annotations["train"]))
    _write_json(out / "val.json", _coco_document(seed, images["val"], annotations["val"]))
    _write_json(out / "test.json", _coco_document(seed, images["test"], None))
    _write_json(
        out / "train_all.json",
        _coco_document(seed, images["train"] + images["val"], annotations["train"] + annotations["val"]),
    )
    return {**counts, "annotations": ann_id}
