"""mmseg pipeline transforms: :class:`DPSIMSAugment` (a generator synthesizes an image for the sample's label map),
:class:`DPSIMSPoolAugment` (the image is read from a folder written by ``dpsims-aug generate``),
:class:`MapLabelIds` (raw label ids of a :class:`~dpsims_aug.labels.LabelSpace` -> its contiguous ids) and
:class:`ClassRecolour` (each class region of the image gets its own brightness and tint).

All are ``mmcv.transforms.BaseTransform`` subclasses registered in mmseg's ``TRANSFORMS`` registry (mmcv's when
mmseg is missing). Importing this module needs mmcv; ``import dpsims_aug`` does not (it imports this module only
when an OpenMMLab package is already loaded, e.g. while mmengine processes a config's ``custom_imports``). Use it
from a stock mmseg config with::

    custom_imports = dict(imports=['dpsims_aug.mm'], allow_failed_imports=False)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='DPSIMSAugment', checkpoint='ade20k.safetensors', prob=0.5),
        # or: dict(type='DPSIMSPoolAugment', pool='ade/annotations_dpsims', prob=0.5),
        ...  # RandomResize, RandomCrop, RandomFlip, PhotoMetricDistortion, PackSegInputs
    ]
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np
from mmcv.transforms import BaseTransform

from dpsims_aug.data.recolour import check_recolour_options, recolour_classes
from dpsims_aug.instance_edges import (
    check_edge_mode,
    find_instance_map,
    instance_edges,
    missing_instance_map,
    read_instance_map,
)
from dpsims_aug.labels import LabelMapError, LabelSpace, get_label_space
from dpsims_aug.mm.checkpoints import allow_mmengine_checkpoints
from dpsims_aug.synthesis import DTYPES, default_checkpoint_path, derive_seed, resolve_device

try:  # mmseg's registry is where mmseg configs (default_scope='mmseg') look transforms up.
    from mmseg.registry import TRANSFORMS
except ImportError:  # mmcv alone: still usable with mmcv's Compose
    from mmcv.transforms import TRANSFORMS

# Configs that use the toolkit import this module: from then on stock mmengine resume and mmseg's init_model read
# mmengine checkpoints with torch.load(weights_only=True).
allow_mmengine_checkpoints()

MODES = ("online", "pool")
SIZE_POLICIES = ("resize", "pad")
ON_MISSING = ("skip", "error")
DONORS = 8  # new_layouts: copy-paste donors kept per process (the last label maps seen)
# mmseg names of label files that hold other ids than the file `dpsims-aug generate` read (pool lookup by stem).
_LABEL_FILE_SUFFIXES = ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png", "_labelTrainIds.png")


def _as_label_space(space: LabelSpace | str | os.PathLike | dict | None) -> LabelSpace | None:
    if space is None or isinstance(space, LabelSpace):
        return space
    if isinstance(space, dict):
        return LabelSpace.from_dict(space)
    return get_label_space(space)


def _describe(space: LabelSpace | str | os.PathLike | dict | None) -> str | None:
    if space is None or isinstance(space, str | os.PathLike):
        return None if space is None else str(space)
    return space.name if isinstance(space, LabelSpace) else str(space.get("name"))


def synthesis_size(height: int, width: int, image_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """The size a ``height x width`` label map is rendered at under the 'resize' policy: the same aspect ratio at
    about the generator's training area ``image_size`` (never upscaled), rounded up to multiples of ``stride``."""
    scale = min(1.0, math.sqrt(image_size[0] * image_size[1] / float(height * width)))
    # Round up: never below the training area, and small maps keep their aspect ratio better.
    return (max(stride, math.ceil(height * scale / stride) * stride),
            max(stride, math.ceil(width * scale / stride) * stride))


