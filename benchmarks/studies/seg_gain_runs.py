"""GAN-run report of the segmentation-gain study: one recipe's gain over several GAN training runs, not one.

Two GAN trainings of the same recipe on the same few labelled images give pools whose segmentation gains differ by
more than most recipe knobs do, so a recipe is judged by its gain pooled over GAN runs. This script reads the
segmenter runs that ``bench_seg_gain.py`` left in ``--work-dir`` (it measures nothing itself) and, for each
``--recipe LABEL=FOLDER[,FOLDER...]`` (one stage folder per GAN run: ``gan_i<iters>[_<hash>]``, ``given_<hash>``, or
``-`` for the renderer's oracle variant of the same pool size and share, which has no GAN), reports:

- per GAN run: the paired gains (the variant's run minus the real-only run of the same segmenter seed), mean +- std;
- pooled over runs and seeds: mean +- std of all paired gains, and the standard error of that mean when runs are the
  unit (std of the run means / sqrt(runs));
- the spread between GAN runs (std of the run means) next to the spread within a run (mean of the per-run stds).

    python benchmarks/studies/seg_gain_runs.py --work-dir work_dirs/seg_gain_bundled --variant pool_n4_s0.25 \\
        --recipe "from scratch=gan_i1000,gan_i1000_05b15f88" "bundled, as is=given_0de63888ff7d"

Writes ``work_dirs/benchmarks/seg_gain_runs.{json,png}`` (``--update-results``: the committed
``benchmarks/results/seg_gain_runs.{json,png}``; ``--results STEM``: any path): one column of points per GAN run.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import (  # noqa: E402  (benchmarks/common.py)
    add_output_args,
    add_study_args,
    mean_std,
    output_path,
    repo_relative,
    results_paths,
    runs_by_seed,
    study_folder,
    write_results,
)

NAME = "seg_gain_runs"


def recipe_runs(seg_root: Path, variant: str, folders: list[str], real: dict[int, float], seeds: int) -> list[dict]:
    """One record per GAN run folder that has all ``seeds`` segmenter runs of ``variant`` (others are skipped)."""
    runs = []
    for folder in folders:
        # The oracle has no GAN: its variant is the pool variant with the renderer as source (oracle_n4_s0.25).
        path = seg_root / (variant.replace("pool_", "oracle_", 1) if folder == "-" else f"{variant}_{folder}")
        miou = runs_by_seed(path, seeds)
        paired = sorted(set(miou) & set(real))
        if len(paired) < seeds:
            print(f"skipped {path.name}: {len(paired)} of {seeds} seeds finished", file=sys.stderr)
            continue
        gains = [miou[s] - real[s] for s in paired]
        mean, std = mean_std(gains)
        runs.append(dict(folder=folder, variant=path.name, paired_gains=[round(g, 2) for g in gains],
                         gain_mean=round(mean, 2), gain_std=round(std, 2)))
    return runs


def pooled(runs: list[dict]) -> dict:
    """Gains over every run and seed, and the between-run / within-run spread."""
    gains = [g for run in runs for g in run["paired_gains"]]
    mean, std = mean_std(gains)
    run_means = [run["gain_mean"] for run in runs]
    between = mean_std(run_means)[1] if len(runs) > 1 else None  # undefined for one run
    return dict(gan_runs=len(runs), pairs=len(gains), gain_mean=round(mean, 2), gain_std=round(std, 2),
                between_run_std=None if between is None else round(between, 2),
                within_run_std=round(mean_std([r["gain_std"] for r in runs])[0], 2),
                gain_stderr_over_runs=None if between is None else round(between / math.sqrt(len(runs)), 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_study_args(parser)
    parser.add_argument("--variant", default="pool_n4_s0.25", help="the variant compared (default: pool_n4_s0.25)")
    parser.add_argument("--recipe", nargs="+", required=True, metavar="LABEL=FOLDER[,FOLDER...]",
                        help="a recipe and the stage folders of its GAN runs ('-' for the oracle's variant)")
    parser.add_argument("--seeds", type=int, default=3, help="segmenter seeds 0..N-1 per GAN run (default: 3)")
    add_output_args(parser, NAME, "--results", "results path without extension (.json and .png are written)")
    args = parser.parse_args(argv)
    seg_root = study_folder(args.work_dir, args.labelled, f"seg_i{args.seg_iters}", args.domain)
    real = runs_by_seed(seg_root / "real", args.seeds)
    if len(real) < args.seeds:
        raise SystemExit(f"error: {seg_root / 'real'} has {len(real)} of {args.seeds} real-only seeds")
    recipes = {}
    for spec in args.recipe:
        label, sep, folders = spec.partition("=")
        if not sep or not folders:
            raise SystemExit(f"error: --recipe {spec!r}: expected LABEL=FOLDER[,FOLDER...]")
        runs = recipe_runs(seg_root, args.variant, folders.split(","), real, args.seeds)
        if runs:
            recipes[label] = dict(runs=runs, pooled=pooled(runs))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = sum(len(r["runs"]) for r in recipes.values()) + 0.8 * len(recipes)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * columns + 1.5), 4.4))
    ticks = []
    x = 0.0
    for label, recipe in recipes.items():
        start = x
        for run in recipe["runs"]:
            ax.scatter([x] * len(run["paired_gains"]), run["paired_gains"], s=18, color="tab:blue", alpha=0.7)
            ax.plot([x - 0.25, x + 0.25], [run["gain_mean"]] * 2, color="tab:blue", lw=2)
            x += 1.0
        ax.plot([start - 0.4, x - 0.6], [recipe["pooled"]["gain_mean"]] * 2, color="tab:red", lw=1.2, ls="--")
        ticks.append(((start + x - 1.0) / 2, label))
        x += 0.8
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylabel("paired gain over real only (mIoU)")
    where = "" if args.domain == "source" else f" of the {args.domain} domain"
    ax.set_title(textwrap.fill(f"{args.variant}, {args.labelled} labelled images{where}: one column per GAN training "
                               "run (dots: segmenter seeds; red: pooled mean)", 110), fontsize=8)
    ax.set_xticks([t for t, _ in ticks], [textwrap.fill(lab, 16, break_long_words=False) for _, lab in ticks],
                  fontsize=7)
    fig.tight_layout()
    png, out_json = results_paths(output_path(args, NAME))
    fig.savefig(png, dpi=120)
    real_mean, real_std = mean_std(list(real.values()))
    result = dict(report="segmentation gain over GAN training runs (paired by segmenter seed)",
                  command=shlex.join(["python", "benchmarks/studies/seg_gain_runs.py", *(argv or sys.argv[1:])]),
                  work_dir=repo_relative(str(args.work_dir.absolute())), labelled=args.labelled, variant=args.variant,
                  real=dict(mIoU_mean=round(real_mean, 2), mIoU_std=round(real_std, 2), seeds=len(real)),
                  recipes=recipes)
    write_results(out_json, result)
    print(f"written {repo_relative(str(out_json))} and {repo_relative(str(png))}\n")
    print(f"{'recipe':30s} {'runs':>4s} {'pooled gain':>14s} {'stderr(runs)':>12s} {'between':>7s} {'within':>6s}"
          "  per-run means")
    for label, recipe in recipes.items():
        p = recipe["pooled"]
        stderr, between = ("", "") if p["between_run_std"] is None else (
            f"{p['gain_stderr_over_runs']:.2f}", f"{p['between_run_std']:.2f}")
        means = " ".join(f"{r['gain_mean']:+.2f}" for r in recipe["runs"])
        print(f"{label:30s} {p['gan_runs']:4d} {p['gain_mean']:+6.2f} +- {p['gain_std']:4.2f} {stderr:>12s} "
              f"{between:>7s} {p['within_run_std']:6.2f}  {means}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
