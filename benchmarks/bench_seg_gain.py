"""Segmentation gain from DP-SIMS data: mmseg segmenters trained on real only vs real + synthetic images.

The study, in the low-data regime (default: 16 labelled images of the embedded dataset, 64x64, ADE-20K format; there a
perfect appearance synthesizer gains 8 mIoU, at 32 only 2.6, so 16 is where a recipe's effect shows above the seed
noise):

1. ``data``: the labelled training images and >= 200 held-out validation images (``dpsims-aug dataset``).
2. ``gan``: DP-SIMS trained on the labelled images only (``python -m train_gan.train``, embedded_small config),
   exporting ``generator_ema.safetensors``.
3. ``pool_n<k>``: ``generate`` writes k synthetic images per labelled label map with that generator.
4. ``seg``: Fast-SCNN (augment/embedded configs, random init, mmengine Runner, the same iterations for every
   variant), seeds 0..S-1 (Runner randomness seed and DPSIMSAugment seed):

   * ``real``: the labelled real images only;
   * ``pool_n<k>``: real + the offline pool of k images per map, half the samples synthetic for every k
     (``SyntheticMixDataset``, ``synthetic_share=0.5``), the same share as the online variant;
     ``pool_n<k>_s<share>``: the same pool at another synthetic share (``--shares``);
   * ``online``: real, with the image replaced by ``DPSIMSAugment`` (prob 0.5, the same generator) on the fly;
   * recipes (``--recipes``): ``pool_n<k>_f`` (``dpsims-aug filter``: FreeMask's pixel filter, with the real-only
     segmenter of the same seed), ``_r`` (hardness-aware resampling), ``_fr`` (both);
   * sources (``--sources``): ``layouts_n<k>`` (the GAN on k new label maps per map from ``dpsims-aug layouts``),
     ``oracle_n<k>`` (the embedded renderer drawing k new appearances of every labelled layout: a perfect
     appearance synthesizer; every other variant's gain is also reported as a fraction of its gain),
     ``oraclenew_n<k>`` (the renderer drawing k new scenes per map: a perfect layout + image synthesizer);
   * ``--variants`` names exactly the variants to run (e.g. ``pool_n4 pool_n4_f_s0.25 oracle_n4``) instead of
     the product of ``--sources``, ``--recipes``, ``--shares`` and ``--n``.

   Each run ends with mmseg's ``IoUMetric`` on the held-out real images (the Runner's val loop).
5. ``report``: mean +- std of mIoU per variant, a plot of mIoU vs k (0 = real only; online as its own marker),
   a JSON file with every run, and a table printed last.

Regimes (every result records its ``regime``): **same data** (the GAN trained on the labelled images, the default);
**another domain** (``--domain arid|snow``: the labelled and held-out images come from a target domain of the
renderer, and the generator is the source-domain one: ``--gan-checkpoint`` as is, or fine-tuned on the labelled
images with ``--gan-options model.init_generator=...``); **generator with more data** (a source-domain generator
trained on more scenes than the segmenter gets, on the source domain: a diagnostic no user is in).
``--eval-domains`` also tests every trained segmenter on the held-out images of other domains (the domain shift).

Every stage writes to its own folder under ``--work-dir`` (named after the parameters it depends on) and marks
itself done with ``stage.json``; a killed study resumes where it stopped (the GAN and segmenter runs resume from
their last checkpoint). Segmenter runs are subprocesses of this script, ``--jobs`` at a time with
``--threads / --jobs`` OpenMP threads each (on 2 cores two 1-thread runs beat one 2-thread run).

Modes on this 2-core machine (estimates from measured step times: GAN 0.5 s/iter with 2 threads, Fast-SCNN
0.07 s/iter real/pool and 0.10 s/iter online with 1 thread, ~20 s start-up + evaluation per segmenter run):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_seg_gain.py           # full: ~45-55 min idle
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_seg_gain.py --quick   # ~5 min idle (1 seed, short runs)

While another job holds a core use ``OMP_NUM_THREADS=1`` (one thread, one segmenter at a time; full ~75 min).

GPU datasets (the shipped train_gan/configs/<dataset>.py and augment/<dataset>/<model>_*_{real,pool,online}.py;
the labelled subset is a folder of symlinks to the first ``--labelled`` training pairs, validation is the whole
val split; one GPU per segmenter run, ``--jobs`` runs side by side; ``--gan-gpus N`` trains the GAN with torchrun):

    .venv/bin/python benchmarks/bench_seg_gain.py --dataset ade20k --data-root data/ade/ADEChallengeData2016 \\
        --labelled 1000 --gan-iters 50000 --gan-gpus 8 --seg-iters 40000 --jobs 8

Results: ``work_dirs/benchmarks/seg_gain.{json,png}`` (full), ``seg_gain_quick.*`` (``--quick``),
``seg_gain_<dataset>.*`` (GPU datasets); ``--update-results`` writes them to the committed ``benchmarks/results/``
instead, ``--results STEM`` anywhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import (  # benchmarks/common.py
    REPO,
    add_output_args,
    loadavg,
    machine_info,
    mean_std,
    output_path,
    repo_relative,
    results_paths,
    write_json,
    write_results,
)

EMBEDDED_GAN_CONFIG = REPO / "train_gan" / "configs" / "embedded_small.py"
GPU_DATASETS = {  # dataset -> (augment/ folder, train_gan config, dataset format)
    "ade20k": ("ade20k", "ade20k.py", "ade20k"),
    "coco_stuff": ("coco_stuff", "coco_stuff.py", "coco_stuff"),
    "cityscapes": ("cityscapes", "cityscapes.py", "cityscapes"),
}
DONE = "stage.json"
SOURCE_DOMAIN = "source"  # the renderer's domain the bundled generator was trained on


# ------------------------------------------------------------------------------------------------ helpers


def dataset_format(args: argparse.Namespace) -> str:
    """The on-disk folder format of the study's real data: the embedded scenes are written as ADE-20K."""
    return "ade20k" if args.dataset == "embedded" else GPU_DATASETS[args.dataset][2]


