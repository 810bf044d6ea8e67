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

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/studies/bench_seg_gain.py           # full: ~45-55 min idle
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/studies/bench_seg_gain.py --quick   # ~5 min idle (1 seed, short runs)

While another job holds a core use ``OMP_NUM_THREADS=1`` (one thread, one segmenter at a time; full ~75 min).

GPU datasets (the shipped train_gan/configs/<dataset>.py and augment/<dataset>/<model>_*_{real,pool,online}.py;
the labelled subset is a folder of symlinks to the first ``--labelled`` training pairs, validation is the whole
val split; one GPU per segmenter run, ``--jobs`` runs side by side; ``--gan-gpus N`` trains the GAN with torchrun):

    .venv/bin/python benchmarks/studies/bench_seg_gain.py --dataset ade20k --data-root data/ade/ADEChallengeData2016 \\
        --labelled 1000 --gan-iters 50000 --gan-gpus 8 --seg-iters 40000 --jobs 8

Results: ``work_dirs/benchmarks/seg_gain.{json,png}`` (full), ``seg_gain_quick.*`` (``--quick``),
``seg_gain_<dataset>.*`` (GPU datasets); ``--update-results`` writes them to the committed ``benchmarks/results/``
instead, ``--results STEM`` anywhere.

This script is the command (its options and ``main``); the study lives in the package ``benchmarks/studies/seg_gain/``
(variants, stages, segmenter runs, report).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder: the seg_gain package
from common import REPO, add_output_args, loadavg, output_path  # noqa: E402  (benchmarks/common.py)
from jobs import log  # noqa: E402  (benchmarks/jobs.py)
from seg_gain.report import report  # noqa: E402
from seg_gain.seg import build_runs, child_main, run_segmenters, seg_config_paths  # noqa: E402
from seg_gain.stages import StageLog, stage_data, stage_eval_domains, stage_gan, stage_pools  # noqa: E402
from seg_gain.study import GPU_DATASETS, SOURCE_DOMAIN, gan_config_path, study_root  # noqa: E402
from seg_gain.variants import RECIPES, SOURCES, study_variants, variant_arg  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
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
    parser.add_argument("--variants", nargs="+", type=variant_arg,
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
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with the defaults that depend on the dataset and --quick resolved."""
    parser = build_parser()
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
    root, stages = study_root(args), StageLog()
    t = time.perf_counter()
    train_root, val_root, counts = stage_data(args, root)
    stages.add("data", dict(counts, seconds=round(time.perf_counter() - t, 1), train_root=str(train_root),
                            val_root=str(val_root)))
    variants = study_variants(args)
    args.uses_generator = any(v.uses_generator for v in variants)
    ckpt = None  # real images and the oracles need no generator
    if args.uses_generator:
        ckpt, record = stage_gan(args, root, train_root, val_root)
        stages.add("gan", record)
    eval_roots = stage_eval_domains(args)
    pools = stage_pools(args, root, train_root, ckpt, variants, stages)
    runs = build_runs(args, variants, root / f"seg_i{args.seg_iters}", pools, ckpt, eval_roots)
    results = run_segmenters(args, runs, train_root, val_root, stages)
    report(args, argv, variants, results, stages.records, ckpt, load_start, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