class _ReplaceImage(BaseTransform):
    """Base of :class:`DPSIMSAugment` and :class:`DPSIMSPoolAugment`: replace ``results['img']``, with probability
    ``prob``, by a synthetic image of the sample's ``gt_seg_map``.

    The new image is uint8 BGR (as ``LoadImageFromFile`` gives; cast to the real image's dtype when that is not
    uint8) of the same height and width, so every later transform treats it like the real one.
    Required keys: ``img``, ``gt_seg_map``, ``seg_map_path`` (identity and error messages).
    Modified keys: ``img``. Added keys: ``dpsims_augmented`` (whether the image was replaced).

    Determinism: each call draws from ``numpy.random.default_rng(derive_seed(seed, seg_map_path, visit))`` where
    ``visit`` counts how often this process has seen that label map (0, 1, 2, ...): first the ``prob`` decision,
    then what the subclass needs (noise seed, pool image). The same sample thus gets a new image at each visit, and
    a run is reproducible for the same seed, sampler seed and ``num_workers``. Counters live in the worker
    processes: use ``persistent_workers=True`` (mmseg's default), otherwise they restart each epoch and the draws
    repeat. ``seg_map_path`` is used as given (``data_root`` joined), so moving the dataset changes the draws.
    Per-process state (counters, models, indexes) is never pickled, and a copy inherited through ``fork`` is
    dropped on first use.
    """

    _PROCESS_STATE: tuple[str, ...] = ("_pid", "_visits")  # attributes rebuilt in each process, never pickled

    def __init__(self, prob: float, seed: int) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"{type(self).__name__}: prob must lie in [0, 1], got {prob}")
        self.prob = float(prob)
        self.seed = int(seed)
        self._reset_process_state()

    # ----------------------------------------------------------------------------------- per-process state

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._visits: defaultdict[str, int] = defaultdict(int)

    def __getstate__(self) -> dict:
        # Never ship models, indexes or counters to worker processes: they build their own.
        state = self.__dict__.copy()
        for name in self._PROCESS_STATE:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    def _check_process(self) -> None:
        """Drop state inherited through ``fork`` (a model built in the parent belongs to the parent)."""
        if self._pid != os.getpid():
            self._reset_process_state()

    # ----------------------------------------------------------------------------------- draws and results

    def _draw(self, results: dict) -> np.random.Generator | None:
        """Count this visit of the sample's label map and make the ``prob`` decision: the generator of the
        sample's further draws if the image is to be replaced, else None."""
        if "gt_seg_map" not in results:
            raise KeyError(f"{type(self).__name__} needs results['gt_seg_map']: place it after LoadAnnotations")
        self._check_process()
        key = str(results.get("seg_map_path", results.get("sample_idx", "")))
        visit = self._visits[key]
        self._visits[key] += 1
        rng = np.random.default_rng(derive_seed(self.seed, key, visit))
        results["dpsims_augmented"] = False
        if self.prob <= 0.0 or rng.random() >= self.prob:
            return None
        return rng

    @staticmethod
    def _put_image(results: dict, img: np.ndarray) -> dict:
        """``results`` with ``img`` in place of the real image (in its dtype), marked ``dpsims_augmented``."""
        old = results.get("img")
        if old is not None and old.dtype != np.uint8:  # e.g. LoadImageFromFile(to_float32=True)
            img = img.astype(old.dtype)
        results["img"] = img
        results["dpsims_augmented"] = True
        return results


def _layout_augment(new_layouts: dict):
    """The :class:`~dpsims_aug.layouts.LayoutAugment` of ``DPSIMSAugment(new_layouts=...)``."""
    from dpsims_aug.layouts import LayoutAugment

    options = dict(new_layouts)
    options.setdefault("ignore_ids", (255,))
    for name in ("scale", "paste_ids", "ignore_ids"):
        if options.get(name) is not None:
            options[name] = tuple(options[name])
    try:
        return LayoutAugment(**options)
    except TypeError as err:
        raise ValueError(f"DPSIMSAugment: bad new_layouts {new_layouts!r} ({err})") from err