def log(msg: str) -> None:
    """Progress line on stderr (the table goes to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def stage_done(folder: Path) -> dict | None:
    """The ``stage.json`` record of a finished stage, else None."""
    try:
        return json.loads((folder / DONE).read_text())
    except (OSError, ValueError):
        return None


def mark_done(folder: Path, record: dict) -> None:
    """Write ``stage.json`` atomically: the stage is complete."""
    write_json(folder / DONE, record)


def thread_env(threads: int, gpu: int | None = None) -> dict[str, str]:
    """Environment of a child process: its OpenMP thread budget and, on GPUs, its device."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


# ------------------------------------------------------------------------------------------------ stages 1-3


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
    return folder, data_root, dict(train=args.labelled, val="all")


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


def study_regime(args: argparse.Namespace) -> str:
    """Which situation of a user the study measures (see the module docstring)."""
    fine_tuned = any(o.startswith("model.init_generator=") for o in args.gan_options)
    if not getattr(args, "uses_generator", True):
        return "no generator: real images (and the renderer's oracles) only"
    if args.gan_checkpoint is None and not fine_tuned:
        return "same data: the GAN trained on the labelled images only"
    how = "as is" if args.gan_checkpoint is not None else "fine-tuned on the labelled images"
    if args.domain != "source":
        return f"another domain: a generator trained on the {SOURCE_DOMAIN} domain, {how}, for {args.domain} images"
    return f"generator with more data (diagnostic): a generator trained on more scenes of the same domain, {how}"


def gan_config_path(args: argparse.Namespace) -> Path:
    """The shipped train_gan config the study trains its GAN with."""
    if args.dataset == "embedded":
        return EMBEDDED_GAN_CONFIG
    return REPO / "train_gan" / "configs" / GPU_DATASETS[args.dataset][1]


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


def stage_gan(args: argparse.Namespace, root: Path, train_root: Path, val_root: Path) -> tuple[Path, dict]:
    """Train DP-SIMS on the labelled images (subprocess); returns the exported EMA generator.

    With ``--gan-checkpoint`` the given generator is used instead (copied into the stage folder, named by its hash,
    so its pools are kept apart from those of other generators)."""
    if args.gan_checkpoint is not None:
        from dpsims_aug.checkpoint import file_sha256

        digest = file_sha256(args.gan_checkpoint)[:12]
        ckpt = root / f"given_{digest}" / "generator_ema.safetensors"
        if not ckpt.is_file():
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            ckpt.write_bytes(Path(args.gan_checkpoint).read_bytes())
        return ckpt, dict(given=str(args.gan_checkpoint), sha256=digest, cached=True)
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
    with open(gan_dir / "train.log", "ab") as out:
        rc = subprocess.call(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                             env=thread_env(args.threads))
    if rc != 0 or not ckpt.is_file():
        tail = (gan_dir / "train.log").read_text(errors="replace").splitlines()[-25:]
        raise SystemExit("\n".join([f"error: GAN training failed (exit {rc}); last lines of its log:", *tail]))
    record = dict(command=shlex.join(command), iterations=args.gan_iters, options=args.gan_options,
                  config_sha256=config_digest, threads=args.threads,
                  seconds=round(time.perf_counter() - started, 1))
    mark_done(gan_dir, record)
    return ckpt, dict(record, cached=False)


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


# ------------------------------------------------------------------------------------------------ stage 4


RECIPES = {"plain": "", "filter": "f", "resample": "r", "filter+resample": "fr"}  # recipe -> variant tag
# Where a pool's images come from -> variant prefix. "pool": the GAN, n images per labelled map; "layouts": the GAN on
# n new label maps per labelled map (`dpsims-aug layouts`), one image each; "oracle": the embedded renderer, n new
# appearances of each labelled layout (a perfect appearance synthesizer); "oracle_new": the renderer, n new scenes
# per labelled map (a perfect layout + image synthesizer).
SOURCES = {"pool": "pool", "layouts": "layouts", "oracle": "oracle", "oracle_new": "oraclenew"}
THING_IDS = (2, 7, 8, 9)  # embedded raw ids of cloud, tree, rock, building: what `layouts` pastes in the study


