"""DP-SIMS as an mmengine ``BaseModel``: one ``train_step`` alternates a discriminator and a generator update.

Everything the engine owns stays with the engine: DDP (``MMSeparateDistributedDataParallel`` wraps G and D
separately), AMP and gradient accumulation (the optimizer wrappers), checkpoint/resume and logging (the Runner).

Randomness of a step (noise, LabelMix coins, PatchNCE locations) comes from a generator seeded with
``(seed, step, rank)``, and ``step`` is a buffer saved in every checkpoint, so a resumed run continues with the
exact numbers an uninterrupted run would have produced.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.logging import print_log
from mmengine.model import BaseDataPreprocessor, BaseModel, ExponentialMovingAverage, is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import MODELS
from torch import nn

from dpsims_aug.labels import LabelSpace, get_label_space
from dpsims_aug.models import (
    DPSIMSGenerator,
    GeneratorConfig,
    generator_config,
    images_to_unit_range,
    unit_range_to_uint8,
)
from train_gan.d_augment import (
    OPERATIONS,
    AdaptiveProbability,
    apply_geometry,
    augment_batch,
    overfitting_signal,
    sample_params,
)
from train_gan.discriminator import DiscriminatorConfig, DPSIMSDiscriminator
from train_gan.losses import (
    DEFAULT_FOCAL_GAMMA,
    colour_distribution_loss,
    discriminator_adversarial_loss,
    diversity_loss,
    generator_adversarial_loss,
    labelmix,
    labelmix_loss,
    patch_nce_loss,
)
from train_gan.transfer import init_generator_from


def _known_fields(cls, d: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """``d`` as a dict (``None``: empty) after checking its keys are fields of the dataclass ``cls``.

    Raises:
        ValueError: naming the unknown keys and the known ones.
    """
    d = dict(d or {})
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} settings {unknown}; known: {known}")
    return d


@dataclass(frozen=True)
class LossConfig:
    """Weights and settings of the DP-SIMS loss terms (:mod:`train_gan.losses`); the model config's flat
    ``loss=dict(...)`` goes through :meth:`from_dict`, so ``model.loss.diversity=0.3`` still overrides one field.

    Defaults where the paper is silent come from OASIS (lambda_LM = 10) and CUT (PatchNCE weight 1, 256 patches,
    tau = 0.07); the mode-seeking weight from MSGAN (1.0). Focal gamma: the usual 2.0 of Lin et al.

    Weights (a weight of 0 skips the term, its computation included):
        labelmix: D's LabelMix consistency loss (OASIS: 10).
        patch_nce: G's PatchNCE loss against the real image's backbone features (CUT: 1).
        diversity: G's mode-seeking loss over two seeds per label map (MSGAN: 1); 0 also means one seed per map.
        colour_match: G's per-class colour-distribution matching of its images to the batch's real ones (0: off).

    Settings:
        focal_gamma: Focal exponent of both adversarial losses (Lin et al.: 2.0; 0 is plain OASIS).
        nce_patches: Locations PatchNCE samples per feature level (CUT: 256).
        nce_temperature: PatchNCE's InfoNCE temperature tau (CUT: 0.07).
        diversity_max_ratio: Cap on the mode-seeking distance ratio (DSGAN's bound); ``None``: unbounded (MSGAN).
    """

    labelmix: float = 10.0
    patch_nce: float = 1.0
    diversity: float = 1.0
    colour_match: float = 0.0
    focal_gamma: float = DEFAULT_FOCAL_GAMMA
    nce_patches: int = 256
    nce_temperature: float = 0.07
    diversity_max_ratio: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> LossConfig:
        """The config with ``d``'s fields overriding the defaults (``None``: all defaults).

        Raises:
            ValueError: naming the unknown keys and the known ones.
        """
        return cls(**_known_fields(cls, d, "loss"))


@dataclass(frozen=True)
class DAugmentConfig:
    """Differentiable augmentation of every image D sees (:mod:`train_gan.d_augment`); the model config's
    ``d_augment=dict(...)`` goes through :meth:`from_dict`.

    Attributes:
        ops: Operations, from :data:`train_gan.d_augment.OPERATIONS` (all three by default); checked at
            construction. A list (as a config file gives) becomes a tuple.
        p: Probability with which each operation is applied to each sample (DiffAugment: 1). It is only the
            start value: the model keeps ``p`` in its ``augment_p`` buffer (checkpointed), which ADA moves.
            :meth:`from_dict` gives 0 when there are no settings at all (``None`` or an empty dict): no
            augmentation.
        adaptive: ADA: move ``p`` by D's overfitting signal (:class:`train_gan.d_augment.AdaptiveProbability`).
        target: ADA's target for the overfitting signal ``r_t``.
        interval: Steps between ADA's adjustments of ``p``.
        speed_images: Images it takes ADA to move ``p`` from 0 to 1.
    """

    ops: tuple[str, ...] = OPERATIONS
    p: float = 1.0
    adaptive: bool = False
    target: float = 0.6
    interval: int = 4
    speed_images: float = 20_000.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        sample_params(1, 8, 8, 0.0, self.ops)  # validates the names now rather than at step 1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DAugmentConfig:
        """The config with ``d``'s fields overriding the defaults; ``p`` defaults to 1.0 when ``d`` has settings and
        to 0.0 (no augmentation) when it is ``None`` or empty.

        Raises:
            ValueError: naming the unknown keys and the known ones.
        """
        d = _known_fields(cls, d, "d_augment")
        return cls(**{"p": 1.0 if d else 0.0, **d})

    def controller(self) -> AdaptiveProbability | None:
        """ADA's controller of ``p``, or ``None`` when ``p`` stays fixed."""
        return AdaptiveProbability(self.target, self.interval, self.speed_images) if self.adaptive else None


@MODELS.register_module()
class GANDataPreprocessor(BaseDataPreprocessor):
    """The trainer's data preprocessor (mmagic's shape): moves a batch to the model's device and maps its images from
    uint8 values to the generator's [-1, 1] range; :meth:`destruct` is the inverse, for the images the model makes
    (sample grids, evaluation). The one place the trainer converts between the two ranges."""

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        return {**data, "image": images_to_unit_range(data["image"])}

    @staticmethod
    def destruct(images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [-1, 1] -> uint8 (rounded, clipped)."""
        return unit_range_to_uint8(images)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if is_model_wrapper(module) else module


@contextlib.contextmanager
def _no_param_grads(module: nn.Module) -> Iterator[None]:
    """Freeze ``module``'s trainable parameters for a block: gradients still flow through it to its inputs (the
    generator's images) but are not computed for its own weights."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@MODELS.register_module()
class DPSIMSGAN(BaseModel):
    """Generator + frozen-backbone discriminator + generator EMA, trained with the DP-SIMS losses.

    Args:
        label_space: Preset name, LabelSpace JSON path or LabelSpace; fixes the number of classes.
        generator: ``dict(preset=..., **overrides)`` for :func:`dpsims_aug.models.generator_config`.
        discriminator: :class:`DiscriminatorConfig` fields (``num_classes`` is filled in).
        loss: Weights and settings of the loss terms: :class:`LossConfig` fields (a weight of 0 skips a term), or a
            :class:`LossConfig`.
        ema_halflife_iters: Half-life of the generator EMA in iterations (NVlabs EDM style), ramped up as
            ``min(halflife, ema_rampup * step)`` so early EMA snapshots are not dominated by the random init.
        seed: Base seed of the per-step randomness.
        max_nonfinite_steps: Consecutive skipped (non-finite) updates after which training stops.
        ema_bn_batches: Training batches over which the EMA generator's BatchNorm statistics are re-collected
            before it is sampled, evaluated, checkpointed or exported (OASIS; see
            :meth:`DPSIMSGenerator.recalibrate_batch_norm`); 0 keeps the live generator's statistics.
        backbone_weights: Overrides the discriminator's backbone weights (a state dict or a file).
        init_generator: An exported generator (``.safetensors``, e.g. the bundled model) to start from instead of
            a random init (:func:`train_gan.transfer.init_generator_from`): fine-tuning on a few labelled images.
            Same generator architecture; classes are matched by name, so the source may be another dataset's.
            A resumed run loads its own checkpoint over it.
        generator_warmup_iters: Iterations at the start in which only the discriminator is updated, so that a
            generator started from ``init_generator`` is not steered by a randomly initialized discriminator.
        d_augment: Differentiable augmentation of every image D sees (:mod:`train_gan.d_augment`), e.g.
            ``dict(ops=("colour", "translation", "cutout"), p=1.0)`` (DiffAugment) or ``dict(p=0.0,
            adaptive=True, target=0.6, interval=4, speed_images=20000)`` (ADA: ``p`` follows D's overfitting).
            ``None`` (default) or ``p=0`` without ``adaptive``: no augmentation. :class:`DAugmentConfig` fields, or a
            :class:`DAugmentConfig`.
        channels_last: Keep the generator, its EMA copy and the whole discriminator (backbone included) in
            channels_last memory format: the same computation up to float rounding, in fewer layout reorders inside
            oneDNN's CPU convolutions (the speed-up is measured by ``benchmarks/speed/bench_train.py --small``).
    """

    def __init__(
        self,
        label_space: str | LabelSpace = "embedded",
        generator: dict | None = None,
        discriminator: dict | None = None,
        loss: dict | LossConfig | None = None,
        ema_halflife_iters: float = 500.0,
        ema_rampup: float = 0.5,
        seed: int = 0,
        max_nonfinite_steps: int = 5,
        ema_bn_batches: int = 16,
        backbone_weights: dict | str | None = None,
        init_generator: str | None = None,
        generator_warmup_iters: int = 0,
        d_augment: dict | DAugmentConfig | None = None,
        channels_last: bool = False,
        data_preprocessor: dict | nn.Module | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(type="GANDataPreprocessor"), init_cfg=init_cfg)
        if not isinstance(self.data_preprocessor, GANDataPreprocessor):
            raise TypeError(f"data_preprocessor must be a GANDataPreprocessor (it maps images to [-1, 1] and back), "
                            f"got {type(self.data_preprocessor).__name__}")
        self.label_space = label_space if isinstance(label_space, LabelSpace) else get_label_space(label_space)
        generator = dict(generator or {"preset": "small"})
        preset = generator.pop("preset", "small")
        self.generator_config: GeneratorConfig = generator_config(
            preset, num_classes=self.label_space.num_classes, ignore_index=self.label_space.ignore_index, **generator
        )
        self.discriminator_config = DiscriminatorConfig(
            num_classes=self.label_space.num_classes, **dict(discriminator or {})
        )
        self.generator = DPSIMSGenerator(self.generator_config)
        self.init_generator = init_generator
        self.generator_warmup_iters = generator_warmup_iters
        self.init_summary: str | None = None  # one line on how the generator was initialized (fine-tuning)
        if init_generator is not None:  # before the EMA copy is taken, so both start from the source
            report = init_generator_from(self.generator, init_generator, self.label_space)
            self.init_summary = (f"generator initialized from {report['source']}: {len(report['matched_classes'])} "
                                 f"classes matched by name, new (random init): {report['new_classes'] or 'none'}")
            print_log(self.init_summary, logger="current")
        self.discriminator = DPSIMSDiscriminator(self.discriminator_config, backbone_weights=backbone_weights)
        # A frozen backbone built from weights (not random init) is rebuilt identically at resume: checkpoints
        # leave it out (GANCheckpointHook) and record its fingerprint instead.
        self.backbone_rebuilt_from_weights = self.discriminator.backbone.frozen and (
            backbone_weights is not None or self.discriminator_config.weights is not None)
        if channels_last:  # before the EMA copy is taken, so it shares the format
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.generator_ema = ExponentialMovingAverage(self.generator, momentum=0.5)
        self.loss_config = loss if isinstance(loss, LossConfig) else LossConfig.from_dict(loss)
        self.ema_halflife_iters = ema_halflife_iters
        self.ema_rampup = ema_rampup
        self.seed = seed
        self.max_nonfinite_steps = max_nonfinite_steps
        self.ema_bn_batches = ema_bn_batches
        self.ema_calibrated_step: int | None = None  # step at which the EMA statistics were last re-collected
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.d_augment_config = (d_augment if isinstance(d_augment, DAugmentConfig)
                                 else DAugmentConfig.from_dict(d_augment))
        self.augment_adaptive = self.d_augment_config.controller()
        # The augmentation probability and ADA's accumulators are buffers: checkpointed, restored on resume.
        self.register_buffer("augment_p", torch.tensor(float(self.d_augment_config.p)))
        self.register_buffer("augment_r_t", torch.tensor(0.0), persistent=False)
        self.register_buffer("augment_signal", torch.zeros(2))
        self._nonfinite_streak = 0

    # ------------------------------------------------------------------ helpers

    def _step_generator(self) -> torch.Generator:
        rank, _ = get_dist_info()
        state = np.random.SeedSequence([self.seed, int(self.step), rank]).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator("cpu").manual_seed(int(state) & ((1 << 63) - 1))

    def _noise(self, gen: torch.Generator, batch: int, device: torch.device) -> torch.Tensor:
        cfg = self.generator_config
        return torch.randn(batch, cfg.noise_tokens, cfg.noise_dim, generator=gen).to(device)

    def _edges(self, data: dict, batch: int, device: torch.device) -> torch.Tensor | None:
        """The batch's instance edges ``[B, 1, H, W]`` when the generator uses them (else None)."""
        if not self.generator_config.use_instance_edges:
            return None
        edges = data.get("edges")
        if edges is None:
            raise ValueError(
                "the generator uses instance edges (use_instance_edges=True) but the training batch has none: the "
                "dataset must yield them (SegPairDataset(instance_edges=True); train_gan.train sets it from the "
                "model config)")
        edges = edges.to(device).float()
        if edges.dim() == 3:
            edges = edges[:, None]
        return edges

    def _update(self, wrapper: OptimWrapper, loss: torch.Tensor, name: str) -> bool:
        """Apply ``loss`` unless it is non-finite on any rank (all ranks agree, so DDP stays in lockstep)."""
        finite = torch.isfinite(loss.detach()).float()
        all_reduce(finite, op="min")
        if bool(finite > 0):
            wrapper.update_params(loss)
            return True
        wrapper.zero_grad()
        print_log(
            f"non-finite {name} loss ({loss.item()}) at step {int(self.step)}: update skipped",
            logger="current", level=logging.WARNING,
        )
        return False

    def _count_nonfinite(self, all_applied: bool) -> None:
        """Stop after ``max_nonfinite_steps`` consecutive steps with a skipped update."""
        self._nonfinite_streak = 0 if all_applied else self._nonfinite_streak + 1
        if self._nonfinite_streak >= self.max_nonfinite_steps:
            raise FloatingPointError(
                f"{self._nonfinite_streak} consecutive steps with non-finite losses (last at step {int(self.step)}); "
                "training stopped before a poisoned checkpoint could be written. Lower the learning rates, "
                "disable AMP, or resume from the last checkpoint."
            )

    def _sync_generator_buffers(self) -> None:
        """Average the generator's floating buffers (normalization running statistics) across ranks.

        Each rank normalizes with its own batch statistics, so without this the running statistics (and the EMA
        generator that copies them) drift apart between replicas. Works on gloo too, unlike SyncBatchNorm.
        """
        if get_dist_info()[1] > 1:
            for buffer in _unwrap(self.generator).buffers():
                if buffer.is_floating_point():
                    all_reduce(buffer, op="mean")

    @property
    def _augmenting(self) -> bool:
        return self.augment_adaptive is not None or float(self.augment_p) > 0

    def _update_ema(self) -> None:
        step = int(self.step) + 1
        halflife = min(self.ema_halflife_iters, max(1.0, self.ema_rampup * step))
        self.generator_ema.momentum = 1.0 - 0.5 ** (1.0 / halflife)
        self.generator_ema.update_parameters(_unwrap(self.generator))

    # ------------------------------------------------------------------ mmengine interface

    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """One discriminator update then one generator update; returns the loss terms for logging."""
        data = self.data_preprocessor(data, True)
        real = data["image"]  # in [-1, 1]
        labels = data["label"].long()
        edges = self._edges(data, real.shape[0], real.device)
        gen = self._step_generator()  # every random draw of the step, in a fixed order: D's, then G's
        warming_up = int(self.step) < self.generator_warmup_iters  # G's loss is logged, not applied
        log_d, loss_d, d_applied = self.train_discriminator(real, labels, edges, gen, optim_wrapper["discriminator"])
        log_g, loss_g, g_applied = self.train_generator(real, labels, edges, gen, optim_wrapper["generator"],
                                                        apply=not warming_up)
        self._count_nonfinite(d_applied and (g_applied or warming_up))
        self._sync_generator_buffers()
        if g_applied:  # a skipped (or warm-up) generator update leaves nothing new to average
            self._update_ema()
        log = {**log_d, **log_g, **self._adapt_augmentation(real.shape[0])}
        self.step += 1
        log["loss_d"], log["loss_g"] = loss_d.detach(), loss_g.detach()
        return {k: v.detach() for k, v in log.items()}

    def train_discriminator(self, real: torch.Tensor, labels: torch.Tensor, edges: torch.Tensor | None,
                            gen: torch.Generator, wrapper: OptimWrapper) -> tuple[dict, torch.Tensor, bool]:
        """Real -> class+1, fake -> 0, plus LabelMix consistency, in one forward on the concatenation (a single DDP
        forward per backward, and one backbone pass for all three). Returns (log terms, loss, update applied)."""
        batch, device, cfg = real.shape[0], real.device, self.loss_config
        log: dict[str, torch.Tensor] = {}
        with wrapper.optim_context(self.discriminator):
            with torch.no_grad():
                fake = self.generator(labels, self._noise(gen, batch, device), edges)
            parts = [real, fake]
            if cfg.labelmix > 0:
                mixed, mask = labelmix(real, fake, labels, generator=gen)
                parts.append(mixed)
            d_labels, valid = labels, None
            if self._augmenting:
                params = sample_params(batch, *labels.shape[1:], float(self.augment_p), self.d_augment_config.ops, gen)
                ignore = self.label_space.ignore_index
                real_aug, d_labels, valid = augment_batch(real, labels, params, ignore)
                parts = [real_aug, *(augment_batch(x, labels, params, ignore)[0] for x in parts[1:])]
                if cfg.labelmix > 0:
                    mask = apply_geometry(mask, params, 0.0)
            logits = self.discriminator(torch.cat(parts)).float().chunk(len(parts))
            log["loss_d_adv"] = discriminator_adversarial_loss(
                logits[0], logits[1], d_labels, gamma=cfg.focal_gamma, ignore_index=self.label_space.ignore_index,
                valid=valid,
            )
            if self.augment_adaptive is not None:
                signal = torch.stack(overfitting_signal(logits[0].detach(), d_labels, self.label_space.ignore_index))
                self.augment_signal += signal.to(self.augment_signal)
            loss = log["loss_d_adv"]
            if cfg.labelmix > 0:
                log["loss_d_labelmix"] = labelmix_loss(logits[2], logits[0], logits[1], mask.to(logits[0].dtype))
                loss = loss + cfg.labelmix * log["loss_d_labelmix"]
        return log, loss, self._update(wrapper, loss, "discriminator")

    def train_generator(self, real: torch.Tensor, labels: torch.Tensor, edges: torch.Tensor | None,
                        gen: torch.Generator, wrapper: OptimWrapper, apply: bool = True
                        ) -> tuple[dict, torch.Tensor, bool]:
        """Adversarial + PatchNCE against the real image's backbone features + mode seeking over two seeds per
        label map (both seeds go through G in one batch) + per-class colour-distribution matching. With
        ``apply=False`` (the warm-up: D first learns the data) the loss is computed for the log, not applied.
        Returns (log terms, loss, update applied)."""
        batch, device, cfg = real.shape[0], real.device, self.loss_config
        log: dict[str, torch.Tensor] = {}
        seeds_per_map = 2 if cfg.diversity > 0 else 1
        with wrapper.optim_context(self.generator):
            noise = self._noise(gen, batch * seeds_per_map, device)
            label_rep = labels.repeat(seeds_per_map, 1, 1)
            edge_rep = None if edges is None else edges.repeat(seeds_per_map, 1, 1, 1)
            fakes = self.generator(label_rep, noise, edge_rep)
            disc = _unwrap(self.discriminator)
            d_input, g_labels, real_seen = fakes, label_rep, real
            if self._augmenting:  # the same draw for both seeds of a map and for its real image (PatchNCE pairs)
                params = sample_params(batch, *labels.shape[1:], float(self.augment_p), self.d_augment_config.ops, gen)
                ignore = self.label_space.ignore_index
                d_input, g_labels, _ = augment_batch(fakes, label_rep, params.repeat(seeds_per_map), ignore)
                real_seen = augment_batch(real, labels, params, ignore)[0]
            with _no_param_grads(disc):
                logits_fake, feats_fake = disc.forward_with_features(d_input)
                log["loss_g_adv"] = generator_adversarial_loss(
                    logits_fake.float(), g_labels, gamma=cfg.focal_gamma,
                    ignore_index=self.label_space.ignore_index,
                )
                loss = log["loss_g_adv"]
                if cfg.patch_nce > 0:
                    with torch.no_grad():
                        feats_real = disc.backbone_features(real_seen)
                    log["loss_g_nce"] = patch_nce_loss(
                        [f[:batch].float() for f in feats_fake], [f.float() for f in feats_real],
                        num_patches=cfg.nce_patches, temperature=cfg.nce_temperature, generator=gen,
                    )
                    loss = loss + cfg.patch_nce * log["loss_g_nce"]
            if seeds_per_map == 2:
                log["loss_g_div"] = diversity_loss(fakes[:batch], fakes[batch:], noise[:batch], noise[batch:],
                                                   max_ratio=cfg.diversity_max_ratio)
                loss = loss + cfg.diversity * log["loss_g_div"]
            if cfg.colour_match > 0:  # unaugmented images: the colours a segmenter will see
                log["loss_g_colour"] = torch.stack([
                    colour_distribution_loss(fake.float(), real, labels, self.label_space.ignore_index)
                    for fake in fakes.chunk(seeds_per_map)
                ]).mean()
                loss = loss + cfg.colour_match * log["loss_g_colour"]
        if not apply:
            wrapper.zero_grad()
            return log, loss, False
        return log, loss, self._update(wrapper, loss, "generator")

    def _adapt_augmentation(self, batch: int) -> dict[str, torch.Tensor]:
        """ADA: at its interval, move D's augmentation probability by the summed overfitting signal (every rank
        identically); log p and r_t (p stuck at 0 means D never looked overfit)."""
        if self.augment_adaptive is None:
            return {}
        if self.augment_adaptive.due(int(self.step)):
            signal = self.augment_signal.clone()
            all_reduce(signal, op="sum")  # every rank then moves p identically
            self.augment_r_t.fill_(float(signal[0]) / max(float(signal[1]), 1.0))
            self.augment_adaptive.update(self.augment_p, float(self.augment_r_t), batch * get_dist_info()[1])
            self.augment_signal.zero_()
        return {"augment_p": self.augment_p.clone(), "augment_r_t": self.augment_r_t.clone()}

    def recalibrate_ema(self, label_batches) -> int:
        """Re-collect the EMA generator's BatchNorm statistics on ``label_batches`` (contiguous ids ``[B, H, W]``, or
        ``(labels, edges)`` pairs for a generator with instance edges).

        Training copies the live generator's running statistics into the EMA after every update; they belong to
        other weights. The next update overwrites the re-collected ones again, so training is unaffected.
        """
        ema = self.generator_ema.module
        device = self.step.device
        def on_device(batch):
            if isinstance(batch, tuple | list):
                labels, edges = batch
                return labels.to(device).long(), (None if edges is None else edges.to(device).float())
            return batch.to(device).long()

        used = ema.recalibrate_batch_norm((on_device(b) for b in label_batches), seed=self.seed)
        self.ema_calibrated_step = int(self.step)
        return used

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seeds: list[int], use_ema: bool = True,
               edges: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] for contiguous ``labels`` [B,H,W], one seed per image, from the EMA generator;
        ``edges`` [B,1,H,W]: the instance boundaries, for a generator with instance edges (it needs them)."""
        model = self.generator_ema.module if use_ema else _unwrap(self.generator)
        if self.generator_config.use_instance_edges and edges is None:
            raise ValueError("this generator uses instance edges: pass sample(..., edges=) (the dataset's 'edges')")
        if edges is not None:
            edges = (edges[:, None] if edges.dim() == 3 else edges).to(self.step.device).float()
            if not self.generator_config.use_instance_edges:
                edges = None  # a dataset that yields edges for a generator without them: nothing to feed
        was_training = model.training
        model.eval()
        try:
            return model(labels.to(self.step.device), model.sample_noise(seeds, device=self.step.device), edges)
        finally:
            model.train(was_training)

    def forward(self, inputs: torch.Tensor, data_samples: list | None = None, mode: str = "tensor"):
        """``mode='tensor'``: EMA samples for a batch of label maps (seeds 0..B-1). Training uses train_step."""
        if mode != "tensor":
            raise NotImplementedError(f"DPSIMSGAN.forward supports mode='tensor' only, got {mode!r}")
        return self.sample(inputs, list(range(inputs.shape[0])))

