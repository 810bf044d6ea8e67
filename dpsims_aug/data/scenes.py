"""Deterministic procedural landscape/town scenes: the embedded dataset behind tests, demo and CPU benchmarks.

A scene is drawn in two independent stages:

* **layout** (only ``layout_seed`` and the output size): horizon, mountain ridges, clouds, sea or lake with a
  sand shore, grass, a perspective road, and depth-sorted buildings, trees, rocks and one small unlabeled
  object. It produces the label map (contiguous ids of :func:`dpsims_aug.labels.embedded_label_space`, 255 for
  unlabeled pixels) plus per-pixel instance/part maps used for texturing.
* **appearance** (only ``appearance_seed``): time of day (sky gradient, sun glow, light colour), season
  (grass/tree colours, snow), water tint and waves, building/roof/window colours, textures and sensor noise.

So one label map has many plausible images, which is exactly what a label-to-image GAN needs.

Domains: a :class:`Domain` holds the priors of both stages (layout statistics such as how often there is
water, a town or rocks; appearance priors such as palettes, light, textures and noise). :data:`DOMAINS` has
``"source"`` (the default: the original world, bit for bit) and the targets ``"arid"`` and ``"snow"``, which
use the same 10 classes with other frequencies and looks: a domain shift for transfer experiments. Every
domain runs the same code; a domain only changes values (probabilities, ranges, counts, palettes), so the
source domain makes exactly the random draws of the original renderer.

Determinism: every random number comes from ``numpy.random.Generator(PCG64)`` seeded through ``SeedSequence``
(only ``random``/``integers`` draws, which are pure integer/IEEE arithmetic), and the renderer uses only
``+ - * /``, ``sqrt``, ``floor``, comparisons and gathers. No ``sin``/``exp``/``pow``: numpy dispatches
those to CPU-specific SIMD code whose last bits differ between machines, which would flip thresholded labels.
Layout draws do not depend on the pixel count, so one layout seed gives the same scene at every resolution
(with the same aspect ratio).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from dpsims_aug.labels import EMBEDDED_CLASSES as CLASS_NAMES
from dpsims_aug.labels import IGNORE_INDEX as IGNORE

SKY, CLOUD, MOUNTAIN, WATER, SAND, GRASS, TREE, ROCK, BUILDING, ROAD = range(len(CLASS_NAMES))
SCENES_VERSION = 1  # bump when the renderer's output changes (writers then refuse to reuse older files)
THING_CLASSES = (TREE, ROCK, BUILDING)  # classes drawn as separate objects (instances; Cityscapes' "things")

# Distinct SeedSequence domains so that layout_seed == appearance_seed still gives unrelated streams.
_LAYOUT_DOMAIN = 0x1A7_0C7
_APPEARANCE_DOMAIN = 0xA99_EA2
_INDEX_DOMAIN = 0x5CE_E5

# Part codes (layout -> appearance): how a labelled pixel should be textured.
_PART_TRUNK, _PART_ROOF, _PART_DOOR, _PART_FAR = 1, 2, 3, 4

_NOISE_P = 256  # lattice size of the value noise (power of two: wrap with a mask)


def _rng(seed: int, domain: int) -> np.random.Generator:
    if int(seed) < 0:
        raise ValueError(f"seeds must be non-negative integers, got {seed}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), domain])))


class _Noise:
    """Value noise on a wrapped random lattice with smoothstep interpolation (arithmetic only)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.table = rng.random(_NOISE_P * _NOISE_P)
        self.offsets = rng.random((32, 2)) * _NOISE_P  # decorrelates octaves and uses ("slots")

    def value(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """One octave in [0, 1]."""
        iu = np.floor(u)
        iv = np.floor(v)
        fu = u - iu
        fv = v - iv
        su = fu * fu * (3.0 - 2.0 * fu)
        sv = fv * fv * (3.0 - 2.0 * fv)
        m = _NOISE_P - 1
        i0 = iu.astype(np.int64) & m
        j0 = (iv.astype(np.int64) & m) * _NOISE_P
        i1 = (i0 + 1) & m
        j1 = (j0 + _NOISE_P) & (_NOISE_P * _NOISE_P - 1)
        t = self.table
        ab = t[j0 + i0]
        ab += (t[j0 + i1] - ab) * su
        cd = t[j1 + i0]
        cd += (t[j1 + i1] - cd) * su
        return ab + (cd - ab) * sv

    def fbm(self, u: np.ndarray, v: np.ndarray, octaves: int = 3, slot: int = 0,
            gain: float = 0.5) -> np.ndarray:
        """Fractal sum of ``octaves`` octaves, roughly in [-1, 1]."""
        total = np.zeros(np.broadcast_shapes(np.shape(u), np.shape(v)))
        amp, norm, freq = 1.0, 0.0, 1.0
        for o in range(octaves):
            du, dv = self.offsets[(slot * 4 + o) % len(self.offsets)]
            total += amp * self.value(u * freq + du, v * freq + dv)
            norm += amp
            amp *= gain
            freq *= 2.0
        return total * (2.0 / norm) - 1.0


def _wave(t: np.ndarray) -> np.ndarray:
    """Smooth periodic wave with period 1 in [0, 1] (a sine substitute that is bit-exact everywhere)."""
    tri = np.abs(2.0 * (t - np.floor(t)) - 1.0)
    return tri * tri * (3.0 - 2.0 * tri)


# ------------------------------------------------------------------------------------------------ domains

Range = tuple[float, float]  # a uniform draw between the two values
RGB = tuple[float, float, float]


@dataclass(frozen=True)
class TimeOfDay:
    """One lighting condition of a domain: sky and cloud colours, light colour and its evening effects."""

    name: str
    sky_top: RGB
    sky_horizon: RGB  # also the colour of haze and far things
    cloud_light: RGB
    cloud_shade: RGB
    light: RGB  # multiplies the whole image (brightness and colour cast)
    glow: float = 0.0  # sun glow in the sky and glints on the water (0: none)
    lit_windows: float = 0.0  # chance that a window is lit


@dataclass(frozen=True)
class Season:
    """One season of a domain: grass and tree colours, and whether it snows."""

    name: str
    grass: RGB  # for a snowy season: the colour of snow-covered grass
    crowns: tuple[RGB, ...]  # one is picked per tree
    snowy: bool = False  # snow caps on every mountain; snow on the grass with Domain.snow_ground_p


# The source palettes (SCENES_VERSION 1).
_TIMES = (
    TimeOfDay("day", (0.24, 0.46, 0.86), (0.7, 0.83, 0.96), (0.98, 0.98, 0.99), (0.72, 0.76, 0.84),
              (1.0, 1.0, 1.0)),
    TimeOfDay("golden", (0.3, 0.42, 0.72), (1.0, 0.76, 0.48), (1.0, 0.9, 0.74), (0.68, 0.55, 0.52),
              (1.08, 0.95, 0.78), glow=0.5, lit_windows=0.15),
    TimeOfDay("dusk", (0.13, 0.13, 0.36), (0.96, 0.48, 0.36), (0.96, 0.62, 0.56), (0.33, 0.28, 0.44),
              (0.72, 0.62, 0.72), glow=0.3, lit_windows=0.6),
    TimeOfDay("overcast", (0.56, 0.59, 0.63), (0.8, 0.81, 0.82), (0.88, 0.89, 0.9), (0.55, 0.56, 0.6),
              (0.86, 0.88, 0.9)),
)
_SEASONS = (
    Season("spring", (0.42, 0.66, 0.24), ((0.36, 0.62, 0.24), (0.45, 0.68, 0.3), (0.9, 0.75, 0.8))),
    Season("summer", (0.32, 0.54, 0.18), ((0.17, 0.4, 0.14), (0.22, 0.45, 0.16), (0.13, 0.33, 0.15))),
    Season("autumn", (0.58, 0.56, 0.26), ((0.82, 0.46, 0.14), (0.72, 0.22, 0.1), (0.86, 0.7, 0.2))),
    Season("winter", (0.9, 0.92, 0.95), ((0.12, 0.26, 0.16), (0.42, 0.35, 0.3), (0.16, 0.3, 0.2)), snowy=True),
)
_ROCK_TONES = ((0.48, 0.47, 0.46), (0.52, 0.43, 0.34), (0.33, 0.42, 0.29), (0.4, 0.43, 0.52))
_WATER_TINTS = ((0.12, 0.33, 0.6), (0.08, 0.42, 0.48), (0.22, 0.36, 0.34), (0.06, 0.17, 0.3))
_WALLS = ((0.92, 0.9, 0.84), (0.72, 0.34, 0.25), (0.86, 0.74, 0.52), (0.6, 0.6, 0.62), (0.96, 0.92, 0.72),
          (0.56, 0.66, 0.76), (0.8, 0.62, 0.55))
_ROOFS = ((0.62, 0.2, 0.14), (0.32, 0.3, 0.3), (0.46, 0.3, 0.2), (0.24, 0.3, 0.38), (0.5, 0.16, 0.12))


@dataclass(frozen=True)
class Domain:
    """The priors of one world the renderer can draw: layout statistics and appearance.

    Every domain uses the same 10 classes; domains differ in how often and how large each class is (layout)
    and in how it looks (appearance). The defaults are the ``"source"`` domain, i.e. exactly the constants of
    the original renderer, so a target domain only lists what it changes. Probabilities are per scene unless
    said otherwise; :data:`Range` fields are uniform draws; ``(lo, hi)`` counts are ``integers(lo, hi)``
    (``hi`` excluded).
    """

    name: str
    description: str = ""
    # ---- layout: sky and mountains
    horizon: Range = (0.3, 0.56)  # horizon height (fraction of the image height from the top)
    cloud_p: float = 0.88  # chance of clouds at all
    cloud_cover: Range = (0.15, 0.6)
    mountain_p: float = 0.85
    mountain_height: Range = (0.35, 0.8)  # peak height as a fraction of the sky
    ridge_sharpness: float = 1.6  # higher: narrower peaks
    ridge_cap: float = 1.0  # < 1 cuts the peaks flat (mesas and buttes)
    # ---- layout: ground plan
    water_p: tuple[float, float, float] = (0.4, 0.35, 0.25)  # sea, lake, dry land
    beach_width: Range = (0.04, 0.12)  # sand strip of a sea shore (fraction of the ground depth)
    lake_shore: Range = (0.12, 0.3)  # ring around a lake (fraction of its radius)
    lake_shore_class: int = SAND
    desert_level: float | None = None  # dry ground is sand where a noise field (about -1..1) is below this
    road_p: float = 0.65
    # ---- layout: objects
    town_p: float = 0.7
    town_ground: tuple[int, ...] = (GRASS,)  # classes buildings may stand on
    n_buildings: tuple[int, int] = (1, 10)
    tall_p: float = 0.15  # chance that a building is a tall one
    gable_p: float = 0.6  # chance of a gable roof (else flat)
    tree_p: float = 0.9
    tree_ground: tuple[int, ...] = (GRASS,)
    n_trees: tuple[int, int] = (2, 26)
    conifer_p: Range = (0.0, 1.0)  # share of conifers, drawn per scene
    rock_p: float = 0.75
    n_rocks: tuple[int, int] = (1, 8)
    rock_candidates: int = 16  # placement tries (more rocks need more tries)
    rock_size: Range = (0.025, 0.09)
    # ---- appearance: light
    times: tuple[TimeOfDay, ...] = _TIMES
    time_p: tuple[float, ...] = (0.45, 0.2, 0.15, 0.2)
    light_gain: Range = (0.9, 1.1)
    shading: float = 1.0  # strength of the lit side of trees, rocks and buildings (harsh sun > 1)
    haze: Range = (0.0, 0.25)  # blend toward the horizon colour near the horizon
    contrast: Range = (0.9, 1.15)
    brightness: Range = (-0.04, 0.04)
    vignette: Range = (0.0, 0.35)
    sensor_noise: Range = (0.01, 0.05)
    # ---- appearance: seasons and materials
    seasons: tuple[Season, ...] = _SEASONS  # drawn uniformly
    snowcap_p: float = 0.45  # chance of snow on the mountains outside snowy seasons
    snow_line: Range = (0.05, 0.5)  # how far the snow reaches down the mountains
    snow_ground_p: float = 0.5  # chance of snow on the grass in a snowy season
    bare_grass: RGB = (0.55, 0.52, 0.38)  # grass of a snowy season without snow
    stripes_p: float = 0.3  # mowing stripes on the grass
    rock_tones: tuple[RGB, ...] = _ROCK_TONES  # mountains
    stone: RGB = (0.5, 0.49, 0.47)  # rocks
    rock_snow: float = 0.0  # share of each rock's height covered by snow
    water_tints: tuple[RGB, ...] = _WATER_TINTS
    sand: RGB = (0.86, 0.78, 0.58)
    sand_ripple: float = 0.06  # amplitude of the sand ripples
    walls: tuple[RGB, ...] = _WALLS
    roofs: tuple[RGB, ...] = _ROOFS
    asphalt: RGB = (0.3, 0.3, 0.32)
    dirt_road_p: float = 0.2  # chance that the road is an unpaved track
    dirt: RGB = (0.55, 0.47, 0.35)  # colour of an unpaved track
    texture_scale: float = 1.0  # frequency of the shared grain and patch textures
    texture_contrast: float = 1.0  # amplitude of the shared grain and patch textures

    def __post_init__(self) -> None:
        if len(self.time_p) != len(self.times) or abs(sum(self.time_p) - 1.0) > 1e-9:
            raise ValueError(f"domain {self.name!r}: time_p must give one probability per time, summing to 1")
        if len(self.water_p) != 3 or abs(sum(self.water_p) - 1.0) > 1e-9:
            raise ValueError(f"domain {self.name!r}: water_p must be 3 probabilities summing to 1")


_ARID = Domain(
    "arid",
    "Desert and steppe: sand is the main ground (with patches of dry grass), mesas, rare oases ringed by "
    "grass, many rocks, sparse round trees, flat-roofed adobe towns, dirt tracks; harsh high sun, dusty haze, "
    "few clouds.",
    horizon=(0.3, 0.52), cloud_p=0.35, cloud_cover=(0.05, 0.3),
    mountain_p=0.8, mountain_height=(0.4, 0.95), ridge_sharpness=2.4, ridge_cap=0.55,
    water_p=(0.0, 0.12, 0.88), lake_shore=(0.25, 0.5), lake_shore_class=GRASS, desert_level=0.3,
    road_p=0.55,
    town_p=0.7, town_ground=(GRASS, SAND), tall_p=0.05, gable_p=0.1,
    tree_p=0.6, tree_ground=(GRASS, SAND), n_trees=(1, 7), conifer_p=(0.0, 0.15),
    rock_p=0.95, n_rocks=(3, 16), rock_candidates=32, rock_size=(0.03, 0.11),
    times=(
        TimeOfDay("noon", (0.36, 0.55, 0.82), (0.86, 0.84, 0.76), (1.0, 0.98, 0.95), (0.8, 0.78, 0.74),
                  (1.12, 1.06, 0.95)),
        TimeOfDay("dust", (0.68, 0.6, 0.46), (0.9, 0.77, 0.56), (0.95, 0.85, 0.7), (0.75, 0.62, 0.48),
                  (1.05, 0.93, 0.76)),
        TimeOfDay("golden", (0.34, 0.46, 0.74), (1.0, 0.7, 0.4), (1.0, 0.86, 0.66), (0.72, 0.52, 0.42),
                  (1.1, 0.9, 0.68), glow=0.5, lit_windows=0.1),
    ),
    time_p=(0.55, 0.25, 0.2),
    light_gain=(1.0, 1.15), shading=1.5, haze=(0.15, 0.45), contrast=(1.05, 1.3), sensor_noise=(0.01, 0.04),
    seasons=(
        Season("dry", (0.68, 0.62, 0.38), ((0.38, 0.42, 0.22), (0.46, 0.46, 0.26), (0.32, 0.36, 0.2))),
        Season("green", (0.52, 0.56, 0.3), ((0.26, 0.42, 0.18), (0.34, 0.46, 0.2), (0.4, 0.44, 0.22))),
        Season("scorched", (0.74, 0.64, 0.44), ((0.44, 0.4, 0.26), (0.36, 0.34, 0.22), (0.5, 0.46, 0.3))),
    ),
    snowcap_p=0.0, stripes_p=0.0,
    rock_tones=((0.72, 0.46, 0.3), (0.8, 0.6, 0.42), (0.62, 0.42, 0.32), (0.7, 0.56, 0.44)),
    stone=(0.64, 0.5, 0.38),
    water_tints=((0.2, 0.42, 0.4), (0.3, 0.45, 0.32), (0.16, 0.36, 0.44)),
    sand=(0.9, 0.72, 0.5), sand_ripple=0.14,
    walls=((0.8, 0.62, 0.44), (0.76, 0.56, 0.4), (0.86, 0.72, 0.54), (0.7, 0.5, 0.36), (0.9, 0.82, 0.68)),
    roofs=((0.7, 0.52, 0.38), (0.62, 0.44, 0.3), (0.75, 0.6, 0.45)),
    dirt_road_p=0.65, dirt=(0.7, 0.56, 0.4),
    texture_contrast=1.4,
)

_SNOW = Domain(
    "snow",
    "Alpine winter: tall snowy mountains, snow-covered grass, dark conifers, many large rocks with snow caps, "
    "small dark or frozen lakes, few chalets with snowy roofs, snow-packed tracks; overcast, low sun or night "
    "light, soft shading, smooth textures, more sensor noise.",
    horizon=(0.35, 0.6), cloud_p=0.95, cloud_cover=(0.3, 0.75),
    mountain_p=0.98, mountain_height=(0.55, 0.95), ridge_sharpness=1.9,
    water_p=(0.1, 0.5, 0.4), beach_width=(0.01, 0.04), lake_shore=(0.03, 0.1),
    road_p=0.45,
    town_p=0.45, n_buildings=(1, 6), tall_p=0.05, gable_p=0.9,
    tree_p=0.95, n_trees=(4, 30), conifer_p=(0.75, 1.0),
    rock_p=0.95, n_rocks=(4, 16), rock_candidates=32, rock_size=(0.04, 0.13),
    times=(
        TimeOfDay("overcast", (0.66, 0.69, 0.74), (0.86, 0.88, 0.9), (0.9, 0.91, 0.93), (0.62, 0.64, 0.68),
                  (0.88, 0.9, 0.95)),
        TimeOfDay("low_sun", (0.28, 0.42, 0.7), (0.9, 0.82, 0.8), (1.0, 0.92, 0.88), (0.6, 0.6, 0.7),
                  (1.0, 0.93, 0.9), glow=0.35, lit_windows=0.1),
        TimeOfDay("night", (0.03, 0.05, 0.14), (0.16, 0.2, 0.34), (0.32, 0.34, 0.44), (0.12, 0.13, 0.2),
                  (0.5, 0.56, 0.75), lit_windows=0.7),
        TimeOfDay("clear", (0.15, 0.35, 0.78), (0.62, 0.76, 0.92), (0.98, 0.98, 1.0), (0.7, 0.74, 0.84),
                  (0.96, 0.98, 1.05)),
    ),
    time_p=(0.35, 0.25, 0.15, 0.25),
    shading=0.7, haze=(0.05, 0.3), contrast=(0.8, 1.0), sensor_noise=(0.03, 0.09),
    seasons=(
        Season("deep_winter", (0.93, 0.95, 0.98), ((0.07, 0.18, 0.12), (0.1, 0.2, 0.16), (0.62, 0.68, 0.7)),
               snowy=True),
        Season("late_winter", (0.88, 0.9, 0.94), ((0.1, 0.22, 0.15), (0.32, 0.27, 0.22), (0.14, 0.24, 0.18)),
               snowy=True),
    ),
    snow_line=(0.45, 1.0), snow_ground_p=0.85, bare_grass=(0.5, 0.46, 0.34), stripes_p=0.0,
    rock_tones=((0.34, 0.36, 0.4), (0.4, 0.4, 0.42), (0.3, 0.32, 0.36)),
    stone=(0.4, 0.41, 0.44), rock_snow=0.4,
    water_tints=((0.05, 0.12, 0.2), (0.08, 0.16, 0.22), (0.72, 0.8, 0.88), (0.62, 0.72, 0.8)),
    sand=(0.7, 0.66, 0.56),
    walls=((0.45, 0.28, 0.18), (0.55, 0.36, 0.22), (0.8, 0.78, 0.72), (0.62, 0.2, 0.16)),
    roofs=((0.93, 0.94, 0.97), (0.9, 0.92, 0.96), (0.86, 0.88, 0.92), (0.3, 0.28, 0.28)),
    dirt_road_p=0.4, dirt=(0.78, 0.8, 0.84),
    texture_scale=0.7, texture_contrast=0.6,
)

_SOURCE = Domain("source", "Temperate landscapes and towns: the original world (SCENES_VERSION 1).")

DOMAINS: dict[str, Domain] = {d.name: d for d in (_SOURCE, _ARID, _SNOW)}
DEFAULT_DOMAIN = "source"


def get_domain(name: str) -> Domain:
    """The registered :class:`Domain` called ``name`` (ValueError listing the names if there is none)."""
    try:
        return DOMAINS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scene domain {name!r}: choose one of {', '.join(DOMAINS)}") from None


# ------------------------------------------------------------------------------------------------ layout


@dataclass
class _Obj:
    kind: int  # TREE, ROCK, BUILDING or IGNORE
    x: float  # base centre (height units)
    y: float  # base line (fraction of height)
    s: float  # perspective scale
    params: dict = field(default_factory=dict)


@dataclass
class _Layout:
    h: float  # horizon (fraction of height)
    aspect: float
    labels: np.ndarray  # H x W uint8
    part: np.ndarray  # H x W uint8 part codes
    inst: np.ndarray  # H x W int32, 0 = no instance
    inst_geom: np.ndarray  # (n_inst + 1) x 4: cx, cy, rx, ry per instance (for shading)
    buildings: list  # (inst id, x0, x1, y0, y1, ncols, nrows)
    ridge: np.ndarray  # W: highest mountain pixel row per column (fraction), 2.0 where none
    road: tuple | None  # (xv, xb, wb, curve) or None


def _ground_fn(rng: np.random.Generator, noise: _Noise, h: float, a: float, d: Domain):
    """Draw the ground plan (water, shore, road) and return a function (X, Y) -> class ids of the ground."""
    wtype = int(rng.choice(3, p=list(d.water_p)))  # 0 sea, 1 lake, 2 dry land
    # Sea: a shore line below the horizon with a sand strip.
    sea_d = rng.uniform(0.1, 0.35) * (1.0 - h)
    sea_sand = rng.uniform(*d.beach_width) * (1.0 - h)
    # Lake: a noisy ellipse, flattened by perspective, ringed by sand.
    t_l = rng.uniform(0.2, 0.55)
    lake_cx = rng.uniform(0.15, 0.85) * a
    lake_cy = h + (1.0 - h) * t_l
    lake_rx = (0.12 + 0.8 * t_l) * rng.uniform(0.35, 0.7)
    lake_ry = lake_rx * rng.uniform(0.22, 0.4)
    lake_sand = rng.uniform(*d.lake_shore)
    # Road: a perspective trapezoid from a vanishing point on the horizon, optionally curved.
    has_road = rng.random() < d.road_p
    road = (rng.uniform(0.25, 0.75) * a, rng.uniform(0.1, 0.9) * a,  # vanishing point x, bottom centre x
            rng.uniform(0.12, 0.3), rng.uniform(-0.4, 0.4))  # half width at the bottom, curvature

    def ground(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        X, Y = np.broadcast_arrays(X, Y)
        out = np.full(X.shape, GRASS, np.uint8)
        if d.desert_level is not None:  # dry land is sand, with patches of grass where the field is high
            field = noise.fbm(X * 2.5, (Y - h) * 9.0 / (1.0 - h), 3, slot=7)
            out[field < d.desert_level] = SAND
        if wtype == 0:
            shore = h + sea_d * (1.0 + 0.4 * noise.fbm(X * 3.0, 0.5, 3, slot=1))
            sand = shore + sea_sand * (1.0 + 0.6 * noise.fbm(X * 5.0, 3.5, 2, slot=2))
            out[Y < sand] = SAND
            out[Y < shore] = WATER
        elif wtype == 1:
            e = ((X - lake_cx) / lake_rx) ** 2 + ((Y - lake_cy) / lake_ry) ** 2
            e = e + 0.35 * noise.fbm(X * 5.0, Y * 9.0, 3, slot=3)
            out[e < (1.0 + lake_sand) ** 2] = d.lake_shore_class
            out[(e < 1.0) & (Y > h + 0.004)] = WATER
        if has_road:
            xv, xb, wb, curve = road
            t = (Y - h) / (1.0 - h)
            centre = xv + (xb - xv) * t + curve * t * (1.0 - t)
            on_road = (np.abs(X - centre) < 0.003 + wb * t) & (t > 0.0)
            if wtype == 0:  # the road ends at the beach instead of running into the sea
                on_road &= Y >= sand
            out[on_road] = ROAD
        return out

    return ground, (road if has_road else None)


def _place(rng: np.random.Generator, ground, h: float, a: float, n_cand: int, allowed: tuple[int, ...],
           x_range: tuple[float, float], t_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Rejection-sample object bases on allowed ground (a fixed number of draws: resolution independent)."""
    xs = rng.uniform(*x_range, size=n_cand)
    u = rng.uniform(0.0, 1.0, size=n_cand)
    ts = t_range[0] + (t_range[1] - t_range[0]) * u * np.sqrt(u)  # denser toward the horizon
    ys = h + (1.0 - h) * ts
    ok = np.isin(ground(xs, ys), allowed) & (xs > 0.0) & (xs < a)
    return xs[ok], ys[ok]


@dataclass
class _Patch:
    """The pixels inside one object's bounding box: centre coordinates and views of the layout maps."""

    sy: np.ndarray  # rows x 1
    sx: np.ndarray  # 1 x cols
    labels: np.ndarray
    part: np.ndarray
    inst: np.ndarray


def _building_frame(o: _Obj) -> tuple[float, float, float, float, float]:
    """Wall rectangle ``(x0, x1, y0, y1)`` of a building and the overhang of its roof."""
    p = o.params
    x0, x1, y1 = o.x - p["bw"] / 2, o.x + p["bw"] / 2, o.y
    y0 = y1 - p["bh"]
    return x0, x1, y0, y1, 0.08 * p["bw"]


def _tree_centre(o: _Obj) -> float:
    """Vertical centre of a tree's crown (above its trunk)."""
    return o.y - o.params["trunk"] - o.params["ry"] * 0.9


def _object_box(o: _Obj) -> tuple[float, float, float, float]:
    """Bounding box ``(x0, x1, y0, y1)`` of an object, in the layout's coordinates."""
    p = o.params
    if o.kind == BUILDING:
        x0, x1, y0, y1, over = _building_frame(o)
        return (x0 - over, x1 + over, y0 - p["rh"], y1)
    if o.kind == TREE:
        cy = _tree_centre(o)
        return (o.x - 1.3 * p["r"], o.x + 1.3 * p["r"], cy - 1.35 * p["ry"], o.y)
    return (o.x - 1.4 * p["r"], o.x + 1.4 * p["r"], o.y - 1.4 * p["ry"], o.y + 0.2 * p["ry"])


class _LayoutBuilder:
    """One layout being drawn: its random streams, pixel grid, label/part/instance maps and objects.

    A domain changes values (probabilities, ranges, counts), never the code path: with the source values the
    draws are exactly those of SCENES_VERSION 1, so its output stays bit for bit the same. For the same reason
    the steps of :meth:`build` keep their order: each one consumes the random stream in turn.
    """

    def __init__(self, layout_seed: int, height: int, width: int, d: Domain) -> None:
        self.d = d
        self.rng = _rng(layout_seed, _LAYOUT_DOMAIN)
        self.noise = _Noise(self.rng)
        H, W = self.H, self.W = height, width
        self.a = W / H
        self.ys = (np.arange(H) + 0.5) / H
        self.xs = (np.arange(W) + 0.5) / H  # x in height units keeps shapes round on non-square images
        self.Y = np.broadcast_to(self.ys[:, None], (H, W))
        self.X = np.broadcast_to(self.xs[None, :], (H, W))
        self.labels = np.full((H, W), SKY, np.uint8)
        self.part = np.zeros((H, W), np.uint8)
        self.inst = np.zeros((H, W), np.int32)
        self.h = self.rng.uniform(*d.horizon)
        self.ridge = np.full(W, 2.0)  # 2.0: no mountain in this column
        self.geom = [(0.0, 0.0, 1.0, 1.0)]  # shading frame per instance; 0 is "no instance"
        self.buildings: list = []

    def build(self) -> _Layout:
        """Draw the whole layout: sky, mountains, ground, then the objects far to near."""
        self.clouds()
        self.mountains()
        ground, road = self.ground()
        objs = self.town(ground)
        objs += self.trees(ground)
        objs += self.rocks(ground)
        objs += self.unlabeled_object(ground)
        outline_void = self.rng.random() < 0.35  # drawn before the objects are painted (stream order)
        self.draw_objects(objs)
        if outline_void and self.buildings:
            self.outline_buildings()
        return _Layout(self.h, self.a, self.labels, self.part, self.inst, np.asarray(self.geom, dtype=np.float64),
                       self.buildings, self.ridge, road)

    def clouds(self) -> None:
        """Clouds: a horizontally stretched fbm field, thinning toward the horizon."""
        d, h = self.d, self.h
        coverage = self.rng.uniform(*d.cloud_cover) if self.rng.random() < d.cloud_p else 0.0
        sky_rows = int(np.ceil(h * self.H))
        if coverage > 0 and sky_rows > 0:
            Ys, Xs = self.Y[:sky_rows], self.X[:sky_rows]
            c = self.noise.fbm(Xs * 2.2, Ys * 6.5, 4, slot=4)
            thr = 0.35 - 1.0 * coverage + 0.5 * (Ys / h)
            self.labels[:sky_rows][c > thr] = CLOUD

    def mountains(self) -> None:
        """Mountains: one or two ridged-fbm ridge lines standing on the horizon (far layer taller)."""
        d, h, rng, Y = self.d, self.h, self.rng, self.Y
        if rng.random() < d.mountain_p:
            n_layers = int(rng.integers(1, 3))
            for k in range(n_layers):
                amp = rng.uniform(*d.mountain_height) * h * (1.0 if k == 0 else 0.55)
                freq = rng.uniform(1.2, 3.5) * (1.0 + k)
                n = self.noise.fbm(self.xs * freq, 10.5 + 3.0 * k, 5, slot=5 + k, gain=0.5)
                profile = np.clip(1.0 - np.abs(n) * d.ridge_sharpness, 0.0, d.ridge_cap)  # ridged: sharp peaks
                top = h - amp * (0.15 + 0.85 * profile)
                m = (Y >= top[None, :]) & (Y < h)
                self.labels[m] = MOUNTAIN
                self.part[m] = _PART_FAR if (n_layers == 2 and k == 0) else 0
                self.ridge = np.minimum(self.ridge, top)

    def ground(self):
        """Ground: grass, water, sand and road from one analytic ground plan; returns it and the road."""
        ground, road = _ground_fn(self.rng, self.noise, self.h, self.a, self.d)
        g0 = int(np.floor(self.h * self.H))
        below = self.Y[g0:] >= self.h
        gl = ground(self.X[g0:], self.Y[g0:])
        self.labels[g0:][below] = gl[below]
        return ground, road

    def town(self, ground) -> list[_Obj]:
        """Maybe a small town: buildings around a centre, on the ground the domain allows."""
        d, h, a, rng = self.d, self.h, self.a, self.rng
        objs: list[_Obj] = []
        if rng.random() < d.town_p:
            xc = rng.uniform(0.15, 0.85) * a
            spread = rng.uniform(0.3, 0.9) * a
            bx, by = _place(rng, ground, h, a, 14, d.town_ground, (xc - spread / 2, xc + spread / 2), (0.04, 0.7))
            n_b = int(rng.integers(*d.n_buildings))
            for x, y in zip(bx[:n_b], by[:n_b]):
                s = 0.1 + 0.9 * (y - h) / (1.0 - h)
                bw = s * rng.uniform(0.18, 0.45)
                bh = s * rng.uniform(0.15, 0.4) * (1.8 if rng.random() < d.tall_p else 1.0)
                gable = rng.random() < d.gable_p
                rh = bw * rng.uniform(0.25, 0.5) if gable else 0.0
                ncols = max(1, int(bw / (s * rng.uniform(0.05, 0.08))))
                nrows = max(1, int(bh / (s * rng.uniform(0.06, 0.09))))
                objs.append(_Obj(BUILDING, x, y, s, dict(bw=bw, bh=bh, rh=rh, ncols=ncols, nrows=nrows)))
        return objs

    def trees(self, ground) -> list[_Obj]:
        """Maybe trees, half of the candidates in a grove, the others anywhere."""
        d, h, a, rng = self.d, self.h, self.a, self.rng
        objs: list[_Obj] = []
        if rng.random() < d.tree_p:
            n_t = int(rng.integers(*d.n_trees))
            conifer_p = rng.uniform(*d.conifer_p)
            gx = rng.uniform(0.1, 0.9) * a
            x1, y1 = _place(rng, ground, h, a, 24, d.tree_ground, (gx - 0.25 * a, gx + 0.25 * a), (0.02, 0.8))
            x2, y2 = _place(rng, ground, h, a, 24, d.tree_ground, (0.0, a), (0.02, 1.0))
            tx, ty = np.concatenate([x1, x2])[:n_t], np.concatenate([y1, y2])[:n_t]
            for x, y in zip(tx, ty):
                s = 0.08 + 0.92 * (y - h) / (1.0 - h)
                r = s * rng.uniform(0.035, 0.085)
                objs.append(_Obj(TREE, x, y, s, dict(
                    r=r, ry=r * rng.uniform(1.0, 1.5), trunk=r * rng.uniform(0.4, 0.9),
                    conifer=bool(rng.random() < conifer_p))))
        return objs

    def rocks(self, ground) -> list[_Obj]:
        """Maybe rocks, on grass or on the beach."""
        d, h, a, rng = self.d, self.h, self.a, self.rng
        objs: list[_Obj] = []
        if rng.random() < d.rock_p:
            n_r = int(rng.integers(*d.n_rocks))
            rx_, ry_ = _place(rng, ground, h, a, d.rock_candidates, (GRASS, SAND), (0.0, a), (0.05, 1.0))
            for x, y in zip(rx_[:n_r], ry_[:n_r]):
                s = 0.08 + 0.92 * (y - h) / (1.0 - h)
                r = s * rng.uniform(*d.rock_size)
                objs.append(_Obj(ROCK, x, y, s, dict(r=r, ry=r * rng.uniform(0.5, 0.9))))
        return objs

    def unlabeled_object(self, ground) -> list[_Obj]:
        """One small unlabeled object (say an unannotated car or bush): exercises ignore handling."""
        h, rng = self.h, self.rng
        ux, uy = _place(rng, ground, h, self.a, 8, (GRASS, ROAD, SAND), (0.0, self.a), (0.15, 1.0))
        if not len(ux):
            return []
        s = 0.08 + 0.92 * (uy[0] - h) / (1.0 - h)
        r = s * rng.uniform(0.03, 0.06)
        return [_Obj(IGNORE, ux[0], uy[0], s, dict(r=r, ry=r * rng.uniform(0.5, 0.8)))]

    def draw_objects(self, objs: list[_Obj]) -> None:
        """Paint far to near (painter's algorithm), each object inside its own bounding box."""
        H, W = self.H, self.W
        objs.sort(key=lambda o: o.y)
        for o in objs:
            box = _object_box(o)
            c0, c1 = max(0, int(box[0] * H)), min(W, int(np.ceil(box[1] * H)) + 1)
            r0, r1 = max(0, int(box[2] * H)), min(H, int(np.ceil(box[3] * H)) + 1)
            if c0 >= c1 or r0 >= r1:
                continue  # entirely outside the image: no instance id
            patch = _Patch(self.ys[r0:r1, None], self.xs[None, c0:c1], self.labels[r0:r1, c0:c1],
                           self.part[r0:r1, c0:c1], self.inst[r0:r1, c0:c1])
            iid = len(self.geom)
            if o.kind == BUILDING:
                self._draw_building(o, iid, patch)
            elif o.kind == TREE:
                self._draw_tree(o, iid, patch)
            else:
                self._draw_blob(o, iid, patch)

    def _draw_building(self, o: _Obj, iid: int, patch: _Patch) -> None:
        """A wall with a gable or flat roof and a door; records its window grid for the painter."""
        p, sy, sx = o.params, patch.sy, patch.sx
        x0, x1, y0, y1, over = _building_frame(o)
        wall = (sx >= x0) & (sx < x1) & (sy >= y0) & (sy < y1)
        m = wall.copy()
        if p["rh"] > 0:  # gable roof: a triangle with a small overhang
            k = (sy - (y0 - p["rh"])) / p["rh"]
            roof = (sy >= y0 - p["rh"]) & (sy < y0) & (np.abs(sx - o.x) < (p["bw"] / 2 + over) * k)
        else:  # flat roof: a thin parapet band
            roof = wall & (sy < y0 + 0.06 * p["bh"])
        door = wall & (np.abs(sx - o.x) < 0.09 * p["bw"]) & (sy > y1 - 0.28 * p["bh"])
        m |= roof
        patch.labels[m] = BUILDING
        patch.part[m] = 0
        patch.part[roof] = _PART_ROOF
        patch.part[door] = _PART_DOOR
        patch.inst[m] = iid
        self.geom.append((o.x, (y0 + y1) / 2, p["bw"] / 2, p["bh"] / 2))
        self.buildings.append((iid, x0, x1, y0, y1, p["ncols"], p["nrows"]))

    def _draw_tree(self, o: _Obj, iid: int, patch: _Patch) -> None:
        """A round or conical crown with a wobbly outline on a trunk."""
        p, sy, sx = o.params, patch.sy, patch.sx
        cy = _tree_centre(o)
        r, ry = p["r"], p["ry"]
        dx, dy = (sx - o.x) / r, (sy - cy) / ry
        wobble = 0.22 * self.noise.fbm(sx / r * 1.3, sy / r * 1.3, 2, slot=8)
        if p["conifer"]:  # a narrow cone
            k = (dy + 1.3) / 2.3
            crown = (k >= 0) & (k <= 1) & (np.abs(dx) < 1.05 * k + wobble * 0.5)
        else:
            crown = dx * dx + dy * dy < (1.0 + wobble) ** 2
        trunk = (np.abs(sx - o.x) < 0.16 * r) & (sy < o.y) & (sy > cy) & ~crown
        m = crown | trunk
        patch.labels[m] = TREE
        patch.part[m] = 0
        patch.part[trunk] = _PART_TRUNK
        patch.inst[m] = iid
        self.geom.append((o.x, cy, r, ry))

    def _draw_blob(self, o: _Obj, iid: int, patch: _Patch) -> None:
        """A wobbly ellipse sitting on its base line: a rock or the unlabeled object (its kind is the label)."""
        p, sy, sx = o.params, patch.sy, patch.sx
        r, ry = p["r"], p["ry"]
        cy = o.y - 0.55 * ry
        dx, dy = (sx - o.x) / r, (sy - cy) / ry
        wobble = 0.25 * self.noise.fbm(sx / r * 1.5, sy / r * 1.5, 2, slot=9)
        m = (dx * dx + dy * dy < (1.0 + wobble) ** 2) & (sy < o.y + 0.1 * ry)
        patch.labels[m] = o.kind
        patch.part[m] = 0
        patch.inst[m] = iid
        self.geom.append((o.x, cy, r, ry))

    def outline_buildings(self) -> None:
        """Annotators often leave a thin void border around objects (as in PASCAL VOC): 1 px around buildings."""
        labels = self.labels
        b = labels == BUILDING
        grown = b.copy()
        grown[1:] |= b[:-1]
        grown[:-1] |= b[1:]
        grown[:, 1:] |= b[:, :-1]
        grown[:, :-1] |= b[:, 1:]
        labels[grown & ~b & (labels != IGNORE)] = IGNORE


def _make_layout(layout_seed: int, height: int, width: int, d: Domain) -> _Layout:
    """The layout of one scene (label, part and instance maps) for ``layout_seed`` in domain ``d``."""
    return _LayoutBuilder(layout_seed, height, width, d).build()


# -------------------------------------------------------------------------------------------- appearance

def _jitter(rng: np.random.Generator, rgb, amount: float = 0.05) -> np.ndarray:
    return np.clip(np.asarray(rgb, dtype=np.float64) + (rng.random(3) - 0.5) * 2 * amount, 0.0, 1.0)


class _Painter:
    """One image being painted over a layout: its random streams, the scene-wide look and the flat canvas.

    Pixels are flat (``H*W`` rows of RGB) and each class is painted in turn at its own pixels. As in
    :class:`_LayoutBuilder`, a domain changes values, never the code path (source stays bit for bit), and the
    sections run in the order of :meth:`paint`: each one consumes the random stream in turn.
    """

    def __init__(self, layout: _Layout, appearance_seed: int, d: Domain) -> None:
        self.layout, self.d = layout, d
        rng = self.rng = _rng(appearance_seed, _APPEARANCE_DOMAIN)
        noise = self.noise = _Noise(rng)
        H, W = self.H, self.W = layout.labels.shape
        self.n = H * W
        h = self.h = layout.h
        self.flat_lab = layout.labels.ravel()
        Y = self.Y = np.repeat((np.arange(H) + 0.5) / H, W)
        X = self.X = np.tile((np.arange(W) + 0.5) / H, H)

        # The scene-wide look: time of day, season, sky/cloud/light colours and the sun.
        tod = self.tod = d.times[int(rng.choice(len(d.times), p=list(d.time_p)))]
        self.season = d.seasons[int(rng.integers(len(d.seasons)))]
        self.top, self.hor, self.c_light, self.c_shade, light = (_jitter(rng, c, 0.04) for c in (
            tod.sky_top, tod.sky_horizon, tod.cloud_light, tod.cloud_shade, tod.light))
        self.light = light * rng.uniform(*d.light_gain)
        self.sun_x = rng.uniform(0.1, 0.9) * layout.aspect
        sun_dir = np.array([-1.0 if self.sun_x < layout.aspect / 2 else 1.0, -1.2])  # toward the sun (up, to its side)
        sun_dir /= np.sqrt((sun_dir**2).sum())
        self.sun_dir = sun_dir
        # (x * 1.0 is exact in IEEE arithmetic: the source domain's default scales leave its bits unchanged.)
        fine = noise.fbm(X * (40.0 * d.texture_scale), Y * (40.0 * d.texture_scale), 2, slot=0)  # pixel grain
        coarse = noise.fbm(X * (5.0 * d.texture_scale), Y * (5.0 * d.texture_scale), 3, slot=1)  # patches
        fine *= d.texture_contrast
        coarse *= d.texture_contrast
        self.fine, self.coarse = fine, coarse
        self.img = np.empty((self.n, 3))

        # Perspective coordinates of the ground plane: textures shrink toward the horizon.
        self.t_ground = np.maximum((Y - h) / (1.0 - h), 0.02)
        self.depth = 1.0 / self.t_ground
        # Objects (trees, rocks, buildings): per-pixel instance and part, per-instance shading frame.
        self.inst = layout.inst.ravel()
        self.part = layout.part.ravel()
        self.geom = layout.inst_geom
        self.n_inst = len(self.geom)

    def paint(self) -> np.ndarray:
        """Paint every section in stream order; the ``H x W x 3`` uint8 image."""
        self.sky()
        self.clouds()
        self.mountains()
        self.water()
        self.sand()
        self.grass()
        self.trees()
        self.rocks()
        self.buildings()
        self.road()
        self.unlabeled()
        return self.finish()

    def idx(self, c: int) -> np.ndarray:
        """Flat indices of the pixels labelled ``c``."""
        return np.flatnonzero(self.flat_lab == c)

    def lit(self, ii: np.ndarray, strength: float) -> np.ndarray:
        """Brightness of object pixels ``ii``: a lit side toward the sun, relative to each instance's frame."""
        g_ = self.geom[self.inst[ii]]
        dx = (self.X[ii] - g_[:, 0]) / g_[:, 2]
        dy = (self.Y[ii] - g_[:, 1]) / g_[:, 3]
        return 1.0 + strength * (dx * self.sun_dir[0] + dy * self.sun_dir[1]) * 0.5

    def sky(self) -> None:
        """Sky: vertical gradient + sun glow."""
        X, Y, h, top, hor, tod = self.X, self.Y, self.h, self.top, self.hor, self.tod
        i = self.idx(SKY)
        ty = np.clip(Y[i] / h, 0.0, 1.0)
        g = ty * (2.0 - ty)
        col = top + (hor - top) * g[:, None]
        if tod.glow > 0:
            d2 = (X[i] - self.sun_x) ** 2 + ((Y[i] - h) * 1.6) ** 2
            glow = tod.glow / (1.0 + 40.0 * d2)
            col = col + glow[:, None] * np.array([1.0, 0.8, 0.5])
        self.img[i] = col

    def clouds(self) -> None:
        """Clouds: light top, shaded bottom, fluffy texture."""
        X, Y, c_light, c_shade = self.X, self.Y, self.c_light, self.c_shade
        i = self.idx(CLOUD)
        tex = self.noise.fbm(X[i] * 14.0, Y[i] * 22.0, 3, slot=2)
        k = np.clip(0.55 + 0.45 * tex - 0.25 * (Y[i] / self.h), 0.0, 1.0)
        self.img[i] = c_shade + (c_light - c_shade) * k[:, None]

    def mountains(self) -> None:
        """Mountains: rock tone with vertical streaks, aerial perspective toward the horizon colour, snow caps."""
        rng, d, layout, X, Y, H, W, h = self.rng, self.d, self.layout, self.X, self.Y, self.H, self.W, self.h
        i = self.idx(MOUNTAIN)
        rock = _jitter(rng, d.rock_tones[int(rng.integers(len(d.rock_tones)))], 0.05)
        streak = self.noise.fbm(X[i] * 30.0, Y[i] * 7.0, 3, slot=3)
        col_i = np.minimum((X[i] * H).astype(np.int64), W - 1)
        ridge_y = layout.ridge[col_i]
        below_ridge = np.clip((Y[i] - ridge_y) / max(h * 0.5, 1e-3), 0.0, 1.0)
        # Flanks facing the sun are lit: the ridge slope at a column stands for the slope of the face below it.
        rp = np.pad(np.minimum(layout.ridge, h), 2, mode="edge")
        slope = (rp[4:] - rp[:-4]) * (H / 4.0)
        face = np.clip(slope[col_i] * self.sun_dir[0] * 1.5, -1.0, 1.0)
        shade = 0.78 + 0.2 * streak - 0.18 * below_ridge + 0.1 * self.coarse[i] + 0.16 * face
        col = rock * shade[:, None]
        snow_line = rng.uniform(*d.snow_line) if (self.season.snowy or rng.random() < d.snowcap_p) else -1.0
        if snow_line > 0:
            snowy = (Y[i] - ridge_y) < snow_line * (h - ridge_y + 1e-3) * (0.6 + 0.4 * streak)
            col[snowy] = (np.array([0.93, 0.94, 0.97]) * (0.85 + 0.15 * streak[snowy, None]))
        far = self.part[i] == _PART_FAR
        haze = np.where(far, 0.55, 0.25)[:, None]
        self.img[i] = col * (1.0 - haze) + self.hor * haze

    def water(self) -> None:
        """Water: tint mixed with the sky near the horizon (Fresnel), perspective waves and glints."""
        rng, d, X, depth, hor = self.rng, self.d, self.X, self.depth, self.hor
        i = self.idx(WATER)
        tint = _jitter(rng, d.water_tints[int(rng.integers(len(d.water_tints)))], 0.04)
        wave_f = rng.uniform(0.8, 2.0)
        u = (X[i] - self.layout.aspect / 2) * depth[i]
        wv = _wave(depth[i] * wave_f + 0.6 * self.noise.fbm(u * 0.6, depth[i] * 0.3, 2, slot=4))
        fres = np.clip(1.0 - self.t_ground[i] * 2.5, 0.0, 1.0)[:, None] * 0.6
        col = tint * (1.0 - fres) + hor * fres
        self.img[i] = col * (0.88 + 0.2 * wv)[:, None] + 0.04 * self.fine[i, None]
        if self.tod.glow > 0:
            glint = np.clip(1.0 - np.abs(X[i] - self.sun_x) * 6.0, 0.0, 1.0) * (wv > 0.8)
            self.img[i] += glint[:, None] * np.array([0.5, 0.4, 0.25])

    def sand(self) -> None:
        """Sand: pale with grain and ripples; wetter (darker) near water is implied by the first rows."""
        i = self.idx(SAND)
        sand = _jitter(self.rng, self.d.sand, 0.05)
        rip = _wave(self.depth[i] * 3.0 + 0.5 * self.coarse[i])
        self.img[i] = sand * (0.9 + self.d.sand_ripple * rip + 0.08 * self.fine[i] + 0.05 * self.coarse[i])[:, None]

    def grass(self) -> None:
        """Grass: season colour, large patches, perspective grain, sometimes mowing stripes."""
        rng, d, season, depth = self.rng, self.d, self.season, self.depth
        i = self.idx(GRASS)
        snow_ground = season.snowy and rng.random() < d.snow_ground_p
        dry_winter = season.snowy and not snow_ground
        grass = _jitter(rng, d.bare_grass if dry_winter else season.grass, 0.05)
        u = (self.X[i] - self.layout.aspect / 2) * depth[i]
        grain = self.noise.fbm(u * 4.0, depth[i] * 4.0, 2, slot=5)
        shade = 0.85 + 0.12 * self.coarse[i] + 0.1 * grain
        if rng.random() < d.stripes_p:
            shade = shade + 0.06 * (_wave(u * 0.6) - 0.5)
        col = grass * shade[:, None]
        fade = np.clip(1.0 - self.t_ground[i] * 4.0, 0.0, 1.0)[:, None] * 0.35
        self.img[i] = col * (1.0 - fade) + self.hor * fade

    def trees(self) -> None:
        """Trees: a crown colour per instance, leafy texture, lit side; brown trunks."""
        rng, inst, n_inst = self.rng, self.inst, self.n_inst
        i = self.idx(TREE)
        crowns = np.asarray(self.season.crowns)
        pick = rng.integers(len(crowns), size=n_inst)
        var = 0.85 + 0.3 * rng.random(n_inst)
        col = crowns[pick[inst[i]]] * var[inst[i], None]
        leaf = self.noise.fbm(self.X[i] * 90.0, self.Y[i] * 90.0, 2, slot=6)
        col = col * (self.lit(i, 0.55 * self.d.shading) * (0.85 + 0.25 * leaf))[:, None]
        trunk = self.part[i] == _PART_TRUNK
        col[trunk] = np.array([0.32, 0.23, 0.15]) * (0.9 + 0.1 * leaf[trunk, None])
        self.img[i] = col

    def rocks(self) -> None:
        """Rocks: stone with a brightness per instance, texture, lit side, and snow caps in snowy domains."""
        rng, d, inst, geom = self.rng, self.d, self.inst, self.geom
        i = self.idx(ROCK)
        stone = _jitter(rng, d.stone, 0.06)
        var = 0.8 + 0.35 * rng.random(self.n_inst)
        tex = self.noise.fbm(self.X[i] * 60.0, self.Y[i] * 60.0, 2, slot=7)
        self.img[i] = stone * (var[inst[i]] * self.lit(i, 0.6 * d.shading) * (0.9 + 0.15 * tex))[:, None]
        if d.rock_snow > 0:  # snow lies on the upper part of each rock (its instance box spans dy = -1..1)
            dy = (self.Y[i] - geom[inst[i], 1]) / geom[inst[i], 3]
            cap = dy < 2.0 * d.rock_snow - 1.0 + 0.3 * tex
            self.img[i[cap]] = np.array([0.93, 0.94, 0.97]) * (0.88 + 0.1 * tex[cap, None])

    def buildings(self) -> None:
        """Buildings: wall colour per instance, roof colour, window grid (lit at dusk), door."""
        rng, d, inst, part, n_inst = self.rng, self.d, self.inst, self.part, self.n_inst
        i = self.idx(BUILDING)
        walls = np.asarray(d.walls)[rng.integers(len(d.walls), size=n_inst)]
        walls = walls * (0.9 + 0.15 * rng.random((n_inst, 1)))
        roofs = np.asarray(d.roofs)[rng.integers(len(d.roofs), size=n_inst)]
        roofs = roofs * (0.85 + 0.25 * rng.random((n_inst, 1)))
        col = walls[inst[i]] * (self.lit(i, 0.25 * d.shading) * (0.95 + 0.05 * self.fine[i]))[:, None]
        roof = part[i] == _PART_ROOF
        tiles = _wave(self.Y[i][roof] * self.H * 0.5)
        col[roof] = roofs[inst[i][roof]] * (0.85 + 0.15 * tiles)[:, None]
        col[part[i] == _PART_DOOR] = np.array([0.3, 0.2, 0.14])
        glass = np.clip(self.hor * 0.45 + 0.08, 0.0, 1.0)
        # Windows are painted on an H x W view of a canvas holding the wall colours.
        flat_col = np.zeros((self.n, 3))
        flat_col[i] = col
        img2 = flat_col.reshape(self.H, self.W, 3)
        win_mask, lit_mask = self._windows(self.tod.lit_windows)
        img2[win_mask] = glass
        img2[lit_mask] = (1.0, 0.84, 0.45)
        self.img[i] = flat_col[i]

    def _windows(self, lit_p: float) -> tuple[np.ndarray, np.ndarray]:
        """``H x W`` masks of the window panes on each building's wall, and of those lit (each with ``lit_p``)."""
        layout, H, W = self.layout, self.H, self.W
        win_mask = np.zeros((H, W), bool)
        lit_mask = np.zeros((H, W), bool)
        for iid, x0, x1, y0, y1, ncols, nrows in layout.buildings:
            r0, r1 = max(0, int(y0 * H)), min(H, int(np.ceil(y1 * H)))
            c0, c1 = max(0, int(x0 * H)), min(W, int(np.ceil(x1 * H)))
            if r0 >= r1 or c0 >= c1:
                continue
            su = ((np.arange(c0, c1) + 0.5) / H - x0) / (x1 - x0) * ncols
            sv = ((np.arange(r0, r1) + 0.5) / H - y0) / (y1 - y0) * nrows
            fu, fv = su - np.floor(su), sv - np.floor(sv)
            cell = (np.abs(fu - 0.5)[None, :] < 0.26) & (np.abs(fv - 0.52)[:, None] < 0.24)
            cell &= (sv[:, None] > 0.08 * nrows) & (sv[:, None] < 0.78 * nrows)
            own = (layout.inst[r0:r1, c0:c1] == iid) & (layout.part[r0:r1, c0:c1] == 0)
            win = cell & own
            on = self.rng.random((nrows, ncols)) < lit_p  # each window lit or not
            row = np.minimum(sv.astype(np.int64), nrows - 1)
            wl = on[row[:, None], np.minimum(su.astype(np.int64), ncols - 1)]
            win_mask[r0:r1, c0:c1] |= win
            lit_mask[r0:r1, c0:c1] |= win & wl
        return win_mask, lit_mask

    def road(self) -> None:
        """Road: asphalt (or a dirt track) with perspective grain, dashed centre line and edge lines."""
        rng, d, X, depth, layout = self.rng, self.d, self.X, self.depth, self.layout
        i = self.idx(ROAD)
        dirt = rng.random() < d.dirt_road_p
        asphalt = _jitter(rng, d.dirt if dirt else d.asphalt, 0.05)
        u = (X[i] - layout.aspect / 2) * depth[i]
        grain = self.noise.fbm(u * 8.0, depth[i] * 8.0, 2, slot=8)
        col = asphalt * (0.9 + 0.1 * grain + 0.05 * self.fine[i])[:, None]
        if layout.road is not None and not dirt:
            xv, xb, wb, curve = layout.road
            t = self.t_ground[i]
            centre = xv + (xb - xv) * t + curve * t * (1.0 - t)
            rel = np.abs(X[i] - centre) / (0.003 + wb * t)
            dash = (rel < 0.035) & (_wave(depth[i] * 1.5) > 0.5)
            edge = (rel > 0.86) & (rel < 0.92)
            paint = np.array((0.95, 0.8, 0.2) if rng.random() < 0.4 else (0.93, 0.93, 0.9))
            col[dash | edge] = paint * (0.9 + 0.1 * grain[dash | edge, None])
        self.img[i] = col

    def unlabeled(self) -> None:
        """Unlabeled pixels: the void border keeps what the neighbours would show (grass/sky mix); the small
        unknown object gets a saturated paint so it looks like "something"."""
        i = self.idx(IGNORE)
        obj = self.inst[i] > 0
        car = _jitter(self.rng, (0.7, 0.15, 0.15), 0.3)
        self.img[i] = np.where(obj[:, None], car * self.lit(i, 0.4)[:, None] if len(i) else car,
                               self.hor * 0.6 + 0.2)

    def finish(self) -> np.ndarray:
        """Global: light colour, mild haze at the horizon, contrast, vignette, sensor noise; then to uint8."""
        rng, d, X, Y, hor = self.rng, self.d, self.X, self.Y, self.hor
        img = self.img
        img *= self.light
        near_h = np.clip(1.0 - np.abs(Y - self.h) * 12.0, 0.0, 1.0)[:, None] * rng.uniform(*d.haze)
        img = img * (1.0 - near_h) + hor * near_h
        contrast = rng.uniform(*d.contrast)
        img = (img - 0.5) * contrast + 0.5 + rng.uniform(*d.brightness)
        cx, cy = X - self.layout.aspect / 2, Y - 0.5
        img *= (1.0 - rng.uniform(*d.vignette) * (cx * cx + cy * cy))[:, None]
        img += (rng.random((self.n, 3)) - 0.5) * rng.uniform(*d.sensor_noise)
        return np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(self.H, self.W, 3)


def _paint(layout: _Layout, appearance_seed: int, d: Domain) -> np.ndarray:
    """The ``H x W x 3`` uint8 image of ``layout`` for ``appearance_seed`` in domain ``d``."""
    return _Painter(layout, appearance_seed, d).paint()


# ---------------------------------------------------------------------------------------------- public API


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    height, width = (int(v) for v in size)
    if height < 8 or width < 8:
        raise ValueError(f"scene size must be at least 8x8 (height, width), got {size}")
    return height, width


def render_layout(layout_seed: int, size: tuple[int, int] = (128, 128), domain: str = DEFAULT_DOMAIN) -> np.ndarray:
    """The label map of a scene alone (``H x W`` uint8, contiguous ids 0..9 and 255), without painting it."""
    d = get_domain(domain)
    return _make_layout(layout_seed, *_check_size(size), d).labels


def render_scene(layout_seed: int, appearance_seed: int, size: tuple[int, int] = (128, 128),
                 domain: str = DEFAULT_DOMAIN) -> tuple[np.ndarray, np.ndarray]:
    """Render one procedural scene.

    Args:
        layout_seed: Decides the label map (geometry) only.
        appearance_seed: Decides the look (time of day, season, colours, textures, noise) only.
        size: ``(height, width)`` in pixels; any size >= 8x8, square or not.
        domain: Name of the world to draw (a key of :data:`DOMAINS`): its layout statistics and appearance
            priors. The same seeds in another domain give an unrelated scene of that domain.

    Returns:
        ``(image, labels)``: ``H x W x 3`` uint8 RGB, and ``H x W`` uint8 contiguous ids of
        :func:`dpsims_aug.labels.embedded_label_space` with 255 on a few unlabeled pixels.
        Identical bits for identical arguments on any machine.
    """
    d = get_domain(domain)
    layout = _make_layout(layout_seed, *_check_size(size), d)
    return _paint(layout, appearance_seed, d), layout.labels


def render_scene_with_instances(layout_seed: int, appearance_seed: int, size: tuple[int, int] = (128, 128),
                                domain: str = DEFAULT_DOMAIN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`render_scene` (the same image and labels, bit for bit) and its objects.

    Returns:
        ``(image, labels, objects)``: ``objects`` is ``H x W`` int32, the object index (1, 2, ... in drawing order,
        far to near) of every pixel of a :data:`THING_CLASSES` class (trees, rocks, buildings: an occluded object
        keeps its visible pixels), 0 elsewhere. Two trees that touch are one ``tree`` region of ``labels`` but two
        objects here.
    """
    d = get_domain(domain)
    layout = _make_layout(layout_seed, *_check_size(size), d)
    objects = np.where(np.isin(layout.labels, THING_CLASSES), layout.inst, 0).astype(np.int32)
    return _paint(layout, appearance_seed, d), layout.labels, objects


def scene_seeds(seed: int, index: int, stream: int = 0) -> tuple[int, int]:
    """The (layout_seed, appearance_seed) of scene ``index`` of a dataset drawn with ``seed``.

    ``stream`` separates splits (the writers use 0 for train and 1 for validation), so growing one split never
    changes the other.
    """
    if min(int(seed), int(index), int(stream)) < 0:
        raise ValueError("seed, index and stream must be non-negative")
    seq = np.random.SeedSequence([int(seed), int(stream), int(index), _INDEX_DOMAIN])
    state = seq.generate_state(2, np.uint32)
    return int(state[0]), int(state[1])


def iter_scenes(n: int, size: tuple[int, int] = (128, 128), seed: int = 0, stream: int = 0,
                start: int = 0, domain: str = DEFAULT_DOMAIN) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(image, labels)`` for scenes ``start .. start+n-1`` of the dataset ``(seed, stream)``.

    Scene ``i`` uses :func:`scene_seeds` ``(seed, i, stream)``, so any slice can be regenerated on its own.
    ``domain`` picks the world (see :func:`render_scene`); the seeds do not depend on it.
    """
    get_domain(domain)  # fail on a bad name now, not at the first next()
    return (render_scene(*scene_seeds(seed, index, stream), size=size, domain=domain)
            for index in range(start, start + n))


def scene_grid(n_layouts: int = 4, n_appearances: int = 4, size: tuple[int, int] = (128, 128), seed: int = 0,
               gap: int = 2, domain: str = DEFAULT_DOMAIN) -> np.ndarray:
    """A visual check: one row per layout, the colourized label map then ``n_appearances`` renderings.

    Returns an RGB uint8 array (white gaps between tiles); unlabeled pixels are black in the label column.
    ``domain`` picks the world (see :func:`render_scene`).
    """
    d = get_domain(domain)
    from dpsims_aug.image_grid import tile_grid
    from dpsims_aug.labels import embedded_label_space

    space = embedded_label_space()
    height, width = _check_size(size)
    rows = []
    for r in range(n_layouts):
        layout_seed, appearance_seed = scene_seeds(seed, r)
        layout = _make_layout(layout_seed, height, width, d)
        rows.append([space.colorize(layout.labels)]
                    + [_paint(layout, appearance_seed + k, d) for k in range(n_appearances)])
    return tile_grid(rows, gap)