TWO_STAGE = "2s"  # variant tag: pretrain on the mix, then fine-tune on the real images (equal total iterations)
TWO_STAGE_PRETRAIN = 0.75  # share of the iterations in stage 1 (the shipped *_pretrain / *_finetune configs)
TWO_STAGE_LR = 0.2  # stage 2's learning rate relative to the shipped one


def pool_variant(n: int, share: float, recipe: str = "plain", source: str = "pool") -> str:
    """Variant name of a pool run: ``<source>_n<n>``, then ``_f`` / ``_r`` / ``_fr`` for a filtered / resampled
    pool, then ``_s<share>`` unless the synthetic share is the default 0.5. A ``_2s`` part (anywhere after the
    pool size) makes it the two-stage schedule, the share then being stage 1's."""
    tag = RECIPES[recipe]
    return f"{SOURCES[source]}_n{n}" + (f"_{tag}" if tag else "") + ("" if share == 0.5 else f"_s{share:g}")


def parse_pool_variant(name: str) -> tuple[int, float, str, str]:
    """Inverse of :func:`pool_variant`: ``(n, share, recipe, source)``."""
    prefix, _, rest = name.partition("_n")
    source = {v: k for k, v in SOURCES.items()}[prefix]
    n, *parts = rest.split("_")
    share, recipe = 0.5, "plain"
    by_tag = {tag: r for r, tag in RECIPES.items()}
    for part in parts:
        if part == TWO_STAGE:
            continue
        if part.startswith("s"):
            share = float(part[1:])
        else:
            recipe = by_tag[part]
    return int(n), share, recipe, source


def is_two_stage(name: str) -> bool:
    """Whether the variant ``name`` is a two-stage schedule (pretrain on the mix, fine-tune on real)."""
    return TWO_STAGE in name.split("_")[2:]


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


def stage_filter(args: argparse.Namespace, pool: Path, recipe: str, real_run: Path, seed: int,
                 train_root: Path) -> tuple[Path, dict]:
    """``dpsims-aug filter`` on a pool with the real-only segmenter of the same seed (FreeMask: the filter model
    is trained on the real images); returns the filtered pool's folder."""
    out = pool.with_name(f"{pool.name}_{RECIPES[recipe]}_m{args.filter_margin:g}_seed{seed}")
    done = stage_done(out)
    if done is not None:
        return out, dict(done, cached=True)
    from dpsims_aug.pool.filter import filter_pool

    checkpoint = Path((real_run / "last_checkpoint").read_text().strip())
    summary = filter_pool(pool, train_root, real_run / "config.py", checkpoint, out,
                          dataset_format=dataset_format(args), split="train",
                          margin=args.filter_margin if "f" in RECIPES[recipe] else None,
                          resample="r" in RECIPES[recipe], device=args.device, progress=False,
                          log=lambda m: log(f"[{out.name}] {m}"))
    record = dict(recipe=recipe, seed=seed, margin=args.filter_margin, images=summary.images_selected,
                  images_pool=summary.images_pool, kept_fraction=round(summary.kept_fraction, 4),
                  seconds=round(summary.seconds, 1))
    mark_done(out, record)
    return out, dict(record, cached=False)


def seg_config_paths(args: argparse.Namespace) -> dict[str, Path]:
    """The shipped mmseg configs of the three training sets (real / pool / online)."""
    if args.dataset == "embedded":
        return {v: REPO / "augment" / "embedded" / f"fastscnn_embedded_{v}.py" for v in ("real", "pool", "online")}
    folder = REPO / "augment" / GPU_DATASETS[args.dataset][0]
    paths = {}
    for v in ("real", "pool", "online"):
        found = sorted(folder.glob(f"{args.seg_model}_*_{v}.py"))
        if len(found) != 1:
            raise SystemExit(f"error: expected one {args.seg_model}_*_{v}.py in {folder}, found {len(found)}")
        paths[v] = found[0]
    return paths


def _pipelines(node: Any) -> Iterator[list]:
    """Every ``pipeline`` list inside a (nested) dataset config."""
    if isinstance(node, dict):
        if isinstance(node.get("pipeline"), list):
            yield node["pipeline"]
        for value in node.values():
            yield from _pipelines(value)
    elif isinstance(node, list):
        for value in node:
            yield from _pipelines(value)


