"""The study's cached stages. Every stage writes to its own folder (named after the parameters it depends on) and
marks itself done with ``stage.json`` (:func:`mark_done`); a stage whose record exists (:func:`stage_done`) is not
run again, so a killed study resumes where it stopped. The folder names are the cache keys of existing work dirs:
changing one retrains silently."""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

from common import repo_relative, write_json  # benchmarks/common.py
from jobs import Job, log, run_jobs, thread_env  # benchmarks/jobs.py

from .study import GPU_DATASETS, dataset_format, gan_config_path
from .variants import ORACLE_SOURCES, Variant

DONE = "stage.json"
THING_IDS = (2, 7, 8, 9)  # embedded raw ids of cloud, tree, rock, building: what `layouts` pastes in the study


def stage_done(folder: Path) -> dict | None:
    """The ``stage.json`` record of a finished stage, else None."""
    try:
        return json.loads((folder / DONE).read_text())
    except (OSError, ValueError):
        return None


def mark_done(folder: Path, record: dict) -> None:
    """Write ``stage.json`` atomically: the stage is complete."""
    write_json(folder / DONE, record)


class StageLog:
    """The ``stages`` record of the results: name -> the stage's record, each logged as it is added."""

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}

    def add(self, name: str, record: dict) -> None:
        self.records[name] = record
        state = "cached" if record.get("cached") else f"{record.get('seconds', 0):.1f} s"
        log(f"[stage] {name}: {state}")


# ------------------------------------------------------------------------------------------------ data


def stage_data(args: argparse.Namespace, root: Path) -> tuple[Path, Path, dict]:
    """Training root (only the labelled images) and validation root; writes / links them once."""
    folder = root / "data"
    if args.dataset == "embedded":
        if stage_done(folder) is None:
            from dpsims_aug.data.writers import write_dataset

            write_dataset(folder, "ade20k", n_train=args.labelled, n_val=args.val, size=(args.size, args.size),
                          domain=args.domain)
            mark_done(folder, dict(labelled=args.labelled, val=args.val, size=args.size, domain=args.domain))
        return folder, folder, dict(train=args.labelled, val=args.val, domain=args.domain)
    data_root = Path(args.data_root).resolve()
    if not args.labelled:
        return data_root, data_root, dict(train="all", val="all")
    if stage_done(folder) is None:
        _link_labelled(args, data_root, folder)
    return folder, data_root, dict(train=args.labelled, val="all")


def _link_labelled(args: argparse.Namespace, data_root: Path, folder: Path) -> None:
    """GPU datasets: ``folder`` holds symlinks to the first ``--labelled`` training pairs of ``data_root``."""
    from dpsims_aug.data.readers import find_pairs

    pairs = find_pairs(data_root, dataset_format=GPU_DATASETS[args.dataset][2], split="train")[: args.labelled]
    for image, label in pairs:
        # The image, and every annotation file of that sample (Cityscapes: labelIds + labelTrainIds, ...).
        base = image.stem.removesuffix("_leftImg8bit")
        siblings = [p for p in label.parent.iterdir() if p.name.startswith((f"{base}.", f"{base}_"))]
        for src in [image, *siblings]:
            dst = folder / src.relative_to(data_root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.is_symlink():
                dst.symlink_to(src.resolve())
    mark_done(folder, dict(labelled=len(pairs), source=str(data_root)))


def stage_eval_domains(args: argparse.Namespace) -> dict[str, str]:
    """Held-out images of every ``--eval-domains`` domain (the same scenes a study of that domain holds out)."""
    roots = {}
    for domain in args.eval_domains:
        folder = args.work_dir / "eval_data" / f"{domain}_V{args.val}_S{args.size}"
        if stage_done(folder) is None:
            from dpsims_aug.data.writers import write_dataset

            write_dataset(folder, "ade20k", n_train=1, n_val=args.val, size=(args.size, args.size), domain=domain)
            mark_done(folder, dict(val=args.val, size=args.size, domain=domain))
        roots[domain] = str(folder)
    return roots


# ------------------------------------------------------------------------------------------------ GAN


def gan_config_digest(args: argparse.Namespace) -> str:
    """Hash of the GAN config as resolved (its ``_base_`` files included), to tell recipes apart across edits."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(gan_config_path(args)), import_custom_modules=False)
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:12]


def gan_command(args: argparse.Namespace, gan_dir: Path, train_root: Path, val_root: Path) -> list[str]:
    """The ``train_gan`` command line: the shipped config, its data roots pointed at the study's folders."""
    from mmengine.config import Config

    cfg_path = gan_config_path(args)
    cfg = Config.fromfile(str(cfg_path), import_custom_modules=False)
    options = [f"train_dataloader.dataset.data_root={train_root}"]
    if args.labelled:
        options.append(f"train_dataloader.dataset.max_samples={args.labelled}")
    for i, hook in enumerate(cfg.get("custom_hooks", [])):
        if hook["type"] in ("SampleGridHook", "GANEvaluationHook"):
            options.append(f"custom_hooks.{i}.dataset.data_root={val_root}")  # samples / FID on held-out maps
    launch = [sys.executable, "-m", "train_gan.train"]
    if args.gan_gpus > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.gan_gpus}",
                  "-m", "train_gan.train", "--launcher", "pytorch"]
    command = [*launch, str(cfg_path), "--work-dir", str(gan_dir), "--max-iters", str(args.gan_iters)]
    if (gan_dir / "last_checkpoint").is_file():
        command.append("--resume")
    return [*command, "--cfg-options", *options, *args.gan_options]


