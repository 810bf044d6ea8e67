"""Headroom report of the segmentation-gain study: mIoU against the number of labelled images, per variant.

Reads the segmenter runs that ``bench_seg_gain.py`` left in ``--work-dir`` (one study per labelled count, e.g.
``bench_seg_gain.py --labelled 16 --variants pool_n4 oracle_n4 ...``, then ``--labelled 32 ...``) and measures
nothing itself: it answers where more data helps at all (real only against the labelled count), how much of that a
perfect appearance synthesizer (``oracle_n<k>``) gets, and how much the generator's recipes get. Runs of a generator
other than ``--gan`` (a substring of the run folder, e.g. the ``given_<hash>`` of ``--gan-checkpoint``) are left
out.

    python benchmarks/studies/seg_gain_headroom.py --work-dir work_dirs/seg_gain_bundled --gan given_0de63888ff7d \\
        --variants pool_n4 pool_n4_s0.25 pool_n4_f oracle_n4 layouts_n4

Writes ``work_dirs/benchmarks/seg_gain_headroom.{json,png}`` (``--update-results``: the committed
``benchmarks/results/seg_gain_headroom.{json,png}``; ``--results STEM``: any path) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import (  # noqa: E402  (benchmarks/common.py)
    REPO,
    add_output_args,
    output_path,
    results_paths,
    study_domain,
    write_results,
)

NAME = "seg_gain_headroom"


def collect(work_dir: Path, seg_iters: int, gan: str | None,
            domain: str = "source") -> dict[int, dict[str, list[float]]]:
    """``{labelled: {variant: [mIoU per seed]}}`` from every finished run of ``domain``'s studies under ``work_dir``
    (another domain's study of the same labelled count is not mixed in)."""
    found: dict[int, dict[str, list[float]]] = {}
    for result in sorted(work_dir.glob(f"L*/seg_i{seg_iters}/*/seed*/result.json")):
        match = re.match(r"L(\d+)_", result.parents[3].name)
        if match is None or study_domain(result.parents[3].name) != domain:
            continue
        run = json.loads(result.read_text())
        variant, folder = run["variant"], result.parents[1].name
        if gan and variant != "real" and not variant.startswith("oracle") and gan not in folder:
            continue
        found.setdefault(int(match.group(1)), {}).setdefault(variant, []).append(float(run["mIoU"]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, default=REPO / "work_dirs" / "seg_gain")
    parser.add_argument("--seg-iters", type=int, default=3000)
    parser.add_argument("--domain", default="source", help="the studies' renderer domain (default: source)")
    parser.add_argument("--gan", help="only runs of this generator (a substring of their folder names)")
    parser.add_argument("--variants", nargs="+", default=["pool_n4", "oracle_n4"],
                        help="variants to report next to real (default: pool_n4 oracle_n4)")
    parser.add_argument("--min-seeds", type=int, default=3, help="leave out variants with fewer seeds (default: 3)")
    add_output_args(parser, NAME, "--results", "results path without extension (.json and .png are written)")
    args = parser.parse_args(argv)
    found = collect(args.work_dir.resolve(), args.seg_iters, args.gan, args.domain)
    rows = {}
    for labelled, by_variant in sorted(found.items()):
        if len(by_variant.get("real", [])) < args.min_seeds:
            continue
        real = statistics.fmean(by_variant["real"])
        row = {}
        for v in ["real", *args.variants]:
            values = by_variant.get(v, [])
            if len(values) >= args.min_seeds:
                mean = statistics.fmean(values)
                row[v] = dict(mIoU_mean=round(mean, 2), mIoU_std=round(statistics.stdev(values), 2),
                              gain_vs_real=round(mean - real, 2), seeds=len(values),
                              mIoU_per_seed=[round(x, 2) for x in values])
        oracle = next((row[v] for v in row if v.startswith("oracle_")), None)
        for v, cell in row.items():
            if oracle is not None and oracle["gain_vs_real"] > 0 and v != "real" and not v.startswith("oracle"):
                cell["fraction_of_oracle_gain"] = round(cell["gain_vs_real"] / oracle["gain_vs_real"], 2)
        rows[labelled] = row
    if not rows:
        print(f"error: no study with >= {args.min_seeds} real-only seeds under {args.work_dir}", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for i, v in enumerate(["real", *args.variants]):
        points = [(n, row[v]) for n, row in rows.items() if v in row]
        if not points:
            continue
        ax.errorbar([n for n, _ in points], [c["mIoU_mean"] for _, c in points],
                    yerr=[c["mIoU_std"] for _, c in points], marker="o", capsize=4, color=f"C{i}",
                    label="real only" if v == "real" else f"real + {v}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(rows), [str(n) for n in sorted(rows)])
    ax.set_xlabel("labelled real images")
    ax.set_ylabel("mIoU on 200 held-out real images (%)")
    ax.set_title("Fast-SCNN, embedded scenes 64x64, 3000 it, mean +- std over 3 seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png, out_json = results_paths(output_path(args, NAME))
    fig.savefig(png)
    command = shlex.join(["python", "benchmarks/studies/seg_gain_headroom.py", *(argv or sys.argv[1:])])
    out = dict(benchmark="segmentation gain vs labelled count (report of bench_seg_gain.py runs)",
               command=command, work_dir=str(args.work_dir), gan=args.gan, rows=rows)
    write_results(out_json, out)
    print(f"{'labelled':>8} {'variant':<16} {'mIoU':>7} {'std':>5} {'gain':>6} {'of oracle':>9}")
    for labelled, row in rows.items():
        for v, c in row.items():
            frac = c.get("fraction_of_oracle_gain")
            print(f"{labelled:>8} {v:<16} {c['mIoU_mean']:>7.2f} {c['mIoU_std']:>5.2f} {c['gain_vs_real']:>+6.2f} "
                  f"{'' if frac is None else f'{frac:.2f}':>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