def build_seg_config(args: argparse.Namespace, spec: dict, train_root: Path, val_root: Path,
                     stage: str | None = None):
    """The mmengine Config of one segmenter run: a shipped augment/ config plus the study's overrides.

    Two-stage variants have two: ``stage="pretrain"`` (the mix, the first :data:`TWO_STAGE_PRETRAIN` of the
    iterations, in the run folder) and ``stage="finetune"`` (the real images, the rest of the iterations at
    :data:`TWO_STAGE_LR` x the learning rate, from stage 1's last checkpoint, in ``<run>/finetune``)."""
    from mmengine.config import Config

    from dpsims_aug.mm.runner import rescale_schedule

    finetune = stage == "finetune"
    cfg = Config.fromfile(spec["real_config"] if finetune else spec["config"])
    seed = spec["seed"]
    iters = args.seg_iters
    work_dir = Path(spec["run_dir"])
    if stage is not None:
        pretrain_iters = round(TWO_STAGE_PRETRAIN * args.seg_iters)
        iters = args.seg_iters - pretrain_iters if finetune else pretrain_iters
    if finetune:
        work_dir = work_dir / "finetune"
        cfg.load_from = str(Path(spec["run_dir"]) / f"iter_{pretrain_iters}.pth")
        cfg.optim_wrapper.optimizer.lr *= TWO_STAGE_LR
    train = cfg.train_dataloader.dataset
    if spec["kind"] == "pool" and not finetune:  # SyntheticMixDataset(real, pool) at the run's synthetic share
        train.synthetic_share = spec["share"]
        train.real.data_root, train.synthetic.data_root = str(train_root), spec["pool"]
        if spec["recipe"] != "plain":  # a filtered pool: the source pool's images, its annotations and sample list
            train.synthetic.update(ann_file="samples.txt", data_prefix=dict(
                img_path=str(Path(spec["source_pool"]) / "images"), seg_map_path="annotations"))
    else:
        train.data_root = str(train_root)
    if spec["kind"] == "online":
        steps = [s for p in _pipelines(train) for s in p if s.get("type") == "DPSIMSAugment"]
        if not steps:
            raise SystemExit(f"error: {spec['config']} has no DPSIMSAugment step")
        for step in steps:
            step.update(checkpoint=spec["checkpoint"], prob=args.online_prob, seed=seed)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(val_root)
    if args.dataset == "embedded":  # 64x64 images decode in microseconds: no worker processes on 2 cores
        for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
            loader.update(num_workers=0, persistent_workers=False)
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=seed)
    # Same schedule for every variant; no validation while training, one explicit val at the end.
    rescale_schedule(cfg, iters)  # the shipped schedule (warmup, decay), rescaled to this run's length
    cfg.train_cfg.update(val_interval=iters, val_begin=iters + 1)
    cfg.default_hooks.checkpoint.update(interval=max(100, min(iters // 4, 5000)), max_keep_ckpts=1, save_last=True)
    cfg.default_hooks.logger.update(interval=min(50, iters))
    if (work_dir / "last_checkpoint").is_file():
        cfg.resume, cfg.load_from = True, None
    return cfg


def child_main(run_dir: Path) -> int:
    """One segmenter run (a subprocess): train, evaluate on the held-out images, write ``result.json``."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    spec = json.loads((run_dir / "spec.json").read_text())
    cfg = Config.fromfile(str(run_dir / "config.py"))
    resumed = bool(cfg.get("resume"))
    started = time.perf_counter()
    pretrain_iters = 0
    if (run_dir / "config_finetune.py").is_file():  # two-stage: pretrain on the mix, then fine-tune on real
        pretrain_iters = cfg.train_cfg.max_iters
        finetune = Config.fromfile(str(run_dir / "config_finetune.py"))
        # Stage 1 is done once its last checkpoint exists or stage 2 resumes (build_seg_config set resume then).
        if not finetune.get("resume") and not Path(finetune.load_from).is_file():
            Runner.from_cfg(cfg).train()
        cfg = finetune
    runner = Runner.from_cfg(cfg)
    runner.train()
    trained = time.perf_counter()
    times = runner.message_hub.get_scalar("train/time").data[0] if "train/time" in runner.message_hub.log_scalars \
        else []
    metrics = runner.val()
    other_domains = {domain: _miou_on(cfg, root) for domain, root in spec.get("eval_domains", {}).items()}
    result = dict(
        spec, mIoU=float(metrics["mIoU"]), mIoU_on_domain=other_domains, aAcc=float(metrics["aAcc"]),
        mAcc=float(metrics.get("mAcc", "nan")),
        iterations=int(runner.iter) + pretrain_iters, resumed=resumed, train_seconds=round(trained - started, 1),
        eval_seconds=round(time.perf_counter() - trained, 1),
        s_per_iter_median=round(float(statistics.median(times)), 4) if len(times) else None,
        torch_threads=torch.get_num_threads(),
    )
    write_json(run_dir / "result.json", result)
    return 0


def _miou_on(cfg, val_root: str) -> float:
    """mIoU (%) of the run's final checkpoint on the held-out images at ``val_root`` (another domain)."""
    from mmengine.runner import Runner

    other = cfg.copy()
    for loader in (other.val_dataloader, other.test_dataloader):
        loader.dataset.data_root = val_root
    other.load_from = (Path(cfg.work_dir) / "last_checkpoint").read_text().strip()
    other.resume = False
    other.experiment_name = f"eval_{Path(val_root).name}_{time.time_ns()}"  # a fresh mmengine instance name
    return float(Runner.from_cfg(other).val()["mIoU"])


def stage_seg(args: argparse.Namespace, specs: list[dict], train_root: Path, val_root: Path) -> list[dict]:
    """Run every segmenter that has no ``result.json`` yet, ``--jobs`` subprocesses at a time."""
    todo = []
    for spec in specs:
        run_dir = Path(spec["run_dir"])
        if (run_dir / "result.json").is_file():
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        if is_two_stage(spec["variant"]):
            build_seg_config(args, spec, train_root, val_root, "pretrain").dump(str(run_dir / "config.py"))
            build_seg_config(args, spec, train_root, val_root, "finetune").dump(str(run_dir / "config_finetune.py"))
        else:
            build_seg_config(args, spec, train_root, val_root).dump(str(run_dir / "config.py"))
        (run_dir / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")
        todo.append(spec)
    log(f"[seg] {len(specs) - len(todo)} of {len(specs)} runs done already; {len(todo)} to run, {args.jobs} at a time")
    threads = max(1, args.threads // args.jobs)
    running: dict[int, tuple[subprocess.Popen, dict, float]] = {}  # slot -> (process, spec, start)
    failed = []
    while todo or running:
        for slot in range(args.jobs):
            if slot in running or not todo:
                continue
            spec = todo.pop(0)
            run_dir = Path(spec["run_dir"])
            command = [sys.executable, str(Path(__file__).resolve()), "--child", str(run_dir)]
            with open(run_dir / "run.log", "ab") as out:
                proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                        env=thread_env(threads, slot if args.device == "cuda" else None))
            running[slot] = (proc, spec, time.perf_counter())
            log(f"[seg] start {spec['variant']} seed {spec['seed']} (slot {slot}, {threads} thread(s))")
        time.sleep(0.5)
        for slot, (proc, spec, start) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[slot]
            run_dir = Path(spec["run_dir"])
            if proc.returncode != 0 or not (run_dir / "result.json").is_file():
                failed.append(spec)
                tail = (run_dir / "run.log").read_text(errors="replace").splitlines()[-15:]
                log("\n".join([f"[seg] FAILED {spec['variant']} seed {spec['seed']} (exit {proc.returncode}):",
                               *tail]))
                continue
            res = json.loads((run_dir / "result.json").read_text())
            log(f"[seg] done {spec['variant']} seed {spec['seed']}: mIoU {res['mIoU']:.2f} "
                f"({time.perf_counter() - start:.0f} s, {res['s_per_iter_median']} s/iter)")
    if failed:
        raise SystemExit(f"error: {len(failed)} segmenter run(s) failed; see run.log in their folders")
    return [json.loads((Path(s["run_dir"]) / "result.json").read_text()) for s in specs]


# ------------------------------------------------------------------------------------------------ stage 5


def summarize(runs: list[dict], variants: list[str]) -> dict[str, dict]:
    """Mean +- std of mIoU (and aAcc) per variant, and the difference to real only."""
    rows = {}
    for v in variants:
        rs = [r for r in runs if r["variant"] == v]
        m, s = mean_std([r["mIoU"] for r in rs])
        rows[v] = dict(mIoU_mean=round(m, 2), mIoU_std=round(s, 2), aAcc_mean=round(mean_std(
            [r["aAcc"] for r in rs])[0], 2), seeds=len(rs), mIoU_per_seed=[round(r["mIoU"], 2) for r in rs])
        for domain in sorted({d for r in rs for d in r.get("mIoU_on_domain", {})}):
            m, s = mean_std([r["mIoU_on_domain"][domain] for r in rs if domain in r.get("mIoU_on_domain", {})])
            rows[v].setdefault("mIoU_on_domain", {})[domain] = dict(mean=round(m, 2), std=round(s, 2))
    base = rows["real"]["mIoU_mean"]
    for row in rows.values():
        row["gain_vs_real"] = round(row["mIoU_mean"] - base, 2)
    # Calibration by the oracles (embedded only): a recipe's gain as a fraction of what a perfect appearance
    # synthesizer, and a perfect layout + image synthesizer, gain in the same protocol (same n and share). The
    # oracles themselves are the yardsticks, not recipes, so they get no fraction.
    for v, row in rows.items():
        if v in ("real", "online"):
            continue
        n, share, _, source = parse_pool_variant(v)
        if source in ("oracle", "oracle_new"):
            continue
        for key, oracle_source in (("fraction_of_oracle_gain", "oracle"),
                                   ("fraction_of_new_scene_oracle_gain", "oracle_new")):
            oracle = rows.get(pool_variant(n, share, "plain", oracle_source))
            if oracle is not None and oracle["gain_vs_real"] > 0:
                row[key] = round(row["gain_vs_real"] / oracle["gain_vs_real"], 2)
    return rows


def plot(rows: dict[str, dict], ns: list[int], title: str, path: Path) -> None:
    """mIoU (mean +- std over seeds, seeds as dots) vs images per label map, one line per pool source, recipe and
    share; online at its own position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=120)
    xs = [0, *ns]
    series: dict[tuple[str, str, float], dict[int, str]] = {}
    for v in rows:
        if v not in ("real", "online"):
            n, share, recipe, source = parse_pool_variant(v)
            series.setdefault((source, recipe, share), {})[n] = v
    for i, ((source, recipe, share), by_n) in enumerate(series.items()):
        points = [(0, "real"), *sorted(by_n.items())]
        colour = f"C{i if i < 3 else i + 1}"  # C3 is the online marker's
        ax.errorbar([x for x, _ in points], [rows[k]["mIoU_mean"] for _, k in points],
                    yerr=[rows[k]["mIoU_std"] for _, k in points], marker="o", capsize=4, color=colour,
                    label=f"{source}{'' if recipe == 'plain' else ' ' + recipe}, share {share:g}")
        for x, k in points:
            ax.scatter([x] * len(rows[k]["mIoU_per_seed"]), rows[k]["mIoU_per_seed"], s=10, color=colour, alpha=0.4)
    ticks, labels = list(xs), [str(x) for x in xs]
    if "online" in rows:
        x = max(xs) + max(1, max(xs) // 2)
        ax.errorbar([x], [rows["online"]["mIoU_mean"]], yerr=[rows["online"]["mIoU_std"]], marker="s", color="C3",
                    capsize=4, linestyle="none", label="real + online DPSIMSAugment (p=0.5)")
        ax.scatter([x] * len(rows["online"]["mIoU_per_seed"]), rows["online"]["mIoU_per_seed"], s=10, color="C3",
                   alpha=0.4)
        ticks.append(x)
        labels.append("online")
    ax.axhline(rows["real"]["mIoU_mean"], color="gray", linestyle=":", linewidth=1)
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("synthetic images (or new layouts) per labelled label map (n); 0 = real only")
    ax.set_ylabel("mIoU on held-out real images (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="GAN 250 iters, segmenters 500 iters, 1 seed (GPU datasets: 1 seed); explicit flags win")
    parser.add_argument("--dataset", default="embedded", choices=["embedded", *GPU_DATASETS],
                        help="embedded (CPU, written here) or a GPU dataset at --data-root with the shipped configs")
    parser.add_argument("--data-root", help="dataset root for --dataset ade20k|coco_stuff|cityscapes")
    parser.add_argument("--seg-model", default="segformer_mit-b0",
                        help="GPU datasets: augment/<dataset>/<seg-model>_*_{real,pool,online}.py")
    parser.add_argument("--labelled", type=int, help="labelled training images (default: 16; GPU datasets: 0 = all)")
    parser.add_argument("--val", type=int, default=200, help="embedded: held-out validation images (default: 200)")
    parser.add_argument("--size", type=int, default=64, help="embedded: image size (default: 64)")
    parser.add_argument("--domain", default=SOURCE_DOMAIN,
                        help="embedded: the renderer's domain of the labelled and held-out images (default: source, "
                        "the bundled generator's; targets: see dpsims_aug.data.scenes.DOMAINS)")
    parser.add_argument("--eval-domains", nargs="+", default=[], metavar="DOMAIN",
                        help="embedded: also test every segmenter on the held-out images of these domains")
    parser.add_argument("--gan-iters", type=int,
                        help="GAN iterations (default: 2000; quick: 250; GPU datasets: the config's)")
    parser.add_argument("--gan-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra train_gan --cfg-options for the GAN, e.g. model.d_augment.p=1.0")
    parser.add_argument("--gan-gpus", type=int, default=1, help="GPUs for the GAN (torchrun when > 1)")
    parser.add_argument("--gan-checkpoint", type=Path,
                        help="use this generator (e.g. the bundled one) instead of training one on the labelled images")
    parser.add_argument("--seg-iters", type=int,
                        help="iterations of every segmenter run (default: 3000; quick: 500; GPU datasets: the "
                        "config's); the shipped LR schedule is rescaled to it")
    parser.add_argument("--seeds", type=int, help="seeds per variant (default: 3; quick: 1)")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4], help="pool sizes per label map (default: 1 4)")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.5],
                        help="synthetic shares of the pool variants (default: 0.5)")
    parser.add_argument("--variants", nargs="+",
                        help="exactly these variants (e.g. pool_n4 pool_n4_f_s0.25 oracle_n4 layouts_n4 online), "
                        "instead of the product of --sources/--recipes/--shares/--n; real is always included")
    parser.add_argument("--sources", nargs="+", default=["pool"], choices=list(SOURCES),
                        help="where pool images come from: pool (the GAN), layouts (the GAN on new label maps), "
                        "oracle (renderer, new appearances of the labelled layouts), oracle_new (renderer, new "
                        "scenes); default: pool")
    parser.add_argument("--recipes", nargs="+", default=["plain"], choices=list(RECIPES),
                        help="pool recipes: plain, filter (FreeMask pixel filter), resample (hardness-aware), "
                        "filter+resample (default: plain)")
    parser.add_argument("--filter-margin", type=float, default=1.25, help="FreeMask loss margin (default: 1.25)")
    parser.add_argument("--no-online", action="store_true", help="skip the online DPSIMSAugment variant")
    parser.add_argument("--online-prob", type=float, default=0.5, help="DPSIMSAugment prob (default: 0.5)")
    parser.add_argument("--threads", type=int, help="CPU thread budget (default: $OMP_NUM_THREADS or all cores)")
    parser.add_argument("--jobs", type=int, help="segmenter runs at a time (default: --threads on CPU, 1 on GPU)")
    parser.add_argument("--device", help="cpu or cuda (default: cpu for embedded, cuda otherwise)")
    parser.add_argument("--work-dir", type=Path, help="stage folders (default: work_dirs/seg_gain)")
    add_output_args(parser, "seg_gain", "--results", "results path without extension (.json and .png are written)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: one segmenter run
    args = parser.parse_args(argv)
    if args.child:
        return args
    gpu = args.dataset != "embedded"
    if gpu and not args.data_root:
        parser.error(f"--dataset {args.dataset} needs --data-root")
    defaults = dict(gan_iters=(250, 2000), seg_iters=(500, 3000), seeds=(1, 3))
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None and not (gpu and name != "seeds"):
            setattr(args, name, quick if args.quick else full)
    if gpu:  # GPU datasets: the shipped schedules unless given (there --quick means 1 seed only)
        from mmengine.config import Config

        if args.gan_iters is None:
            gan_cfg = gan_config_path(args)
            args.gan_iters = Config.fromfile(str(gan_cfg), import_custom_modules=False).train_cfg.max_iters
        if args.seg_iters is None:
            real_cfg = seg_config_paths(args)["real"]
            args.seg_iters = Config.fromfile(str(real_cfg), import_custom_modules=False).train_cfg.max_iters
    if args.labelled is None:
        args.labelled = 0 if gpu else 16
    if not gpu and args.labelled < 1:
        parser.error("--labelled must be >= 1 on the embedded dataset")
    if gpu and (args.domain != SOURCE_DOMAIN or args.eval_domains):
        parser.error("--domain and --eval-domains need the embedded dataset (its renderer)")
    from dpsims_aug.data.scenes import DOMAINS

    for domain in [args.domain, *args.eval_domains]:
        if domain not in DOMAINS:
            parser.error(f"unknown domain {domain!r}; choose from {sorted(DOMAINS)}")
    args.threads = args.threads or int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    args.device = args.device or ("cuda" if gpu else "cpu")
    if args.jobs is None:
        import torch

        args.jobs = args.threads if args.device == "cpu" else max(1, torch.cuda.device_count())
    args.n = sorted(set(args.n))
    suffix = "" if not gpu else f"_{args.dataset}"
    args.work_dir = (args.work_dir or REPO / "work_dirs" / f"seg_gain{suffix}").resolve()
    args.results = output_path(args, f"seg_gain{suffix}{'_quick' if args.quick else ''}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.dataset == "embedded" and args.val < 200:
        log(f"warning: --val {args.val} < 200 held-out images: a smoke test, not a measurement")
    import torch

    torch.set_num_threads(args.threads)
    load_start, started = loadavg(), time.perf_counter()
    tag = f"L{args.labelled or 'all'}" + (f"_V{args.val}_S{args.size}" if args.dataset == "embedded" else "")
    tag += "" if args.domain == SOURCE_DOMAIN else f"_{args.domain}"
    root = args.work_dir / tag
    stages: dict[str, dict] = {}

    def timed(name: str, record: dict) -> None:
        stages[name] = record
        state = "cached" if record.get("cached") else f"{record.get('seconds', 0):.1f} s"
        log(f"[stage] {name}: {state}")

    t = time.perf_counter()
    train_root, val_root, counts = stage_data(args, root)
    timed("data", dict(counts, seconds=round(time.perf_counter() - t, 1), train_root=str(train_root),
                       val_root=str(val_root)))
    if args.variants:  # an explicit list instead of the product of --sources, --recipes, --shares and --n
        variants = ["real", *[v for v in args.variants if v != "real"]]
    else:
        variants = ["real", *[pool_variant(n, share, recipe, source) for source in args.sources
                              for recipe in (args.recipes if source in ("pool", "layouts") else ["plain"])
                              for share in args.shares for n in args.n], *([] if args.no_online else ["online"])]
    parsed = [parse_pool_variant(v) for v in variants if v not in ("real", "online")]
    needed = sorted({(source, n) for n, _, _, source in parsed})  # (source, n) of every pool the variants read
    args.uses_generator = "online" in variants or any(source in ("pool", "layouts") for source, _ in needed)
    ckpt = None  # real images and the oracles need no generator
    if args.uses_generator:
        ckpt, record = stage_gan(args, root, train_root, val_root)
        timed("gan", record)
    eval_roots = stage_eval_domains(args)
    pools: dict[tuple[str, int], Path] = {}
    if args.dataset != "embedded" and {"oracle", "oracle_new"} & {source for source, _ in needed}:
        raise SystemExit("error: the oracle sources need the embedded dataset (its renderer)")
    for source, n in needed:
        if source == "pool":
            pools[source, n], record = stage_pool(args, ckpt.parent, train_root, ckpt, n)
        elif source == "layouts":
            pools[source, n], record = stage_layouts(args, ckpt.parent, train_root, ckpt, n)
        else:
            pools[source, n], record = stage_oracle(args, root, n, new_scenes=source == "oracle_new")
        timed(pools[source, n].name, record)

    configs = seg_config_paths(args)
    seg_root = root / f"seg_i{args.seg_iters}"
    gan_tag = ckpt.parent.name if ckpt is not None else None
    specs = []
    for seed in range(args.seeds):  # seed-major: drift of a shared machine hits every variant alike
        for v in variants:
            kind = v if v in ("real", "online") else "pool"
            spec = dict(variant=v, kind=kind, seed=seed, n=0, config=str(configs[kind]),
                        real_config=str(configs["real"]), eval_domains=eval_roots)
            sub = v
            if kind == "pool":
                n, share, recipe, source = parse_pool_variant(v)
                folder = str(pools[source, n])
                spec.update(n=n, share=share, recipe=recipe, source=source, pool=folder, source_pool=folder,
                            checkpoint=str(ckpt) if source in ("pool", "layouts") else None)
                sub = v + (f"_{gan_tag}" if source in ("pool", "layouts") else "")
                sub += f"_m{args.filter_margin:g}" if "f" in RECIPES[recipe] else ""
            elif kind == "online":
                spec.update(checkpoint=str(ckpt), prob=args.online_prob)
                sub = f"online_p{args.online_prob}_{gan_tag}"
            spec["run_dir"] = str(seg_root / sub / f"seed{seed}")
            specs.append(spec)
    t = time.perf_counter()
    # Filtered / resampled pools need the real-only segmenter of their seed: those runs go second.
    first = [s for s in specs if s.get("recipe", "plain") == "plain"]
    runs = stage_seg(args, first, train_root, val_root)
    second = [s for s in specs if s.get("recipe", "plain") != "plain"]
    for spec in second:
        real_run = next(Path(s["run_dir"]) for s in first if s["variant"] == "real" and s["seed"] == spec["seed"])
        out, record = stage_filter(args, Path(spec["source_pool"]), spec["recipe"], real_run, spec["seed"],
                                   train_root)
        spec["pool"] = str(out)
        timed(f"{out.name}", record)
    runs += stage_seg(args, second, train_root, val_root) if second else []
    timed("seg", dict(runs=len(runs), seconds=round(time.perf_counter() - t, 1)))

    rows = summarize(runs, variants)
    title = (f"{study_regime(args)}\n{args.dataset}{'' if args.domain == SOURCE_DOMAIN else ' ' + args.domain}: "
             f"{args.labelled or 'all'} labelled images, "
             f"{'given generator' if args.gan_checkpoint else f'GAN {args.gan_iters} it'}, "
             f"segmenter {args.seg_iters} it, {args.seeds} seed(s), {stages['data']['val']} held-out")
    png, out_json = results_paths(args.results)
    plot(rows, sorted({n for _, n in needed}) or args.n, title, png)
    machine = machine_info(threads=args.threads, jobs=args.jobs, threads_per_job=max(1, args.threads // args.jobs),
                           device=args.device, loadavg_start=load_start,
                           note="shared machine: other jobs may run (see the load averages)")
    if args.device == "cuda" and torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    env_prefix = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    result = dict(
        benchmark="segmentation gain: real only vs real + DP-SIMS synthetic (offline pool, online transform)",
        command=env_prefix + shlex.join(["python", "benchmarks/bench_seg_gain.py", *(argv or sys.argv[1:])]),
        settings=dict(regime=study_regime(args), dataset=args.dataset, domain=args.domain,
                      eval_domains=args.eval_domains, labelled=args.labelled or "all", held_out=stages["data"]["val"],
                      size=args.size if args.dataset == "embedded" else None, gan_iters=args.gan_iters,
                      seg_iters=args.seg_iters, seeds=args.seeds, n=args.n, online_prob=args.online_prob,
                      shares=args.shares, recipes=args.recipes, sources=args.sources,
                      filter_margin=args.filter_margin,
                      pool_mix="SyntheticMixDataset(real, pool, synthetic_share)",
                      seg_configs={k: str(p.relative_to(REPO)) for k, p in configs.items()},
                      gan_checkpoint=str(ckpt) if ckpt is not None else None,
                      metric="mmseg IoUMetric mIoU (%) on the held-out real images"),
        summary=rows, runs=runs, stages=stages, machine=machine,
        seconds=round(time.perf_counter() - started, 1),
    )
    write_results(out_json, result)
    print(f"\nwritten {out_json} and {png}")
    print("stages: " + ", ".join(f"{k} {'cached' if v.get('cached') else str(v.get('seconds')) + ' s'}"
                                  for k, v in stages.items()))
    print(f"{'variant':<18} {'mIoU mean':>10} {'std':>6} {'gain':>7} {'of oracle':>10} {'of new-scene':>13} "
          f"{'seeds':>6}")
    for v, row in rows.items():
        fractions = [row.get(k) for k in ("fraction_of_oracle_gain", "fraction_of_new_scene_oracle_gain")]
        cells = ["" if f is None else f"{f:.2f}" for f in fractions]
        print(f"{v:<18} {row['mIoU_mean']:>10.2f} {row['mIoU_std']:>6.2f} {row['gain_vs_real']:>+7.2f} "
              f"{cells[0]:>10} {cells[1]:>13} {row['seeds']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