def gan_folder_name(args: argparse.Namespace) -> str:
    """``gan_i<iters>``, plus a hash of ``--gan-options`` when given, so GAN recipes never share a stage folder."""
    if not args.gan_options:
        return f"gan_i{args.gan_iters}"
    digest = hashlib.sha256("\n".join(args.gan_options).encode()).hexdigest()[:8]
    return f"gan_i{args.gan_iters}_{digest}"


def given_generator(args: argparse.Namespace, root: Path) -> tuple[Path, dict]:
    """``--gan-checkpoint``, copied into ``given_<sha256[:12]>`` so its pools are kept apart from other
    generators'."""
    from dpsims_aug.checkpoint import file_sha256

    digest = file_sha256(args.gan_checkpoint)[:12]
    ckpt = root / f"given_{digest}" / "generator_ema.safetensors"
    if not ckpt.is_file():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_bytes(Path(args.gan_checkpoint).read_bytes())
    return ckpt, dict(given=str(args.gan_checkpoint), sha256=digest, cached=True)


def stage_gan(args: argparse.Namespace, root: Path, train_root: Path, val_root: Path) -> tuple[Path, dict]:
    """Train DP-SIMS on the labelled images (subprocess); returns the exported EMA generator.

    With ``--gan-checkpoint`` the given generator is used instead (:func:`given_generator`)."""
    if args.gan_checkpoint is not None:
        return given_generator(args, root)
    gan_dir = root / gan_folder_name(args)
    ckpt = gan_dir / "generator_ema.safetensors"
    config_digest = gan_config_digest(args)
    done = stage_done(gan_dir)
    if done is not None and ckpt.is_file():
        # The folder is named by the options, not the config: a GAN trained before the shipped config changed must
        # not stand in for the new recipe.
        if done.get("config_sha256", config_digest) != config_digest:
            raise SystemExit(f"error: {gan_dir} holds a GAN trained with another version of "
                             f"{repo_relative(str(gan_config_path(args)))} (sha256 {done['config_sha256']}, now "
                             f"{config_digest}); use another --work-dir or remove that folder")
        return ckpt, dict(done, cached=True)
    gan_dir.mkdir(parents=True, exist_ok=True)
    command = gan_command(args, gan_dir, train_root, val_root)
    log(f"[gan] {shlex.join(command)}\n[gan] log: {gan_dir / 'train.log'}")
    started = time.perf_counter()
    run_jobs([Job(name="gan", command=command, log=gan_dir / "train.log", done=ckpt)],
             env_for_slot=lambda slot: thread_env(args.threads), tag="gan")
    record = dict(command=shlex.join(command), iterations=args.gan_iters, options=args.gan_options,
                  config_sha256=config_digest, threads=args.threads,
                  seconds=round(time.perf_counter() - started, 1))
    mark_done(gan_dir, record)
    return ckpt, dict(record, cached=False)


# ------------------------------------------------------------------------------------------------ pools


def stage_pool(args: argparse.Namespace, gan_dir: Path, train_root: Path, ckpt: Path, n: int) -> tuple[Path, dict]:
    """``generate`` n images per labelled label map (resumable on its own; marked done when complete)."""
    pool = gan_dir / f"pool_n{n}"
    done = stage_done(pool)
    if done is not None:
        return pool, dict(done, cached=True)
    from dpsims_aug.pool.writer import generate

    summary = generate(labels=train_root, n=n, out=pool, checkpoint=ckpt, dataset_format=dataset_format(args),
                       split="train",
                       device=args.device, progress=False, workers=1, log=lambda m: log(f"[pool_n{n}] {m}"))
    record = dict(n=n, images=summary.images_total, generated=summary.generated,
                  seconds=round(summary.seconds, 1), images_per_s=round(summary.images_per_second, 2))
    mark_done(pool, record)
    return pool, dict(record, cached=False)


