"""Runner hooks of the GAN trainer: safe checkpoints, sample grids and the exported inference checkpoint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import DATASETS, HOOKS
from PIL import Image

from dpsims_aug.checkpoint import file_sha256
from dpsims_aug.fileio import atomic_path
from dpsims_aug.mm.checkpoints import SafeCheckpointHook
from dpsims_aug.mm.runner import SUMMARY
from train_gan.export import DPSIMS_META_KEY, export_generator


def _gan(runner):
    model = runner.model
    return model.module if is_model_wrapper(model) else model


BACKBONE_PREFIX = "discriminator.backbone."


class BackboneMismatchError(RuntimeError):
    """A checkpoint without its frozen backbone resumed by a run whose backbone differs."""


def _backbone(model):
    disc = model.discriminator
    return (disc.module if is_model_wrapper(disc) else disc).backbone


def backbone_fingerprint(model) -> str:
    """sha256 of the discriminator backbone's state (names and bytes), which a checkpoint may leave out."""
    digest = hashlib.sha256()
    for name, tensor in sorted(_backbone(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@HOOKS.register_module()
class GANCheckpointHook(SafeCheckpointHook):
    """:class:`~dpsims_aug.mm.checkpoints.SafeCheckpointHook` (``weights_only``-loadable checkpoints) that also
    stores the generator config and LabelSpace in the checkpoint's ``meta``, so ``dpsims-aug export`` can turn any
    training checkpoint into an inference checkpoint.

    A frozen discriminator backbone built from pretrained weights is left out of the checkpoint (ConvNeXt-L is 0.73
    of a paper config's 1.78 GiB): the model rebuilds it from the same weights, and the checkpoint records its
    fingerprint, which resume checks (a different backbone is refused by name) before putting the tensors back for
    mmengine's strict load. Randomly initialized or trained backbones are kept."""

    def __init__(self) -> None:
        super().__init__()
        self._fingerprints: dict[int, str] = {}  # id(model) -> fingerprint (the backbone never changes)

    def _fingerprint(self, model) -> str:
        if id(model) not in self._fingerprints:
            self._fingerprints[id(model)] = backbone_fingerprint(model)
        return self._fingerprints[id(model)]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        super().after_load_checkpoint(runner, checkpoint)
        record = checkpoint.get("meta", {}).get(DPSIMS_META_KEY, {}).get("frozen_backbone")
        if record is None:
            return
        model = _gan(runner)
        expected = json.loads(record)["sha256"]
        if self._fingerprint(model) != expected:
            raise BackboneMismatchError(
                f"the checkpoint of iteration {checkpoint.get('meta', {}).get('iter', '?')} was trained with another "
                f"discriminator backbone (weights sha256 {expected[:12]}, "
                f"this run's {self._fingerprint(model)[:12]}): the checkpoint leaves the frozen backbone out, so "
                "resume needs the same backbone weights (model.discriminator.backbone / .weights)")
        state = checkpoint.setdefault("state_dict", {})
        for name, tensor in _backbone(model).state_dict().items():
            state[BACKBONE_PREFIX + name] = tensor

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        super().before_save_checkpoint(runner, checkpoint)
        model = _gan(runner)
        if calibrate_ema(runner) or model.ema_calibrated_step == int(model.step):
            # The state dict was taken before: store the re-collected EMA statistics, so `dpsims-aug export` of
            # this checkpoint gives the same generator as the end-of-training export.
            state = checkpoint.get("state_dict", {})
            for name, buffer in model.generator_ema.module.named_buffers():
                key = f"generator_ema.module.{name}"
                if key in state:
                    state[key] = buffer.detach().clone().cpu()
        meta = checkpoint.setdefault("meta", {})[DPSIMS_META_KEY] = {
            "generator_config": json.dumps(model.generator_config.to_dict()),
            "label_space": model.label_space.to_json(),
        }
        if getattr(model, "backbone_rebuilt_from_weights", False):
            state = checkpoint.get("state_dict", {})
            dropped = [key for key in state if key.startswith(BACKBONE_PREFIX)]
            for key in dropped:
                del state[key]
            meta["frozen_backbone"] = json.dumps({"sha256": self._fingerprint(model), "tensors": len(dropped)})


def calibrate_ema(runner) -> bool:
    """Re-collect the EMA generator's BatchNorm statistics on fixed training label maps, once per step.

    Uses ``model.ema_bn_batches`` batches of the training set's label maps at evenly spaced indices (augmentation
    is a pure function of the index, so the maps are the same in every run and after a resume). Returns whether it
    recalibrated (False when disabled or already done at this step).
    """
    model = _gan(runner)
    loader = getattr(runner, "train_dataloader", None)
    if model.ema_bn_batches <= 0 or model.ema_calibrated_step == int(model.step) or loader is None:
        return False
    dataset, batch = loader.dataset, max(1, loader.batch_size or 1)
    total = min(len(dataset), model.ema_bn_batches * batch)
    indices = np.unique(np.linspace(0, len(dataset) - 1, total).round().astype(int))
    items = [dataset[int(i)] for i in indices]
    labels = [it["label"] for it in items]
    if model.generator_config.use_instance_edges:  # the dataset yields each map's instance edges (SegPairDataset)
        edges = [it["edges"] for it in items]
        model.recalibrate_ema((torch.stack(labels[s : s + batch]), torch.stack(edges[s : s + batch]))
                              for s in range(0, len(labels), batch))
    else:
        model.recalibrate_ema(torch.stack(labels[s : s + batch]) for s in range(0, len(labels), batch))
    return True


def stack_edges(items: list[dict]) -> torch.Tensor | None:
    """The ``edges`` of dataset items as one ``[B, 1, H, W]`` batch (None when the items have none)."""
    return torch.stack([it["edges"] for it in items]) if items and "edges" in items[0] else None


def _to_uint8(model, images: torch.Tensor) -> np.ndarray:
    """The model's ``[B,3,H,W]`` images in [-1,1] -> ``[B,H,W,3]`` uint8 (its data preprocessor's inverse)."""
    return model.data_preprocessor.destruct(images).permute(0, 2, 3, 1).cpu().numpy()


def sample_grid(label_rgb: np.ndarray, real: np.ndarray, samples: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Rows of ``label | real | sample_1 .. sample_k`` (each [N,H,W,3] uint8) as one RGB image."""
    from dpsims_aug.image_grid import tile_grid

    columns = [label_rgb, real, *samples]
    return tile_grid([[column[r] for column in columns] for r in range(len(label_rgb))], gap=pad)


def held_out_dataset(runner, overrides: dict | None) -> dict:
    """The held-out dataset of the sample grid and the evaluation: the training dataset's config with
    ``split='val'``, no flips, no rescaling, no recolouring and no ``max_samples``, updated by ``overrides`` (e.g.
    ``dict(data_root=...)``; a config with its own ``type`` replaces it)."""
    overrides = dict(overrides or {})
    if "type" in overrides:
        return overrides
    cfg = dict(runner.cfg.train_dataloader.dataset)
    cfg.pop("max_samples", None)
    return {**cfg, "split": "val", "flip": False, "scale_range": (1.0, 1.0), "class_recolour": 0.0, **overrides}


@HOOKS.register_module()
class SampleGridHook(Hook):
    """Every ``interval`` iterations (and at the end), draw EMA samples for fixed held-out label maps.

    The grid (label | real | ``num_seeds`` samples per row) goes to ``<log_dir>/samples/iter_XXXXXX.png`` and to
    the runner's visualizer backends (tensorboard when configured).

    Args:
        dataset: Overrides of the held-out dataset (:func:`held_out_dataset`: the training data's ``val`` split).
        interval: Iterations between grids.
        num_images: Label maps (rows) per grid.
        num_seeds: Samples (columns) per label map.
    """

    priority = "LOW"

    def __init__(self, dataset: dict | None = None, interval: int = 500, num_images: int = 6,
                 num_seeds: int = 3) -> None:
        self.dataset_cfg = dataset
        self.interval = interval
        self.num_images = num_images
        self.num_seeds = num_seeds
        self._batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None

    def _fixed_batch(self, runner) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(images, labels, instance edges or None) of the held-out rows."""
        if self._batch is None:
            dataset = DATASETS.build(held_out_dataset(runner, self.dataset_cfg))
            items = [dataset[i] for i in range(min(self.num_images, len(dataset)))]
            self._batch = (torch.stack([it["image"] for it in items]), torch.stack([it["label"] for it in items]),
                           stack_edges(items))
        return self._batch

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            from mmengine.dist import is_main_process

            if is_main_process():  # one grid per run, not one per rank racing for the same file
                self.write_grid(runner)

    def write_grid(self, runner) -> Path:
        calibrate_ema(runner)
        model = _gan(runner)
        images, labels, edges = self._fixed_batch(runner)
        samples = [
            _to_uint8(model, model.sample(labels, [1000 * s + i for i in range(labels.shape[0])], edges=edges))
            for s in range(self.num_seeds)
        ]
        label_rgb = model.label_space.colorize(labels.numpy())
        grid = sample_grid(label_rgb, images.permute(0, 2, 3, 1).numpy(), samples)
        path = Path(runner.log_dir) / "samples" / f"iter_{runner.iter + 1:06d}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
        runner.visualizer.add_image("samples", grid, step=runner.iter + 1)
        return path


@HOOKS.register_module()
class ExportGeneratorHook(Hook):
    """At the end of training, export the EMA generator to ``<work_dir>/<filename>`` (weights + generator config +
    LabelSpace, safetensors)."""

    priority = "LOWEST"

    def __init__(self, filename: str = "generator_ema.safetensors") -> None:
        self.filename = filename

    def after_train(self, runner) -> None:
        scalars = runner.message_hub.log_scalars
        losses = {k.split("/", 1)[1]: round(float(v.current()), 5) for k, v in scalars.items() if "loss" in k}
        summary = {
            "iterations": runner.iter,
            "experiment": runner.experiment_name,
            "final_losses": losses,
        }
        model = _gan(runner)
        if model.init_generator is not None:  # provenance of a fine-tuned generator
            summary["initialized_from"] = dict(file=Path(model.init_generator).name,
                                               sha256=file_sha256(model.init_generator))
        path = Path(runner.work_dir) / self.filename
        calibrate_ema(runner)
        export_generator(model, path, summary)
        runner.logger.info(f"Exported the EMA generator to {path}", extra=SUMMARY)


@HOOKS.register_module()
class GANEvaluationHook(Hook):
    """Every ``interval`` iterations (and at the end): FID, and mIoU when a segmenter is configured, of EMA samples
    for the label maps of a held-out split.

    Samples use fixed seeds (``derive_seed(seed, "heldout/<index>", k)``), so successive evaluations differ only by
    the model. The real images' Inception statistics (and the segmenter's mIoU on them) are computed once. Values
    go to the message hub (``val/<name>``), the visualizer backends (``add_scalars``) and one JSON line per
    evaluation in ``<log_dir>/metrics.jsonl``. Under DDP only the main process evaluates.

    Args:
        dataset: Overrides of the held-out dataset (:func:`held_out_dataset`: the training data's ``val`` split).
        interval: Iterations between evaluations.
        num_images: Held-out label maps to use (default: all).
        num_seeds: Samples per label map (FID uses all of them).
        batch_size: Label maps per sampling / feature-network batch.
        segmenter_config: mmseg config of a segmenter trained on real images (enables ``miou_*``).
        segmenter_checkpoint: Its checkpoint.
        seed: Global seed of the sample seeds.
        tstr: Also train-on-synthetic/test-on-real (:func:`dpsims_aug.metrics.tstr.
            train_on_synthetic_test_on_real`, minutes per evaluation): ``dict(segmenter_config=..., data_root=...,
            iters=1000, maps=128)``; the EMA generator is exported to ``<work_dir>/tstr/`` for it.
    """

    priority = "LOW"

    def __init__(
        self,
        dataset: dict | None = None,
        interval: int = 1000,
        num_images: int | None = None,
        num_seeds: int = 1,
        batch_size: int = 16,
        segmenter_config: str | None = None,
        segmenter_checkpoint: str | None = None,
        seed: int = 0,
        tstr: dict | None = None,
    ) -> None:
        if tstr is not None and not {"segmenter_config", "data_root"} <= set(tstr):
            raise ValueError("GANEvaluationHook: tstr needs segmenter_config and data_root")
        if (segmenter_config is None) != (segmenter_checkpoint is None):
            raise ValueError("GANEvaluationHook: give both segmenter_config and segmenter_checkpoint, or neither")
        self.dataset_cfg = dataset
        self.interval = interval
        self.num_images = num_images
        self.num_seeds = num_seeds
        self.batch_size = batch_size
        self.segmenter_config = segmenter_config
        self.segmenter_checkpoint = segmenter_checkpoint
        self.seed = seed
        self.tstr = tstr
        self._labels: list[torch.Tensor] | None = None
        self._edges: list[torch.Tensor] | None = None  # per label map, for a generator with instance edges
        self._reals: list[np.ndarray] = []
        self._real_features: np.ndarray | None = None
        self._reference = None
        self._segmenter = None
        self._miou_real: float | None = None

    def _setup(self, runner, device: torch.device, ignore_index: int) -> None:
        """Load the held-out set; compute the real images' statistics (and segmenter mIoU) once."""
        from dpsims_aug.metrics.fid import FeatureStats, InceptionFeatures
        from dpsims_aug.metrics.miou import confusion_matrix, mean_iou
        from dpsims_aug.mm.segmenter import Segmenter

        dataset = DATASETS.build(held_out_dataset(runner, self.dataset_cfg))
        n = len(dataset) if self.num_images is None else min(self.num_images, len(dataset))
        items = [dataset[i] for i in range(n)]
        self._labels = [it["label"] for it in items]
        self._edges = [it["edges"] for it in items] if items and "edges" in items[0] else None
        reals = [it["image"].permute(1, 2, 0).numpy() for it in items]
        features = InceptionFeatures(device, self.batch_size)
        self._reference = FeatureStats.empty()
        chunks = []
        for start in range(0, n, self.batch_size):
            chunks.append(features(reals[start : start + self.batch_size]))
            self._reference.update(chunks[-1])
        self._reals, self._real_features = reals, torch.cat(chunks).numpy()
        if self.segmenter_config is not None:
            self._segmenter = Segmenter.from_files(self.segmenter_config, self.segmenter_checkpoint, device=device)
            c = self._segmenter.num_classes
            confusion = np.zeros((c, c), np.int64)
            for pred, label in zip(self._segmenter.predict(reals), self._labels):
                confusion += confusion_matrix(pred, label.numpy(), c, ignore_index)
            self._miou_real = mean_iou(confusion)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            from mmengine.dist import is_main_process

            if is_main_process():
                self.evaluate(runner)

    def _sample_batches(self, model):
        """The EMA generator's samples of the held-out label maps (fixed seeds), as metric batches."""
        from dpsims_aug.metrics.registry import EvalBatch
        from dpsims_aug.synthesis import derive_seed

        for start in range(0, len(self._labels), self.batch_size):
            labels = self._labels[start : start + self.batch_size]
            edges = None if self._edges is None else torch.stack(self._edges[start : start + self.batch_size])
            indices = range(start, start + len(labels))
            per_seed = []
            for k in range(self.num_seeds):
                seeds = [derive_seed(self.seed, f"heldout/{i}", k) for i in indices]
                per_seed.append(_to_uint8(model, model.sample(torch.stack(labels), seeds, edges=edges)))
            yield EvalBatch(labels=[lab.numpy() for lab in labels],
                            fakes=list(np.stack(per_seed, axis=1)),  # per label map: [num_seeds, H, W, 3]
                            reals=self._reals[start : start + len(labels)])

    def evaluate(self, runner) -> dict[str, float]:
        """Compute, log and record the metrics for the current EMA generator; returns them."""
        from dpsims_aug.metrics.evaluate import fidelity_metrics

        calibrate_ema(runner)
        model = _gan(runner)
        device = model.step.device
        if self._labels is None:
            self._setup(runner, device, model.label_space.ignore_index)
        values = fidelity_metrics(self._sample_batches(model), model.label_space, device=device,
                                  batch_size=self.batch_size, reference=self._reference, n_seeds=self.num_seeds,
                                  segmenter=self._segmenter, real_features=self._real_features)
        if self.tstr is not None:
            from dpsims_aug.metrics.tstr import train_on_synthetic_test_on_real

            ckpt = Path(runner.work_dir) / "tstr" / f"generator_iter_{runner.iter + 1}.safetensors"
            export_generator(model, ckpt)
            values.update(train_on_synthetic_test_on_real(
                ckpt, self.tstr["data_root"], self.tstr["segmenter_config"], Path(runner.work_dir) / "tstr",
                max_train_maps=self.tstr.get("maps", 128), iters=self.tstr.get("iters", 1000), seed=self.seed))
        if self._miou_real is not None:
            values["miou_real"] = self._miou_real
            values["miou_ratio"] = values["miou_fake"] / self._miou_real if self._miou_real > 0 else float("nan")
        step = runner.iter + 1
        # Image counts go to metrics.jsonl only; curves are for the metrics themselves.
        scalars = {f"val/{k}": v for k, v in values.items() if "_num_" not in k}
        for name, value in scalars.items():
            runner.message_hub.update_scalar(name, value)
        runner.visualizer.add_scalars(scalars, step=step)
        record = {"iter": step, **{k: (v if np.isfinite(v) else None) for k, v in values.items()}}
        with open(Path(runner.log_dir) / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")  # one append per record
        runner.logger.info("evaluation at iter %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in values.items()),
                           extra=SUMMARY)
        return values
