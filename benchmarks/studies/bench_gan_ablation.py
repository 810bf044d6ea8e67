"""GAN ablation at CPU scale: which parts of the DP-SIMS recipe make images that a segmenter can learn from.

Every variant trains the ``embedded_small`` config on the same data, for the same iterations and seeds, and changes
one thing (or a ``+``-joined combination, e.g. ``div0+diffaug``). Its final EMA generator is then measured on the
held-out label maps with what augmentation needs:

* KID (unbiased at small sample counts) and its real-vs-real floor, FID at the floor's sample count and the floor;
* colour statistics against the real images of the same layouts (per-class colour distance, contrast ratio,
  clipped near-white / near-black pixel rates);
* TSTR: Fast-SCNN trained only on generated images of training label maps, tested on held-out real images, as a
  fraction of the same segmenter trained on the real images of those maps;
* a sample grid (label | real | 3 seeds).

Stages (each in its own folder under ``--work-dir``, marked done by ``stage.json``/``result.json``, so a killed
study resumes where it stopped; GAN runs resume from their last checkpoint):

1. ``data``: the embedded dataset (``--train`` training scenes, ``--val`` held-out, ``--size`` pixels);
2. ``tstr_real``: the TSTR reference (the segmenter on real images), once;
3. ``gan/<variant>/seed<s>``: ``python -m train_gan.train`` with the variant's ``--cfg-options``;
4. ``eval/<variant>/seed<s>``: export (EMA BatchNorm statistics re-collected over training label maps unless the
   variant says otherwise), metrics, TSTR, grid.

Tasks run as subprocesses (``benchmarks/jobs.py``), ``--jobs`` at a time with one OpenMP thread each (two 1-thread
jobs on 2 cores).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/bench_gan_ablation.py                        # all variants
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/bench_gan_ablation.py --variants baseline div0 --seeds 2
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/bench_gan_ablation.py --quick                # smoke: minutes

Results: ``work_dirs/benchmarks/gan_ablation.json`` (every run and the summary; ``--quick``: ``gan_ablation_quick.*``),
``gan_ablation.png`` (every variant on the same held-out layouts), ``gan_ablation/<variant>.png`` (grids), the table
printed last. ``--update-results`` writes them to the committed ``benchmarks/results/`` instead, ``--results STEM``
anywhere.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import (  # noqa: E402  (benchmarks/common.py)
    REPO,
    add_output_args,
    loadavg,
    machine_info,
    output_path,
    repo_relative,
    results_paths,
    write_json,
    write_results,
)
from jobs import Job, run_jobs  # noqa: E402  (benchmarks/jobs.py)

GAN_CONFIG = REPO / "train_gan" / "configs" / "embedded_small.py"
SEG_CONFIG = REPO / "augment" / "embedded" / "fastscnn_embedded_real.py"
DONE = "stage.json"

# One change per variant, as --cfg-options of train_gan (``recal`` = re-collect the EMA's BatchNorm statistics).
# Every variant starts from the recipe before this study (embedded_small with MSGAN's mode-seeking weight 1.0 and
# PatchNCE on 64 patches, no colour matching, set explicitly so the variants stay fixed when the shipped config
# changes); the shipped config is ``div0.1+nce0+colour10``, the study's winners.
BASE_OPTIONS = ["model.loss.diversity=1.0", "model.loss.patch_nce=1.0", "model.loss.nce_patches=64",
                "model.loss.colour_match=0.0"]
VARIANTS: dict[str, dict] = {
    "baseline": dict(options=[], about="the recipe before this study (mode-seeking weight 1.0)"),
    "no_bn_recal": dict(options=[], recal=False, about="baseline GAN, EMA exported with the live BN statistics"),
    "div0": dict(options=["model.loss.diversity=0"], about="no mode-seeking term"),
    "div0.1": dict(options=["model.loss.diversity=0.1"], about="mode-seeking weight 0.1"),
    # 0.28 = the embedded data's own diversity: two renderings of one layout differ by 0.16 (mean |a-b| in [0, 1])
    # = 0.32 in [-1, 1], over a noise distance of 1.13.
    "div_cap": dict(options=["model.loss.diversity_max_ratio=0.28"],
                    about="mode seeking capped at the real data's own diversity (ratio 0.28)"),
    "diffaug_tc": dict(options=["model.d_augment.p=1.0", "model.d_augment.ops=['translation','cutout']"],
                       about="DiffAugment translation+cutout (no colour), p=1"),
    "nce0": dict(options=["model.loss.patch_nce=0"], about="no PatchNCE"),
    "focal0": dict(options=["model.loss.focal_gamma=0"], about="plain class-balanced CE (OASIS)"),
    "labelmix0": dict(options=["model.loss.labelmix=0"], about="no LabelMix"),
    "no_feat_cond": dict(options=["model.discriminator.feature_conditioning=none"],
                         about="raw backbone features into D's decoder"),
    "scratch_d": dict(options=["model.discriminator.weights=None", "model.discriminator.train_backbone=True"],
                      about="the same D, backbone trained from random init"),
    "diffaug": dict(options=["model.d_augment.p=1.0"], about="DiffAugment colour+translation+cutout, p=1"),
    "ada": dict(options=["model.d_augment.p=0.0", "model.d_augment.adaptive=True"],
                about="ADA-style adaptive p (target r_t 0.6)"),
    "colour": dict(options=["model.loss.colour_match=1.0"],
                   about="per-class colour-distribution matching to the batch's real images (weight 1)"),
    "colour10": dict(options=["model.loss.colour_match=10.0"],
                     about="per-class colour-distribution matching to the batch's real images (weight 10)"),
}
DEFAULT_VARIANTS = ["baseline", "no_bn_recal", "div0", "div0.1", "div_cap", "nce0", "focal0", "labelmix0",
                    "no_feat_cond", "scratch_d", "diffaug", "diffaug_tc", "ada"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def variant_spec(name: str) -> dict:
    """Options of a variant; ``a+b`` combines variants (their options in order, recal off if any part says so)."""
    parts = name.split("+")
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown:
        raise SystemExit(f"error: unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    options = [*BASE_OPTIONS, *(o for p in parts for o in VARIANTS[p]["options"])]
    recal = all(VARIANTS[p].get("recal", True) for p in parts)
    # Variants that only change the export (no_bn_recal) share the GAN run of the rest.
    gan = "+".join(p for p in parts if VARIANTS[p]["options"]) or "baseline"
    return dict(name=name, options=options, recal=recal, gan=gan,
                about=" + ".join(VARIANTS[p]["about"] for p in parts))


# ------------------------------------------------------------------------------------------------ tasks


def gan_command(args: argparse.Namespace, spec: dict, seed: int, gan_dir: Path, data: Path) -> list[str]:
    options = [f"train_dataloader.dataset.data_root={data}", f"model.seed={seed}", f"randomness.seed={seed}",
               f"custom_hooks.1.dataset.data_root={data}", *spec["options"]]
    command = [sys.executable, "-m", "train_gan.train", str(GAN_CONFIG), "--work-dir", str(gan_dir),
               "--max-iters", str(args.iters)]
    if (gan_dir / "last_checkpoint").is_file():
        command.append("--resume")
    return [*command, "--cfg-options", *options]


def child_tstr_real(args: argparse.Namespace) -> int:
    """The TSTR reference: the segmenter trained on the real images of the TSTR training maps."""
    from dpsims_aug.metrics.tstr import tstr_real_reference

    miou, _ = tstr_real_reference(args.work_dir / "data", SEG_CONFIG, args.work_dir / "tstr",
                                  max_train_maps=args.tstr_maps, iters=args.tstr_iters, seed=0)
    write_json(args.work_dir / "tstr" / DONE, dict(miou_real=miou))
    return 0


def training_label_maps(data: Path, count: int):
    """``count`` evenly spaced training label maps (contiguous ids): what the EMA statistics are re-collected on."""
    import numpy as np

    from dpsims_aug.data.readers import find_pairs
    from dpsims_aug.label_maps import load_label_map
    from dpsims_aug.labels import get_label_space

    pairs = find_pairs(data, split="train")
    space = get_label_space("embedded")
    idx = np.unique(np.linspace(0, len(pairs) - 1, min(count, len(pairs))).round().astype(int))
    return [load_label_map(pairs[i][1], space) for i in idx]


def child_eval(args: argparse.Namespace, eval_dir: Path) -> int:
    """Export, measure and draw one trained variant."""
    import numpy as np
    from PIL import Image

    from dpsims_aug.data.readers import find_pairs
    from dpsims_aug.label_maps import load_label_map
    from dpsims_aug.labels import get_label_space
    from dpsims_aug.metrics.evaluate import evaluate
    from dpsims_aug.metrics.tstr import train_on_synthetic_test_on_real
    from dpsims_aug.synthesis import Synthesizer
    from train_gan.export import export_training_checkpoint
    from train_gan.hooks import sample_grid

    spec = json.loads((eval_dir / "spec.json").read_text())
    data, gan_dir = args.work_dir / "data", Path(spec["gan_dir"])
    ckpt = eval_dir / "generator.safetensors"
    started = time.perf_counter()
    recal = training_label_maps(data, 128) if spec["recal"] else None
    export_training_checkpoint(gan_dir / f"iter_{args.iters}.pth", ckpt, recalibrate=recal)
    metrics = evaluate(ckpt, data, split="val", n_seeds=2, max_images=args.eval_maps, progress=False,
                       cache_dir=args.work_dir / "fid_cache")["metrics"]
    tstr = train_on_synthetic_test_on_real(ckpt, data, SEG_CONFIG, args.work_dir / "tstr",
                                           max_train_maps=args.tstr_maps, iters=args.tstr_iters, seed=0)
    # Grid: label | real | 3 seeds for the first held-out maps.
    space = get_label_space("embedded")
    pairs = find_pairs(data, split="val")[:8]
    labels = [load_label_map(lab, space) for _, lab in pairs]
    reals = np.stack([np.asarray(Image.open(img).convert("RGB")) for img, _ in pairs])
    synth = Synthesizer.from_checkpoint(ckpt)
    samples = [synth.synthesize(labels, [1000 * s + i for i in range(len(labels))]) for s in range(3)]
    grid = sample_grid(space.colorize(np.stack(labels)), reals, samples)
    Image.fromarray(grid).save(eval_dir / "grid.png")
    result = dict(spec, **{k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                           for k, v in {**metrics, **tstr}.items()},
                  eval_seconds=round(time.perf_counter() - started, 1))
    write_json(eval_dir / "result.json", result)
    return 0


def mark_gan_done(gan_dir: Path, iters: int) -> bool:
    """A GAN run is done when its final checkpoint exists (the trainer writes it atomically)."""
    if (gan_dir / f"iter_{iters}.pth").is_file():
        write_json(gan_dir / DONE, dict(iters=iters))
        return True
    return False


# ------------------------------------------------------------------------------------------------ report


KEYS = ["kid", "kid_floor", "fid_matched", "fid_floor", "colour_class_distance", "contrast_ratio",
        "clipped_white_ratio", "clipped_black_ratio", "diversity_pixel_l1", "tstr_miou_synthetic", "tstr_ratio"]


def summarize(runs: list[dict], variants: list[str]) -> dict[str, dict]:
    rows = {}
    for v in variants:
        rs = [r for r in runs if r["name"] == v]
        if not rs:
            continue
        row: dict = dict(seeds=len(rs), about=variant_spec(v)["about"])
        for key in KEYS:
            values = [r[key] for r in rs if r.get(key) is not None]
            if values:
                row[key] = round(statistics.fmean(values), 5)
                row[f"{key}_std"] = round(statistics.stdev(values), 5) if len(values) > 1 else 0.0
        rows[v] = row
    return rows


def print_table(rows: dict[str, dict]) -> None:
    head = (f"{'variant':<22} {'seeds':>5} {'KIDx1e3':>8} {'floor':>6} {'colour':>7} {'contrast':>8} "
            f"{'white x':>8} {'black x':>8} {'TSTR %':>7} {'TSTR/real':>9}")
    print(head)
    for v, r in rows.items():
        print(f"{v:<22} {r['seeds']:>5} {1000 * r.get('kid', float('nan')):>8.2f} "
              f"{1000 * r.get('kid_floor', float('nan')):>6.2f} {r.get('colour_class_distance', float('nan')):>7.1f} "
              f"{r.get('contrast_ratio', float('nan')):>8.3f} {r.get('clipped_white_ratio', float('nan')):>8.2f} "
              f"{r.get('clipped_black_ratio', float('nan')):>8.2f} {r.get('tstr_miou_synthetic', float('nan')):>7.2f} "
              f"{r.get('tstr_ratio', float('nan')):>9.3f}")


def comparison_figure(grids: dict[str, Path], path: Path, rows: int = 4, tile: int = 64, pad: int = 2) -> None:
    """One picture of the variants on the same held-out layouts: label | real | seed 0 of each variant.

    Tiles are cut out of each variant's ``grid.png`` (label | real | 3 seeds, as ``train_gan.hooks.sample_grid``
    draws it)."""
    from PIL import Image, ImageDraw

    names = list(grids)
    header = 12
    cols = 2 + len(names)
    sheet = Image.new("RGB", (pad + cols * (tile + pad), header + pad + rows * (tile + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    first = Image.open(grids[names[0]]).convert("RGB")

    def cut(img, r: int, c: int):
        x, y = pad + c * (tile + pad), pad + r * (tile + pad)
        return img.crop((x, y, x + tile, y + tile))

    for c, title in enumerate(["label", "real", *names]):
        draw.text((pad + c * (tile + pad), 0), title[:11], fill=(0, 0, 0))
    for r in range(rows):
        y = header + pad + r * (tile + pad)
        sheet.paste(cut(first, r, 0), (pad, y))
        sheet.paste(cut(first, r, 1), (pad + tile + pad, y))
        for i, name in enumerate(names):
            sheet.paste(cut(Image.open(grids[name]).convert("RGB"), r, 2), (pad + (2 + i) * (tile + pad), y))
    sheet.save(path)


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", help=f"variants (default: {' '.join(DEFAULT_VARIANTS)}); "
                        "'a+b' combines")
    parser.add_argument("--seeds", type=int, default=1, help="GAN seeds per variant (default 1)")
    parser.add_argument("--iters", type=int, help="GAN iterations (default 1500; quick 40)")
    parser.add_argument("--train", type=int, default=1000, help="training scenes (default 1000, the bundle's)")
    parser.add_argument("--val", type=int, default=200, help="held-out scenes (default 200)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--eval-maps", type=int, default=200, help="held-out maps measured (2 seeds each)")
    parser.add_argument("--tstr-maps", type=int, default=128, help="training maps of TSTR (1 image each)")
    parser.add_argument("--tstr-iters", type=int, help="TSTR segmenter iterations (default 1000; quick 30)")
    parser.add_argument("--jobs", type=int, default=2, help="tasks at a time, one thread each (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, 40 GAN iterations")
    parser.add_argument("--work-dir", type=Path, help="default work_dirs/gan_ablation (quick: ..._quick)")
    add_output_args(parser, "gan_ablation", "--results", "results path without extension")
    parser.add_argument("--child-eval", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-tstr-real", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.val, args.eval_maps, args.tstr_maps = 16, 8, 8, 8
    args.iters = args.iters or (40 if args.quick else 1500)
    args.tstr_iters = args.tstr_iters or (30 if args.quick else 1000)
    args.variants = args.variants or (["baseline", "no_bn_recal", "diffaug"] if args.quick else DEFAULT_VARIANTS)
    args.work_dir = (args.work_dir or REPO / "work_dirs" / ("gan_ablation_quick" if args.quick else "gan_ablation")
                     ).resolve() / f"T{args.train}_V{args.val}_S{args.size}"
    args.results = output_path(args, "gan_ablation_quick" if args.quick else "gan_ablation").resolve()
    return args


def child_argv(args: argparse.Namespace) -> list[str]:
    """The settings a child process needs, as command-line flags."""
    return [sys.executable, str(Path(__file__).resolve()), "--iters", str(args.iters), "--train", str(args.train),
            "--val", str(args.val), "--size", str(args.size), "--eval-maps", str(args.eval_maps), "--tstr-maps",
            str(args.tstr_maps), "--tstr-iters", str(args.tstr_iters), "--work-dir", str(args.work_dir.parent),
            *(["--quick"] if args.quick else [])]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_eval:
        return child_eval(args, args.child_eval)
    if args.child_tstr_real:
        return child_tstr_real(args)
    started, load_start = time.perf_counter(), loadavg()
    root, data = args.work_dir, args.work_dir / "data"
    if read_json(data / DONE) is None:
        from dpsims_aug.data.writers import write_dataset

        write_dataset(data, "ade20k", n_train=args.train, n_val=args.val, size=(args.size, args.size))
        write_json(data / DONE, dict(train=args.train, val=args.val, size=args.size))

    specs = [variant_spec(v) for v in args.variants]
    jobs = [Job(name="tstr_real", command=[*child_argv(args), "--child-tstr-real"], log=root / "tstr" / "run.log",
                done=root / "tstr" / DONE)]
    gans = {}
    for spec in specs:
        for seed in range(args.seeds):
            key = (spec["gan"], seed)
            gan_dir = root / "gan" / spec["gan"] / f"seed{seed}"
            if key not in gans:
                gans[key] = gan_dir
                gan_dir.mkdir(parents=True, exist_ok=True)
                mark_gan_done(gan_dir, args.iters)
                jobs.append(Job(name=f"gan {spec['gan']} seed{seed}", log=gan_dir / "train.log",
                                done=gan_dir / f"iter_{args.iters}.pth",
                                command=gan_command(args, variant_spec(spec["gan"]), seed, gan_dir, data)))
    # Trainings first (the long part), evaluations as soon as their GAN is done.
    for spec in specs:
        for seed in range(args.seeds):
            eval_dir = root / "eval" / spec["name"] / f"seed{seed}"
            eval_dir.mkdir(parents=True, exist_ok=True)
            write_json(eval_dir / "spec.json", dict(spec, seed=seed, gan_dir=str(gans[(spec["gan"], seed)])))
            jobs.append(Job(name=f"eval {spec['name']} seed{seed}", log=eval_dir / "run.log",
                            done=eval_dir / "result.json", command=[*child_argv(args), "--child-eval", str(eval_dir)],
                            after=("tstr_real", f"gan {spec['gan']} seed{seed}")))
    run_jobs(jobs, args.jobs, tag="tasks")

    runs = []
    grids = args.results.parent / args.results.name
    grids.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        for seed in range(args.seeds):
            eval_dir = root / "eval" / spec["name"] / f"seed{seed}"
            run = json.loads((eval_dir / "result.json").read_text())
            runs.append(run)
            if seed == 0:
                (grids / f"{spec['name']}.png").write_bytes((eval_dir / "grid.png").read_bytes())
    png, out_json = results_paths(args.results)
    comparison_figure({v: grids / f"{v}.png" for v in args.variants}, png)
    rows = summarize(runs, args.variants)
    tstr_real = read_json(root / "tstr" / DONE)["miou_real"]
    result = dict(
        benchmark="GAN ablation: KID (+floor), colour statistics, TSTR of each variant's EMA generator",
        command="OMP_NUM_THREADS=1 " + shlex.join(["python", "benchmarks/studies/bench_gan_ablation.py",
                                                   *(argv if argv is not None else sys.argv[1:])]),
        settings=dict(train=args.train, val=args.val, size=args.size, gan_iters=args.iters, seeds=args.seeds,
                      gan_config=str(GAN_CONFIG.relative_to(REPO)), eval_maps=args.eval_maps, eval_seeds=2,
                      tstr=dict(config=str(SEG_CONFIG.relative_to(REPO)), maps=args.tstr_maps,
                                iters=args.tstr_iters, images_per_map=1, miou_real=tstr_real),
                      ema_bn_recalibration="128 evenly spaced training label maps, batches of 8"),
        summary=rows, runs=runs,
        machine=machine_info(jobs=args.jobs, loadavg_start=load_start),
        seconds=round(time.perf_counter() - started, 1),
    )
    write_results(out_json, result)
    written = ", ".join(repo_relative(str(p)) for p in (out_json, png))
    print(f"\nwritten {written} and grids in {repo_relative(str(grids))}/")
    print(f"TSTR reference (segmenter on the real images of the same {args.tstr_maps} maps): {tstr_real:.2f} mIoU")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
