"""Share report of the segmentation-gain study: mIoU against the synthetic share of the training mix, per generator.

Reads the segmenter runs that ``bench_seg_gain.py`` left in ``--work-dir`` for one labelled count (pool variants
``pool_n<k>`` at share 0.5 and ``pool_n<k>_s<share>``, the renderer's ``oracle_n<k>[_s<share>]``, and ``real``, which
is share 0) and measures nothing itself. Every gain is paired: a variant's run minus the real-only run of the same
segmenter seed, then mean +- std over seeds. Each ``--gan LABEL=FOLDER`` names the generator whose runs end in
``_<FOLDER>`` (``given_<hash>`` for ``--gan-checkpoint``, ``gan_i<iters>[_<hash>]`` for a GAN the study trained).

    python benchmarks/studies/seg_gain_shares.py --work-dir work_dirs/seg_gain_bundled --labelled 16 \\
        --gan "bundled (1000 scenes)=given_0de63888ff7d" "own GAN (16 images)=gan_i1000"

Writes ``work_dirs/benchmarks/seg_gain_shares.{json,png}`` (``--update-results``: the committed
``benchmarks/results/seg_gain_shares.{json,png}``; ``--results STEM``: any path) and prints the table.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
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

NAME = "seg_gain_shares"

VARIANT = re.compile(r"^(pool|oracle)_n(\d+)(?:_s([0-9.]+))?$")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_study_args(parser)
    parser.add_argument("--n", type=int, default=4, help="pool size per label map (default: 4)")
    parser.add_argument("--gan", nargs="+", default=[], metavar="LABEL=FOLDER", help="generators to report")
    parser.add_argument("--seeds", type=int, default=3, help="use segmenter seeds 0..N-1 (default: 3)")
    add_output_args(parser, NAME, "--results", "results path without extension (.json and .png are written)")
    args = parser.parse_args(argv)
    seg_root = study_folder(args.work_dir, args.labelled, f"seg_i{args.seg_iters}", args.domain)
    real = runs_by_seed(seg_root / "real", args.seeds)
    sources = {"oracle (renderer)": None, **dict(g.split("=", 1) for g in args.gan)}
    curves: dict[str, list[dict]] = {}
    for label, folder in sources.items():
        points = []
        for path in sorted(seg_root.iterdir()):
            name = path.name if folder is None else path.name.removesuffix(f"_{folder}")
            m = VARIANT.match(name)
            if m is None or (folder is None) != (m.group(1) == "oracle") or int(m.group(2)) != args.n:
                continue
            if folder is not None and name == path.name:
                continue  # another generator's run
            runs = runs_by_seed(path, args.seeds)
            seeds = sorted(set(runs) & set(real))
            if len(seeds) < args.seeds:
                continue
            gains = [runs[s] - real[s] for s in seeds]
            (m_miou, s_miou), (m_gain, s_gain) = mean_std([runs[s] for s in seeds]), mean_std(gains)
            points.append(dict(share=float(m.group(3) or 0.5), variant=path.name, seeds=len(seeds),
                               mIoU_mean=round(m_miou, 2), mIoU_std=round(s_miou, 2), paired_gain_mean=round(m_gain, 2),
                               paired_gain_std=round(s_gain, 2), paired_gains=[round(g, 2) for g in gains]))
        if points:
            curves[label] = sorted(points, key=lambda p: p["share"])
    real_mean, real_std = mean_std(list(real.values()))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, points in curves.items():
        xs = [0.0] + [p["share"] for p in points]
        ys = [real_mean] + [p["mIoU_mean"] for p in points]
        es = [real_std] + [p["mIoU_std"] for p in points]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
    ax.axhline(real_mean, color="grey", lw=0.8, ls="--", label=f"real only ({real_mean:.1f})")
    ax.set_xlabel("synthetic share of the training mix")
    ax.set_ylabel("mIoU on 200 held-out images (mean +- std, seeds)")
    ax.set_title(f"{args.labelled} labelled images, {args.n} synthetic images per map")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png, out_json = results_paths(output_path(args, NAME))
    fig.savefig(png, dpi=120)
    result = dict(report="segmentation gain against the synthetic share (paired by segmenter seed)",
                  command=shlex.join(["python", "benchmarks/studies/seg_gain_shares.py", *(argv or sys.argv[1:])]),
                  work_dir=repo_relative(str(args.work_dir.absolute())), labelled=args.labelled, n=args.n,
                  real=dict(mIoU_mean=round(real_mean, 2), mIoU_std=round(real_std, 2), seeds=len(real)),
                  curves=curves)
    write_results(out_json, result)
    print(f"written {repo_relative(str(out_json))} and {repo_relative(str(png))}\n")
    print(f"{'generator':34s} {'share':>5s} {'mIoU':>13s} {'paired gain':>14s}  seeds")
    print(f"{'real only':34s} {0:5.2f} {real_mean:6.2f} +- {real_std:4.2f}")
    for label, points in curves.items():
        for p in points:
            print(f"{label:34s} {p['share']:5.2f} {p['mIoU_mean']:6.2f} +- {p['mIoU_std']:4.2f} "
                  f"{p['paired_gain_mean']:+6.2f} +- {p['paired_gain_std']:4.2f}  {p['seeds']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