def _check_online_mode(mode: str, removed: dict) -> None:
    """``DPSIMSAugment``'s ``mode`` argument, kept as a compatibility check (pool lookup moved to its own class)."""
    if mode == "pool":
        raise ValueError(
            "DPSIMSAugment: mode='pool' is now its own transform: use DPSIMSPoolAugment(pool=...), in a config "
            "dict(type='DPSIMSPoolAugment', pool=..., prob=..., seed=..., on_missing=...)")
    if mode not in MODES:
        raise ValueError(f"DPSIMSAugment: mode must be one of {MODES}, got {mode!r}")
    if removed:
        raise TypeError(f"DPSIMSAugment got unexpected keyword arguments {sorted(removed)} (pool=/on_missing= "
                        "belong to DPSIMSPoolAugment)")


@TRANSFORMS.register_module()
class DPSIMSAugment(_ReplaceImage):
    """Replace ``results['img']`` by an image a DP-SIMS generator synthesizes for the sample's ``gt_seg_map``.

    Place it after ``LoadAnnotations`` (right after, before any resize, crop or flip, when it reads instance maps;
    the shipped configs do). Keys and determinism as :class:`_ReplaceImage` (the draws: the ``prob`` decision, then
    the noise seed). Optional keys: ``reduce_zero_label``, ``label_map`` (set by mmseg datasets), ``instance_path``
    (instance edges, below). With ``new_layouts``, ``gt_seg_map`` is modified too.

    The :class:`~dpsims_aug.synthesis.Synthesizer` is built lazily in each process: every dataloader worker loads
    its own copy (in GPU memory for ``device='cuda'``). CPU works with ``fork`` workers. For ``device='cuda'``
    (``cuda:$LOCAL_RANK`` under ``torchrun``) the parent must not have initialized CUDA before forking workers, as
    mmengine's Runner does: use ``env_cfg = dict(mp_cfg=dict(mp_start_method='spawn'))`` or a dataloader with
    ``multiprocessing_context='spawn'``; a forked worker of a CUDA parent raises an error saying so.

    Labels: the generator needs its own contiguous ids ``0..C-1`` (+ ignore); what ``LoadAnnotations`` made of the
    files is undone: (1) ``label_map`` is inverted (classes mmseg dropped stay ignore = "unlabeled"); (2)
    ``reduce_zero_label`` is undone and the raw ids go through ``label_space`` (without it, ``gt_seg_map`` holds
    raw ids of ``label_space``, or its contiguous ids with ``contiguous_labels=True``, e.g. mmseg's
    ``*_labelTrainIds.png``); (3) ``label_space`` classes map to model classes through the raw id they share (e.g.
    ``'cityscapes19'`` trainIds drive a 35-labelId generator). Ids that do not survive raise
    :class:`~dpsims_aug.labels.LabelMapError` naming them and ``seg_map_path``.

    Instance edges (generators trained with ``use_instance_edges``): ``edges='instances'`` reads the instance map
    from ``results['instance_path']``, else from the path :func:`~dpsims_aug.instance_edges.find_instance_map`
    derives from ``seg_map_path`` (Cityscapes ``*_gtFine_instanceIds.png``, COCO ``panoptic_<split>2017/``,
    ``instances/`` beside ``labels/`` or ``annotations/``); a missing or differently sized one raises a
    ``LabelMapError``. ``'from-labels'`` uses the label map's class boundaries (needed with ``new_layouts``).

    Args:
        checkpoint: Generator file (``train_gan`` export); ``None`` = the bundled embedded-dataset model.
        prob: Probability to replace a sample's image.
        mode: Compatibility only: ``'online'``; ``'pool'`` raises a ValueError (use :class:`DPSIMSPoolAugment`).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'``.
        dtype: ``'fp32'``, ``'bf16'`` or ``'fp16'``.
        seed: Global seed of the draws.
        size_policy: The generator needs multiples of its stride (32). ``'resize'`` (default): synthesize at the
            same aspect ratio at about the training area (``config.image_size``, never upscaled, rounded up to the
            stride) and resize back (bilinear); ``'pad'``: at full size, padded with ignore and cropped back.
        label_space: LabelSpace (object, preset name, JSON path or dict) of the annotation ids; default: the
            checkpoint's.
        reduce_zero_label: Whether ``LoadAnnotations`` reduced the zero label; ``None`` = take
            ``results['reduce_zero_label']``, else False.
        contiguous_labels: The annotation files hold ``label_space``'s contiguous ids (0..C-1, 255), not raw ids.
        new_layouts: Give replaced samples a *new label map* first (``gt_seg_map`` replaced too), then the image of
            it: a dict of :class:`~dpsims_aug.layouts.LayoutAugment` fields, ids as in ``gt_seg_map``
            (``ignore_ids`` defaults to ``(255,)``; ``{}`` = defaults); copy-paste donors are the last 8 label maps
            this process saw. ``None`` (default): labels are never changed.
        edges: ``'instances'`` (default) or ``'from-labels'``, see above.
    """

    mode = "online"
    _PROCESS_STATE = (*_ReplaceImage._PROCESS_STATE, "_synth", "_luts", "_donors")

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        prob: float = 0.5,
        mode: str = "online",
        device: str = "cpu",
        dtype: str = "fp32",
        seed: int = 0,
        size_policy: str = "resize",
        label_space: LabelSpace | str | os.PathLike | dict | None = None,
        reduce_zero_label: bool | None = None,
        contiguous_labels: bool = False,
        new_layouts: dict | None = None,
        edges: str = "instances",
        **removed,
    ) -> None:
        _check_online_mode(mode, removed)
        super().__init__(prob, seed)
        if size_policy not in SIZE_POLICIES:
            raise ValueError(f"DPSIMSAugment: size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
        if dtype not in DTYPES:
            raise ValueError(f"DPSIMSAugment: dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.edges = check_edge_mode(edges, "DPSIMSAugment")
        self._uses_edges: bool | None = None  # whether the generator takes instance edges (read from the checkpoint)
        self.device = str(device)
        self.dtype = dtype
        self.size_policy = size_policy
        self.reduce_zero_label = reduce_zero_label
        self.contiguous_labels = bool(contiguous_labels)
        self.label_space = _as_label_space(label_space)
        self.new_layouts = None if new_layouts is None else _layout_augment(new_layouts)
        # Fail at pipeline build time (in the main process), not in a worker halfway through training.
        self.checkpoint = Path(checkpoint) if checkpoint is not None else default_checkpoint_path()
        if not self.checkpoint.is_file():
            hint = "" if checkpoint is not None else " (the bundled default is not installed; pass checkpoint=)"
            raise FileNotFoundError(f"DPSIMSAugment: generator checkpoint {self.checkpoint} not found{hint}")
        if self.new_layouts is not None and self.edges == "instances" and self.uses_instance_edges:
            raise ValueError(
                f"DPSIMSAugment: {self.checkpoint} was trained with instance edges, but the new label maps of "
                "new_layouts have no instance maps: pass edges='from-labels' (their class boundaries)")

    def _reset_process_state(self) -> None:
        super()._reset_process_state()
        self._synth = None  # Synthesizer, built on first use
        self._luts: dict = {}  # (reduce_zero_label, label_map items) -> uint8 id -> model id lookup table
        self._donors: list[np.ndarray] = []  # new_layouts: the last label maps seen (copy-paste donors)

    # ----------------------------------------------------------------------------------- synthesis

    def _resolve_device(self) -> str:
        device = resolve_device(self.device)
        if device.startswith("cuda"):
            import torch

            if torch.cuda._is_in_bad_fork():
                raise RuntimeError(
                    "DPSIMSAugment(device='cuda') runs in a dataloader worker forked from a process that had "
                    "already initialized CUDA, which CUDA does not support. Start workers with 'spawn': "
                    "env_cfg = dict(mp_cfg=dict(mp_start_method='spawn')) in the mmseg config (or "
                    "multiprocessing_context='spawn' on the DataLoader), or use device='cpu', num_workers=0, "
                    "or DPSIMSPoolAugment."
                )
        return device

    @property
    def synthesizer(self):
        """This process's :class:`~dpsims_aug.synthesis.Synthesizer` (built on first access)."""
        self._check_process()
        if self._synth is None:
            from dpsims_aug.synthesis import Synthesizer

            synth = Synthesizer.from_checkpoint(
                self.checkpoint, device=self._resolve_device(), dtype=self.dtype, batch_size=1
            )
            self._synth = synth
        return self._synth

    @property
    def uses_instance_edges(self) -> bool:
        """Whether the generator takes instance edges (from the checkpoint's config)."""
        if self._uses_edges is None:
            from dpsims_aug.checkpoint import load_generator_checkpoint

            config = load_generator_checkpoint(self.checkpoint, weights=False).generator_config
            self._uses_edges = bool(config.get("use_instance_edges", False))
        return self._uses_edges

    def instance_ids(self, results: dict, shape: tuple[int, int]) -> np.ndarray:
        """The sample's instance map (``results['instance_path']``, else derived from ``seg_map_path``; see the
        class docstring), checked against the label map's ``shape``."""
        source = results.get("seg_map_path")
        path = results.get("instance_path")
        if path is None:
            path, expected = find_instance_map(source) if source is not None else (None, None)
            if path is None:
                raise missing_instance_map(
                    source, expected, "the generator was trained with instance edges: put the instance map there "
                    "(or set results['instance_path'] in a loading step), or use DPSIMSAugment(edges='from-labels') "
                    "for the label map's class boundaries")
        ids = read_instance_map(path)
        if ids.shape != tuple(shape):
            raise LabelMapError(
                path, f"DPSIMSAugment: instance map is {ids.shape[1]}x{ids.shape[0]} but the label map {source} is "
                f"{shape[1]}x{shape[0]} here; place DPSIMSAugment right after LoadAnnotations, before any resize, "
                "crop or flip")
        return ids

    @property
    def model_label_space(self) -> LabelSpace:
        """The generator's label space: the contiguous ids :meth:`model_labels` translates to."""
        return self.synthesizer.label_space

    def _lookup_table(self, reduce_zero_label: bool, label_map: dict | None, source: str | None) -> np.ndarray:
        """``lut[v]`` = model class of annotation value ``v`` (after LoadAnnotations), ignore index, or -1."""
        cache_key = (reduce_zero_label, None if not label_map else tuple(sorted(label_map.items())))
        lut = self._luts.get(cache_key)
        if lut is not None:
            return lut
        model = self.model_label_space
        data = self.label_space or model
        if reduce_zero_label and self.contiguous_labels:
            raise LabelMapError(source, "DPSIMSAugment: reduce_zero_label and contiguous_labels cannot both hold")
        # Annotation value -> class of `data` (the chain mmseg applied, undone) -> model class (same raw id).
        data_class = data.mmseg_annotation_classes(reduce_zero_label, label_map, contiguous=self.contiguous_labels)
        lut = np.full(256, -1, dtype=np.int64)
        has_class = (data_class >= 0) & (data_class != data.ignore_index)
        lut[has_class] = data.class_translation(model)[data_class[has_class]]
        lut[data_class == data.ignore_index] = model.ignore_index
        self._luts[cache_key] = lut
        return lut

    def model_labels(self, results: dict) -> np.ndarray:
        """The generator's contiguous ids for ``results['gt_seg_map']`` (see the class docstring)."""
        gt = np.asarray(results["gt_seg_map"])
        source = results.get("seg_map_path")
        if self.reduce_zero_label is not None:
            reduce = self.reduce_zero_label
        else:
            reduce = bool(results.get("reduce_zero_label", False))
        if gt.dtype != np.uint8:
            if gt.size and (gt.min() < 0 or gt.max() > 255):
                bad = np.unique(gt[(gt < 0) | (gt > 255)])[:20].tolist()
                raise LabelMapError(source, f"DPSIMSAugment: gt_seg_map holds ids {bad} outside 0..255")
            gt = gt.astype(np.uint8)
        lut = self._lookup_table(reduce, results.get("label_map"), source)
        ids = lut[gt]
        if (ids < 0).any():
            bad = np.unique(gt[ids < 0]).tolist()
            model = self.model_label_space
            data = self.label_space or model
            raise LabelMapError(
                source,
                f"DPSIMSAugment: gt_seg_map values {bad} (as LoadAnnotations left them: reduce_zero_label={reduce}, "
                f"label_map={'set' if results.get('label_map') else 'none'}, contiguous_labels="
                f"{self.contiguous_labels}) are not classes of label space {data.name!r} known to the generator "
                f"({model.name!r}, {model.num_classes} classes); set label_space=/reduce_zero_label=/"
                "contiguous_labels= to describe the annotation ids",
            )
        return ids.astype(np.uint8)

    def synthesis_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` the generator runs at for a ``height x width`` label map (size policy)."""
        synth = self.synthesizer
        if self.size_policy == "pad":
            return synth.padded_size(height, width)
        return synthesis_size(height, width, tuple(synth.config.image_size), synth.stride)

    def _synthesize(self, results: dict, seed: int) -> np.ndarray:
        import mmcv

        labels = self.model_labels(results)
        h, w = labels.shape
        synth = self.synthesizer
        source = results.get("seg_map_path")
        size = self.synthesis_size(h, w)
        instances = None  # None: no edges, or the Synthesizer's class boundaries (edges='from-labels')
        if self.edges == "instances" and synth.config.use_instance_edges:
            instances = self.instance_ids(results, (h, w))

        def edges_of(ids: np.ndarray | None):
            if ids is None:
                return None
            import torch

            return torch.from_numpy(instance_edges(ids))[None, None]

        if self.size_policy == "pad" or size == (h, w):
            rgb = synth.synthesize(labels[None], [seed], sources=[source], edges=edges_of(instances))[0]
        else:
            small = mmcv.imresize(labels, (size[1], size[0]), interpolation="nearest")
            if instances is not None:  # the same nearest sampling as the labels; edges at the synthesis size
                instances = mmcv.imresize(instances, (size[1], size[0]), interpolation="nearest")
            rgb = synth.synthesize(small[None], [seed], sources=[source], edges=edges_of(instances))[0]
            rgb = mmcv.imresize(rgb, (w, h), interpolation="bilinear")
        return np.ascontiguousarray(rgb[..., ::-1])  # RGB -> BGR, as mmcv loads images

    def transform(self, results: dict) -> dict:
        """Maybe replace ``results['img']`` (and, with ``new_layouts``, ``gt_seg_map``); see the class docstring."""
        rng = self._draw(results)
        donors = self._donors
        if self.new_layouts is not None:  # this map becomes a donor for later samples, not for itself
            self._donors = [*donors[-(DONORS - 1):], np.asarray(results["gt_seg_map"])]
        if rng is None:
            return results
        noise_seed = int(rng.integers(1 << 62))
        if self.new_layouts is not None:
            from dpsims_aug.layouts import augment_layout

            results["gt_seg_map"] = augment_layout(results["gt_seg_map"], rng, donors, self.new_layouts)
        return self._put_image(results, self._synthesize(results, noise_seed))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(mode='{self.mode}', prob={self.prob}, checkpoint='{self.checkpoint}', "
                f"device='{self.device}', dtype='{self.dtype}', size_policy='{self.size_policy}', "
                f"new_layouts={self.new_layouts}, edges='{self.edges}', seed={self.seed}, "
                f"label_space={_describe(self.label_space)!r}, reduce_zero_label={self.reduce_zero_label}, "
                f"contiguous_labels={self.contiguous_labels})")


@TRANSFORMS.register_module()
class DPSIMSPoolAugment(_ReplaceImage):
    """Replace ``results['img']`` by an image from a folder written by ``dpsims-aug generate`` (one JPEG decode).

    Place it right after ``LoadAnnotations``: pool images are made at the size of the original label map and must
    match ``gt_seg_map``'s size. Keys and determinism as :class:`_ReplaceImage` (the draws: the ``prob`` decision,
    then the choice among the label map's pool images). The pool's ``manifest.jsonl`` maps each source label map to
    its ``k`` images; a sample matches the record whose ``key`` (the label map's path relative to the generate input
    folder) is a path suffix of ``seg_map_path``, or, for mmseg's ``*_labelTrainIds.png`` files, whose output stem
    is. A pool made from validation or test label maps is refused.

    Args:
        pool: Output folder of ``dpsims-aug generate``.
        prob: Probability to replace a sample's image.
        seed: Global seed of the draws.
        on_missing: Label map without pool images: ``'skip'`` (keep the real image) or ``'error'``.
    """

    _PROCESS_STATE = (*_ReplaceImage._PROCESS_STATE, "_pool_index", "_pool_stems")

    def __init__(self, pool: str | os.PathLike, prob: float = 0.5, seed: int = 0, on_missing: str = "skip") -> None:
        super().__init__(prob, seed)
        if on_missing not in ON_MISSING:
            raise ValueError(f"DPSIMSPoolAugment: on_missing must be one of {ON_MISSING}, got {on_missing!r}")
        self.on_missing = on_missing
        if pool is None:
            raise ValueError("DPSIMSPoolAugment needs pool='<folder written by dpsims-aug generate>'")
        from dpsims_aug.pool.format import manifest_files

        # Fail at pipeline build time (in the main process), not in a worker halfway through training.
        self.pool = Path(pool)
        if not self.pool.is_dir() or not manifest_files(self.pool):
            raise FileNotFoundError(
                f"DPSIMSPoolAugment: pool {self.pool} is not a folder written by `dpsims-aug generate` "
                "(no manifest.jsonl)"
            )
        from dpsims_aug.data.splits import check_trainable

        check_trainable(self.pool, f"DPSIMSPoolAugment(pool={str(pool)!r})")  # a training transform

    def _reset_process_state(self) -> None:
        super()._reset_process_state()
        self._pool_index: dict[str, list[str]] | None = None  # key -> image paths
        self._pool_stems: dict[str, list[str]] | None = None  # output stem -> image paths

    # ----------------------------------------------------------------------------------- lookup

    def _build_pool_index(self) -> None:
        from dpsims_aug.pool.format import label_stem_of, read_manifest_records

        by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
        by_stem: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for (key, k), rec in read_manifest_records(self.pool).items():
            image = str(rec.get("image", ""))
            if not image:
                continue
            by_key[key].append((k, image))
            by_stem[label_stem_of(image)].append((k, image))
        self._pool_index = {key: [p for _, p in sorted(v)] for key, v in by_key.items()}
        self._pool_stems = {stem: [p for _, p in sorted(v)] for stem, v in by_stem.items()}

    def pool_images(self, seg_map_path: str) -> list[str]:
        """Pool image paths (relative to ``pool``) made from the label map ``seg_map_path`` ([] if none)."""
        self._check_process()
        if self._pool_index is None:
            self._build_pool_index()
        parts = PurePosixPath(Path(seg_map_path).as_posix()).parts
        for i in range(len(parts)):  # longest suffix first: the most specific match
            hit = self._pool_index.get("/".join(parts[i:]))
            if hit:
                return hit
        stripped = Path(seg_map_path).as_posix()
        for suffix in _LABEL_FILE_SUFFIXES:
            if stripped.endswith(suffix):
                stripped = stripped[: -len(suffix)]
                break
        else:
            stripped = str(PurePosixPath(stripped).with_suffix(""))
        parts = PurePosixPath(stripped).parts
        for i in range(len(parts)):
            hit = self._pool_stems.get("/".join(parts[i:]))
            if hit:
                return hit
        return []

    def _load_pool_image(self, results: dict, rng: np.random.Generator) -> np.ndarray | None:
        import mmcv

        source = str(results.get("seg_map_path"))
        images = self.pool_images(source)
        if not images:
            if self.on_missing == "error":
                raise KeyError(
                    f"DPSIMSPoolAugment: pool {self.pool} has no synthetic image for label map {source} "
                    "(run `dpsims-aug generate` on this dataset, or set on_missing='skip')"
                )
            return None
        path = self.pool / images[int(rng.integers(len(images)))]
        img = mmcv.imfrombytes(path.read_bytes(), flag="color", backend="cv2")  # BGR, like LoadImageFromFile
        if img is None:
            raise OSError(f"DPSIMSPoolAugment: cannot decode pool image {path}")
        gt_shape = np.shape(results["gt_seg_map"])[:2]
        if img.shape[:2] != gt_shape:
            raise ValueError(
                f"DPSIMSPoolAugment: pool image {path} is {img.shape[1]}x{img.shape[0]} but the label map {source} is "
                f"{gt_shape[1]}x{gt_shape[0]} here; place DPSIMSPoolAugment right after LoadAnnotations, "
                "before any resize or crop"
            )
        return img

    def transform(self, results: dict) -> dict:
        """Maybe replace ``results['img']``; see the class docstring."""
        rng = self._draw(results)
        img = None if rng is None else self._load_pool_image(results, rng)
        return results if img is None else self._put_image(results, img)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(prob={self.prob}, pool='{self.pool}', on_missing='{self.on_missing}', "
                f"seed={self.seed})")


@TRANSFORMS.register_module()
class MapLabelIds(BaseTransform):
    """Map ``gt_seg_map``'s raw ids of ``label_space`` to its contiguous ids ``0..C-1`` (255 = unlabeled).

    For datasets whose files hold other ids than the model trains on, e.g. a ``dpsims-aug generate`` pool made
    from Cityscapes ``*_labelIds.png`` (35 ids) mixed with mmseg's 19-class trainIds: ``label_space='cityscapes19'``;
    or from COCO-Stuff stuffthingmaps (0..181) mixed with mmseg's 171 classes: ``'coco_stuff171'``. Place it right
    after ``LoadAnnotations`` (with ``reduce_zero_label=False``). Unknown ids raise
    :class:`~dpsims_aug.labels.LabelMapError` naming the file.

    Required keys: ``gt_seg_map``. Modified keys: ``gt_seg_map``.

    Args:
        label_space: LabelSpace object, preset name, JSON path or dict.
    """

    def __init__(self, label_space: LabelSpace | str | os.PathLike | dict) -> None:
        self.label_space = _as_label_space(label_space)

    def transform(self, results: dict) -> dict:
        """Map ``results['gt_seg_map']`` in place of the old one."""
        results["gt_seg_map"] = self.label_space.to_contiguous(
            results["gt_seg_map"], source=results.get("seg_map_path")
        )
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(label_space={self.label_space.name!r})"


@TRANSFORMS.register_module()
class ClassRecolour(BaseTransform):
    """Recolour each class region of the image on its own (:func:`dpsims_aug.data.recolour.recolour_classes`).

    The synthesis-free baseline of a generator's appearance variety: the segmenter sees the classes of its real
    images in combinations of brightness and tint they never had. Place it after ``LoadAnnotations`` (and any
    ``MapLabelIds``), before the photometric distortion. Draws come from numpy's global generator, which mmengine
    seeds per worker, so a seeded run is reproducible.

    Required keys: ``img``, ``gt_seg_map``. Modified keys: ``img``.

    Args:
        strength: Brightness range ``1 +- strength`` and per-channel tint range ``1 +- strength / 2``.
        prob: Probability that a class of a sample is recoloured.
        ignore_index: The label map's unlabeled value (left alone).
    """

    def __init__(self, strength: float = 0.3, prob: float = 0.5, ignore_index: int = 255) -> None:
        check_recolour_options(strength, prob)
        self.strength, self.prob, self.ignore_index = float(strength), float(prob), int(ignore_index)

    def transform(self, results: dict) -> dict:
        """Replace ``results['img']`` by its recoloured copy (the label map is untouched)."""
        # numpy's global state: what mmcv's random transforms draw from, and what mmengine seeds per worker.
        rng = np.random.default_rng(np.random.randint(2**31))  # noqa: NPY002
        results["img"] = recolour_classes(results["img"], results["gt_seg_map"], rng, self.strength, self.prob,
                                          self.ignore_index)
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(strength={self.strength}, prob={self.prob})"


__all__ = ["ClassRecolour", "DPSIMSAugment", "DPSIMSPoolAugment", "MapLabelIds"]
