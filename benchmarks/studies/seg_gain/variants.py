"""The study's variants: what a segmenter is trained on, named by the CLI strings (``real``, ``online``,
``pool_n4``, ``pool_n4_f_s0.25``, ``oracle_n4``, ``pool_n4_2s_s0.75`` ...) and parsed once into a :class:`Variant`.

``recolour<s>`` (e.g. ``recolour0.3``) is real only with :class:`~dpsims_aug.mm.transforms.ClassRecolour` at
strength s in the segmenter's pipeline: per-class appearance variety without synthesis, the baseline of a
generator's variety. A pool variant's ``_rc<s>`` part puts the same step into both of its pipelines (real and
synthetic samples): what a generator adds on top of the recolouring.

A pool variant's name is ``<source>_n<n>``, then ``_f`` / ``_r`` / ``_fr`` for a filtered / resampled pool, then
``_s<share>`` unless the synthetic share is the default 0.5, then ``_rc<s>`` for ClassRecolour at strength s. A
``_2s`` part (anywhere after the pool size) makes it the two-stage schedule (pretrain on the mix, fine-tune on the
real images), the share then being stage 1's. The name is kept as given: it names the variant's run folders, so
``pool_n4_s0.5`` and ``pool_n4`` stay two variants.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

RECIPES = {"plain": "", "filter": "f", "resample": "r", "filter+resample": "fr"}  # recipe -> variant tag
# Where a pool's images come from -> variant prefix. "pool": the GAN, n images per labelled map; "layouts": the GAN on
# n new label maps per labelled map (`dpsims-aug layouts`), one image each; "oracle": the embedded renderer, n new
# appearances of each labelled layout (a perfect appearance synthesizer); "oracle_new": the renderer, n new scenes
# per labelled map (a perfect layout + image synthesizer).
SOURCES = {"pool": "pool", "layouts": "layouts", "oracle": "oracle", "oracle_new": "oraclenew"}
GENERATOR_SOURCES = ("pool", "layouts")  # the sources drawn by the study's generator
ORACLE_SOURCES = ("oracle", "oracle_new")  # the renderer's: yardsticks, embedded dataset only
TWO_STAGE = "2s"  # variant tag: pretrain on the mix, then fine-tune on the real images (equal total iterations)
DEFAULT_SHARE = 0.5


@dataclass(frozen=True)
class Variant:
    """One variant of the study. ``kind``: ``real``, ``recolour``, ``online`` or ``pool`` (every source's pool);
    ``recolour``: the ClassRecolour strength in the segmenter's training pipelines (0: none); ``n``: images
    (or new layouts) per labelled label map, 0 for real / online; ``share``: the synthetic share of the mix (stage
    1's for two-stage), None for real / online; ``source``: a key of :data:`SOURCES`, None for real / online."""

    name: str
    kind: str
    n: int = 0
    share: float | None = None
    recipe: str = "plain"
    source: str | None = None
    two_stage: bool = False
    recolour: float = 0.0

    @classmethod
    def parse(cls, name: str) -> Variant:
        """The variant named ``name``; ValueError for a name that is no variant."""
        if name in ("real", "online"):
            return cls(name, name)
        if name.startswith("recolour"):
            return cls(name, "recolour", recolour=_recolour_strength(name, name[len("recolour"):], "recolour0.3"))
        prefix, _, rest = name.partition("_n")
        by_prefix = {v: k for k, v in SOURCES.items()}
        if prefix not in by_prefix:
            raise ValueError(f"unknown variant {name!r}: expected real, online, recolour<s> or "
                             f"<{'|'.join(SOURCES.values())}>_n<k>"
                             "[_f|_r|_fr][_s<share>][_rc<strength>][_2s]")
        n, *parts = rest.split("_")
        share, recipe, two_stage, recolour = DEFAULT_SHARE, "plain", False, 0.0
        by_tag = {tag: r for r, tag in RECIPES.items()}
        for part in parts:
            if part == TWO_STAGE:
                two_stage = True
            elif part.startswith("s"):
                share = float(part[1:])
            elif part.startswith("rc"):
                recolour = _recolour_strength(name, part[2:], "_rc0.3")
            elif part in by_tag:
                recipe = by_tag[part]
            else:
                raise ValueError(f"variant {name!r}: unknown part {part!r}")
        return cls(name, "pool", int(n), share, recipe, by_prefix[prefix], two_stage, recolour)

    @classmethod
    def pool(cls, n: int, share: float, recipe: str = "plain", source: str = "pool") -> Variant:
        """The (one-stage) pool variant of these parameters, under its canonical name."""
        tag = RECIPES[recipe]
        name = f"{SOURCES[source]}_n{n}" + (f"_{tag}" if tag else "") + (
            "" if share == DEFAULT_SHARE else f"_s{share:g}")
        return cls(name, "pool", n, share, recipe, source)

    def __str__(self) -> str:
        return self.name

    @property
    def is_pool(self) -> bool:
        return self.kind == "pool"

    @property
    def tag(self) -> str:
        """The recipe's tag: ``""``, ``f``, ``r`` or ``fr``."""
        return RECIPES[self.recipe]

    @property
    def filtered(self) -> bool:
        """Whether the pool goes through FreeMask's pixel filter (``--filter-margin`` applies)."""
        return "f" in self.tag

    @property
    def resampled(self) -> bool:
        """Whether the pool is resampled by hardness."""
        return "r" in self.tag

    @property
    def needs_real_run(self) -> bool:
        """Whether the variant's pool is filtered / resampled by the real-only segmenter of the same seed."""
        return self.recipe != "plain"

    @property
    def uses_generator(self) -> bool:
        """Whether the variant needs the study's generator (online, or a pool drawn by it)."""
        return self.kind == "online" or self.source in GENERATOR_SOURCES

    @property
    def is_oracle(self) -> bool:
        return self.source in ORACLE_SOURCES

    @property
    def pool_key(self) -> tuple[str, int]:
        """``(source, n)``: the pool the variant reads."""
        return self.source, self.n

    @property
    def series(self) -> tuple[str, str, float, float]:
        """``(source, recipe, share, recolour)``: the plot's line of the variant (over n)."""
        return self.source, self.recipe, self.share, self.recolour

    def oracle(self, source: str) -> Variant:
        """The plain, one-stage variant of the oracle ``source`` at this variant's n and share (its yardstick)."""
        return Variant.pool(self.n, self.share, "plain", source)

    def run_folder(self, gan_tag: str | None, filter_margin: float, online_prob: float) -> str:
        """The variant's folder under ``seg_i<iters>``: its name, the generator's stage folder for the generator's
        pools, the filter margin for filtered pools; ``online_p<prob>_<gan>`` for online."""
        if self.kind == "online":
            return f"online_p{online_prob}_{gan_tag}"
        if self.kind == "real":
            return self.name
        sub = self.name + (f"_{gan_tag}" if self.source in GENERATOR_SOURCES else "")
        return sub + (f"_m{filter_margin:g}" if self.filtered else "")


def _recolour_strength(name: str, text: str, example: str) -> float:
    """The ClassRecolour strength ``text`` of variant ``name`` (> 0); ValueError naming the variant otherwise."""
    try:
        strength = float(text)
    except ValueError:
        raise ValueError(f"variant {name!r}: expected a recolouring strength, e.g. {example}") from None
    if strength <= 0:
        raise ValueError(f"variant {name!r}: the recolouring strength must be > 0")
    return strength


def variant_arg(name: str) -> Variant:
    """argparse type of ``--variants``."""
    try:
        return Variant.parse(name)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def study_variants(args: argparse.Namespace) -> list[Variant]:
    """``real`` first, then ``--variants`` as given, or the product of ``--sources``, ``--recipes`` (generator
    sources only), ``--shares`` and ``--n``, then ``online`` unless ``--no-online``."""
    real = Variant.parse("real")
    if args.variants:  # an explicit list instead of the product of --sources, --recipes, --shares and --n
        return [real, *[v for v in args.variants if v.name != "real"]]
    pools = [Variant.pool(n, share, recipe, source) for source in args.sources
             for recipe in (args.recipes if source in GENERATOR_SOURCES else ["plain"])
             for share in args.shares for n in args.n]
    return [real, *pools, *([] if args.no_online else [Variant.parse("online")])]