def stage_oracle(args: argparse.Namespace, root: Path, n: int, new_scenes: bool) -> tuple[Path, dict]:
    """A pool drawn by the embedded renderer, in ``generate``'s folder format: n new appearances of every labelled
    layout (``new_scenes=False``) or n entirely new scenes per labelled map (``True``)."""
    folder = root / (f"oracle_new_n{n}" if new_scenes else f"oracle_n{n}")
    done = stage_done(folder)
    if done is not None:
        return folder, dict(done, cached=True)
    import numpy as np
    from PIL import Image

    from dpsims_aug.data.scenes import render_scene, scene_seeds
    from dpsims_aug.fileio import atomic_path
    from dpsims_aug.label_maps import write_label_map
    from dpsims_aug.labels import embedded_label_space

    started, space, size = time.perf_counter(), embedded_label_space(), (args.size, args.size)
    for i in range(args.labelled):
        layout_seed, appearance_seed = scene_seeds(0, i, 0)  # the study's labelled scene i (write_dataset, seed 0)
        for k in range(n):
            if new_scenes:  # stream 7: scenes no split of the study uses
                image, labels = render_scene(*scene_seeds(0, i * n + k, 7), size=size, domain=args.domain)
            else:
                seq = np.random.SeedSequence([appearance_seed, k, 0x0AC1E])
                image, labels = render_scene(layout_seed, int(seq.generate_state(1)[0]), size=size,
                                             domain=args.domain)
            name = f"training/scene_{i:06d}_s{k}"
            with atomic_path(folder / "images" / f"{name}.jpg") as tmp:
                Image.fromarray(image).save(tmp, format="JPEG", quality=95)
            write_label_map(folder / "annotations" / f"{name}.png", space.to_raw(labels))
    record = dict(n=n, new_scenes=new_scenes, images=args.labelled * n, seconds=round(time.perf_counter() - started, 1))
    mark_done(folder, record)
    return folder, dict(record, cached=False)


def stage_layouts(args: argparse.Namespace, gan_dir: Path, train_root: Path, ckpt: Path, k: int) -> tuple[Path, dict]:
    """``dpsims-aug layouts`` (k new label maps per labelled map, pasting the embedded "thing" classes), then
    ``generate`` one image per new map with the study's generator."""
    pool = gan_dir / f"layouts_k{k}"
    done = stage_done(pool)
    if done is not None:
        return pool, dict(done, cached=True)
    from dpsims_aug.layouts import LayoutAugment, write_layouts
    from dpsims_aug.pool.writer import generate

    started = time.perf_counter()
    maps = gan_dir.parent / f"layouts_k{k}_maps"
    params = LayoutAugment(paste_ids=THING_IDS if args.dataset == "embedded" else None)
    write_layouts(train_root, k, maps, dataset_format=dataset_format(args), split="train", params=params,
                  progress=False, log=lambda m: log(f"[layouts_k{k}] {m}"))
    generate(labels=maps, n=1, out=pool, checkpoint=ckpt, dataset_format="bare", device=args.device,
             progress=False, workers=1, log=lambda m: log(f"[layouts_k{k}] {m}"))
    record = dict(k=k, images=len(list((pool / "images").rglob("*.jpg"))),
                  seconds=round(time.perf_counter() - started, 1))
    mark_done(pool, record)
    return pool, dict(record, cached=False)


def stage_pools(args: argparse.Namespace, root: Path, train_root: Path, ckpt: Path | None,
                variants: list[Variant], stages: StageLog) -> dict[tuple[str, int], Path]:
    """Every pool the variants read, ``(source, n) -> folder``: the generator's next to it, the oracles' in
    ``root``."""
    needed = sorted({v.pool_key for v in variants if v.is_pool})
    if args.dataset != "embedded" and set(ORACLE_SOURCES) & {source for source, _ in needed}:
        raise SystemExit("error: the oracle sources need the embedded dataset (its renderer)")
    pools: dict[tuple[str, int], Path] = {}
    for source, n in needed:
        if source == "pool":
            pools[source, n], record = stage_pool(args, ckpt.parent, train_root, ckpt, n)
        elif source == "layouts":
            pools[source, n], record = stage_layouts(args, ckpt.parent, train_root, ckpt, n)
        else:
            pools[source, n], record = stage_oracle(args, root, n, new_scenes=source == "oracle_new")
        stages.add(pools[source, n].name, record)
    return pools


def filtered_pool_folder(pool: Path, variant: Variant, margin: float, seed: int) -> Path:
    """``<pool>_<tag>_m<margin>_seed<seed>``: the filtered / resampled pool of one variant and seed."""
    return pool.with_name(f"{pool.name}_{variant.tag}_m{margin:g}_seed{seed}")


def stage_filter(args: argparse.Namespace, pool: Path, variant: Variant, real_run: Path, seed: int,
                 train_root: Path) -> tuple[Path, dict]:
    """``dpsims-aug filter`` on a pool with the real-only segmenter of the same seed (FreeMask: the filter model
    is trained on the real images); returns the filtered pool's folder."""
    out = filtered_pool_folder(pool, variant, args.filter_margin, seed)
    done = stage_done(out)
    if done is not None:
        return out, dict(done, cached=True)
    from dpsims_aug.pool.filter import filter_pool

    checkpoint = Path((real_run / "last_checkpoint").read_text().strip())
    summary = filter_pool(pool, train_root, real_run / "config.py", checkpoint, out,
                          dataset_format=dataset_format(args), split="train",
                          margin=args.filter_margin if variant.filtered else None,
                          resample=variant.resampled, device=args.device, progress=False,
                          log=lambda m: log(f"[{out.name}] {m}"))
    record = dict(recipe=variant.recipe, seed=seed, margin=args.filter_margin, images=summary.images_selected,
                  images_pool=summary.images_pool, kept_fraction=round(summary.kept_fraction, 4),
                  seconds=round(summary.seconds, 1))
    mark_done(out, record)
    return out, dict(record, cached=False)

