"""The study's report: mean +- std of mIoU per variant (:func:`summarize`), the plot of mIoU vs n, the results
JSON (every run, every stage, the machine) and the table printed last."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import textwrap
import time
from pathlib import Path

from common import REPO, machine_info, mean_std, results_paths, write_results  # benchmarks/common.py

from .seg import seg_config_paths
from .study import SOURCE_DOMAIN, study_regime
from .variants import Variant

ORACLE_FRACTIONS = (("fraction_of_oracle_gain", "oracle"), ("fraction_of_new_scene_oracle_gain", "oracle_new"))


def summarize(runs: list[dict], variants: list[Variant]) -> dict[str, dict]:
    """Mean +- std of mIoU (and aAcc) per variant, and the difference to real only."""
    rows = {}
    for v in variants:
        rs = [r for r in runs if r["variant"] == v.name]
        m, s = mean_std([r["mIoU"] for r in rs])
        rows[v.name] = dict(mIoU_mean=round(m, 2), mIoU_std=round(s, 2), aAcc_mean=round(mean_std(
            [r["aAcc"] for r in rs])[0], 2), seeds=len(rs), mIoU_per_seed=[round(r["mIoU"], 2) for r in rs])
        for domain in sorted({d for r in rs for d in r.get("mIoU_on_domain", {})}):
            m, s = mean_std([r["mIoU_on_domain"][domain] for r in rs if domain in r.get("mIoU_on_domain", {})])
            rows[v.name].setdefault("mIoU_on_domain", {})[domain] = dict(mean=round(m, 2), std=round(s, 2))
    base = rows["real"]["mIoU_mean"]
    for row in rows.values():
        row["gain_vs_real"] = round(row["mIoU_mean"] - base, 2)
    # Calibration by the oracles (embedded only): a recipe's gain as a fraction of what a perfect appearance
    # synthesizer, and a perfect layout + image synthesizer, gain in the same protocol (same n and share). The
    # oracles themselves are the yardsticks, not recipes, so they get no fraction.
    for v in variants:
        if not v.is_pool or v.is_oracle:
            continue
        row = rows[v.name]
        for key, oracle_source in ORACLE_FRACTIONS:
            oracle = rows.get(v.oracle(oracle_source).name)
            if oracle is not None and oracle["gain_vs_real"] > 0:
                row[key] = round(row["gain_vs_real"] / oracle["gain_vs_real"], 2)
    return rows


def plot(rows: dict[str, dict], variants: list[Variant], ns: list[int], title: str, path: Path) -> None:
    """mIoU (mean +- std over seeds, seeds as dots) vs images per label map, one line per pool source, recipe and
    share; online at its own position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=120)
    xs = [0, *ns]
    series: dict[tuple[str, str, float, float], dict[int, str]] = {}
    for v in variants:
        if v.is_pool:
            series.setdefault(v.series, {})[v.n] = v.name
    for i, ((source, recipe, share, recolour), by_n) in enumerate(series.items()):
        points = [(0, "real"), *sorted(by_n.items())]
        colour = f"C{i if i < 3 else i + 1}"  # C3 is the online marker's
        ax.errorbar([x for x, _ in points], [rows[k]["mIoU_mean"] for _, k in points],
                    yerr=[rows[k]["mIoU_std"] for _, k in points], marker="o", capsize=4, color=colour,
                    label=f"{source}{'' if recipe == 'plain' else ' ' + recipe}, share {share:g}"
                          + (f", ClassRecolour {recolour:g}" if recolour else ""))
        for x, k in points:
            ax.scatter([x] * len(rows[k]["mIoU_per_seed"]), rows[k]["mIoU_per_seed"], s=10, color=colour, alpha=0.4)
    if not series:  # no pool: real only is drawn as a point of its own, the variants beside it
        ax.errorbar([0], [rows["real"]["mIoU_mean"]], yerr=[rows["real"]["mIoU_std"]], marker="o", color="C0",
                    capsize=4, linestyle="none", label="real only")
        ax.scatter([0] * len(rows["real"]["mIoU_per_seed"]), rows["real"]["mIoU_per_seed"], s=10, color="C0",
                   alpha=0.4)
    ticks, labels = list(xs), [str(x) for x in xs]
    # Variants without a pool, each at its own position right of the pools: online synthesis, per-class recolouring.
    singles = [(v, f"C{3 + 2 * i}" if i else "C3") for i, v in enumerate(x for x in variants if x.kind in ("online",
                                                                                                          "recolour"))]
    for i, (v, colour) in enumerate(singles):
        x = max(xs) + max(1, max(xs) // 2) * (i + 1)
        label = ("real + online DPSIMSAugment (p=0.5)" if v.kind == "online"
                 else f"real + ClassRecolour {v.recolour:g} (no synthesis)")
        ax.errorbar([x], [rows[v.name]["mIoU_mean"]], yerr=[rows[v.name]["mIoU_std"]], marker="s", color=colour,
                    capsize=4, linestyle="none", label=label)
        ax.scatter([x] * len(rows[v.name]["mIoU_per_seed"]), rows[v.name]["mIoU_per_seed"], s=10, color=colour,
                   alpha=0.4)
        ticks.append(x)
        labels.append(v.name)
    ax.axhline(rows["real"]["mIoU_mean"], color="gray", linestyle=":", linewidth=1)
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("synthetic images (or new layouts) per labelled label map (n); 0 = real only")
    ax.set_ylabel("mIoU on held-out real images (%)")
    # The regime line can be longer than the figure is wide: wrap each line rather than cut it off.
    ax.set_title("\n".join(textwrap.fill(line, 110) for line in title.splitlines()), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_title(args: argparse.Namespace, held_out: int | str) -> str:
    """The study in two lines: its regime, then data, generator, segmenter schedule and seeds."""
    return (f"{study_regime(args)}\n{args.dataset}{'' if args.domain == SOURCE_DOMAIN else ' ' + args.domain}: "
            f"{args.labelled or 'all'} labelled images, "
            f"{_generator_words(args)}, "
            f"segmenter {args.seg_iters} it, {args.seeds} seed(s), {held_out} held-out")


def _generator_words(args: argparse.Namespace) -> str:
    if not getattr(args, "uses_generator", True):
        return "no generator"
    return "given generator" if args.gan_checkpoint else f"GAN {args.gan_iters} it"


def result_record(args: argparse.Namespace, argv: list[str] | None, rows: dict, runs: list[dict], stages: dict,
                  ckpt: Path | None, load_start: list[float], started: float) -> dict:
    """The results JSON: the command, the settings, the summary, every run and stage, the machine."""
    import torch

    machine = machine_info(threads=args.threads, jobs=args.jobs, threads_per_job=max(1, args.threads // args.jobs),
                           device=args.device, loadavg_start=load_start,
                           note="shared machine: other jobs may run (see the load averages)")
    if args.device == "cuda" and torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    env_prefix = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    return dict(
        benchmark="segmentation gain: real only vs real + DP-SIMS synthetic (offline pool, online transform)",
        command=env_prefix + shlex.join(["python", "benchmarks/studies/bench_seg_gain.py", *(argv or sys.argv[1:])]),
        settings=dict(regime=study_regime(args), dataset=args.dataset, domain=args.domain,
                      eval_domains=args.eval_domains, labelled=args.labelled or "all", held_out=stages["data"]["val"],
                      size=args.size if args.dataset == "embedded" else None, gan_iters=args.gan_iters,
                      seg_iters=args.seg_iters, seeds=args.seeds, n=args.n, online_prob=args.online_prob,
                      shares=args.shares, recipes=args.recipes, sources=args.sources,
                      filter_margin=args.filter_margin,
                      pool_mix="SyntheticMixDataset(real, pool, synthetic_share)",
                      seg_configs={k: str(p.relative_to(REPO)) for k, p in seg_config_paths(args).items()},
                      gan_checkpoint=str(ckpt) if ckpt is not None else None,
                      metric="mmseg IoUMetric mIoU (%) on the held-out real images"),
        summary=rows, runs=runs, stages=stages, machine=machine,
        seconds=round(time.perf_counter() - started, 1),
    )


def print_table(rows: dict[str, dict], stages: dict) -> None:
    """The stages (cached or their seconds), then mIoU per variant: mean, std, gain over real only, the gain as a
    fraction of the oracles', seeds."""
    print("stages: " + ", ".join(f"{k} {'cached' if v.get('cached') else str(v.get('seconds')) + ' s'}"
                                  for k, v in stages.items()))
    print(f"{'variant':<18} {'mIoU mean':>10} {'std':>6} {'gain':>7} {'of oracle':>10} {'of new-scene':>13} "
          f"{'seeds':>6}")
    for v, row in rows.items():
        fractions = [row.get(k) for k, _ in ORACLE_FRACTIONS]
        cells = ["" if f is None else f"{f:.2f}" for f in fractions]
        print(f"{v:<18} {row['mIoU_mean']:>10.2f} {row['mIoU_std']:>6.2f} {row['gain_vs_real']:>+7.2f} "
              f"{cells[0]:>10} {cells[1]:>13} {row['seeds']:>6}")


def report(args: argparse.Namespace, argv: list[str] | None, variants: list[Variant], runs: list[dict],
           stages: dict, ckpt: Path | None, load_start: list[float], started: float) -> None:
    """Summarize, plot and write the results (``<--results>.{json,png}``), then print the table."""
    rows = summarize(runs, variants)
    png, out_json = results_paths(args.results)
    ns = sorted({v.n for v in variants if v.is_pool})
    plot(rows, variants, ns, plot_title(args, stages["data"]["val"]), png)
    write_results(out_json, result_record(args, argv, rows, runs, stages, ckpt, load_start, started))
    print(f"\nwritten {out_json} and {png}")
    print_table(rows, stages)

