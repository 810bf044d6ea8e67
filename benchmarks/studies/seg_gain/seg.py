"""The segmenter runs: one mmengine config per run (a shipped augment/ config plus the study's overrides), the
run's spec (``spec.json``, also the run's record in the results), the child process that trains and evaluates one
run (``bench_seg_gain.py --child RUN_DIR``), and the stage that runs them (``benchmarks/jobs.py``, ``--jobs`` at a
time)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import REPO, write_json  # benchmarks/common.py
from jobs import Job, run_jobs, thread_env  # benchmarks/jobs.py

from .stages import StageLog, stage_filter
from .study import GPU_DATASETS, SCRIPT
from .variants import GENERATOR_SOURCES, Variant

TWO_STAGE_PRETRAIN = 0.75  # share of the iterations in stage 1 (the shipped *_pretrain / *_finetune configs)
TWO_STAGE_LR = 0.2  # stage 2's learning rate relative to the shipped one


@dataclass
class Run:
    """One segmenter run: its variant and its spec (the JSON record: ``spec.json`` and the run's result)."""

    variant: Variant
    spec: dict

    @property
    def run_dir(self) -> Path:
        return Path(self.spec["run_dir"])

    @property
    def seed(self) -> int:
        return self.spec["seed"]


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


def build_runs(args: argparse.Namespace, variants: list[Variant], seg_root: Path, pools: dict[tuple[str, int], Path],
               ckpt: Path | None, eval_roots: dict[str, str]) -> list[Run]:
    """Every run, seed-major (drift of a shared machine hits every variant alike), in
    ``<seg_root>/<variant folder>/seed<seed>``."""
    configs = seg_config_paths(args)
    gan_tag = ckpt.parent.name if ckpt is not None else None
    runs = []
    for seed in range(args.seeds):
        for v in variants:
            config = configs["real" if v.kind == "recolour" else v.kind]
            spec = dict(variant=v.name, kind=v.kind, seed=seed, n=0, config=str(config),
                        real_config=str(configs["real"]), eval_domains=eval_roots)
            if v.is_pool:
                pool = str(pools[v.pool_key])
                spec.update(n=v.n, share=v.share, recipe=v.recipe, source=v.source, pool=pool, source_pool=pool,
                            checkpoint=str(ckpt) if v.source in GENERATOR_SOURCES else None)
            elif v.kind == "online":
                spec.update(checkpoint=str(ckpt), prob=args.online_prob)
            if v.recolour:
                spec.update(recolour=v.recolour)
            folder = v.run_folder(gan_tag, args.filter_margin, args.online_prob)
            spec["run_dir"] = str(seg_root / folder / f"seed{seed}")
            runs.append(Run(v, spec))
    return runs


def run_segmenters(args: argparse.Namespace, runs: list[Run], train_root: Path, val_root: Path,
                   stages: StageLog) -> list[dict]:
    """Every run's result. Filtered / resampled pools need the real-only segmenter of their seed: those runs go
    second, after their pool is filtered (:func:`~.stages.stage_filter`)."""
    t = time.perf_counter()
    first = [r for r in runs if not r.variant.needs_real_run]
    results = stage_seg(args, first, train_root, val_root)
    second = [r for r in runs if r.variant.needs_real_run]
    for run in second:
        real_run = next(r.run_dir for r in first if r.variant.kind == "real" and r.seed == run.seed)
        out, record = stage_filter(args, Path(run.spec["source_pool"]), run.variant, real_run, run.seed, train_root)
        run.spec["pool"] = str(out)
        stages.add(f"{out.name}", record)
    results += stage_seg(args, second, train_root, val_root) if second else []
    stages.add("seg", dict(runs=len(results), seconds=round(time.perf_counter() - t, 1)))
    return results


# ------------------------------------------------------------------------------------------------ configs


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

    finetune = stage == "finetune"
    cfg = Config.fromfile(spec["real_config"] if finetune else spec["config"])
    iters = args.seg_iters
    work_dir = Path(spec["run_dir"])
    if stage is not None:
        pretrain_iters = round(TWO_STAGE_PRETRAIN * args.seg_iters)
        iters = args.seg_iters - pretrain_iters if finetune else pretrain_iters
    if finetune:
        work_dir = work_dir / "finetune"
        cfg.load_from = str(Path(spec["run_dir"]) / f"iter_{pretrain_iters}.pth")
        cfg.optim_wrapper.optimizer.lr *= TWO_STAGE_LR
    _point_data(cfg, args, spec, train_root, val_root, finetune)
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=spec["seed"])
    _set_schedule(cfg, iters, work_dir)
    return cfg


def _point_data(cfg, args: argparse.Namespace, spec: dict, train_root: Path, val_root: Path, finetune: bool) -> None:
    """The run's training set (real, the mix with its pool, or real with the online transform) and the held-out
    images."""
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
            step.update(checkpoint=spec["checkpoint"], prob=args.online_prob, seed=spec["seed"])
    if spec.get("recolour"):  # every training pipeline: the real images' and, in a mix, the pool's
        pipelines = {id(p): p for p in _pipelines(train)}.values()  # one list may be shared by both datasets
        for pipeline in pipelines:
            _insert_recolour(pipeline, spec["recolour"], spec["config"])
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(val_root)
    if args.dataset == "embedded":  # 64x64 images decode in microseconds: no worker processes on 2 cores
        for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
            loader.update(num_workers=0, persistent_workers=False)


def _insert_recolour(pipeline: list, strength: float, config: str) -> None:
    """ClassRecolour right after the label map is loaded (and mapped), before any geometric or photometric step."""
    loads = [i for i, step in enumerate(pipeline) if step.get("type") in ("LoadAnnotations", "MapLabelIds")]
    if not loads:
        raise SystemExit(f"error: {config}'s training pipeline has no LoadAnnotations step")
    pipeline.insert(loads[-1] + 1, dict(type="ClassRecolour", strength=strength, prob=0.5))


def _set_schedule(cfg, iters: int, work_dir: Path) -> None:
    """Same schedule for every variant; no validation while training, one explicit val at the end."""
    from dpsims_aug.mm.runner import rescale_schedule

    rescale_schedule(cfg, iters)  # the shipped schedule (warmup, decay), rescaled to this run's length
    cfg.train_cfg.update(val_interval=iters, val_begin=iters + 1)
    cfg.default_hooks.checkpoint.update(interval=max(100, min(iters // 4, 5000)), max_keep_ckpts=1, save_last=True)
    cfg.default_hooks.logger.update(interval=min(50, iters))
    if (work_dir / "last_checkpoint").is_file():
        cfg.resume, cfg.load_from = True, None


# ------------------------------------------------------------------------------------------------ one run


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


# ------------------------------------------------------------------------------------------------ the jobs


def prepare_run(args: argparse.Namespace, run: Run, train_root: Path, val_root: Path) -> None:
    """Write the run's ``config.py`` (two-stage: and ``config_finetune.py``) and ``spec.json``."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    if run.variant.two_stage:
        build_seg_config(args, run.spec, train_root, val_root, "pretrain").dump(str(run.run_dir / "config.py"))
        build_seg_config(args, run.spec, train_root, val_root, "finetune").dump(
            str(run.run_dir / "config_finetune.py"))
    else:
        build_seg_config(args, run.spec, train_root, val_root).dump(str(run.run_dir / "config.py"))
    (run.run_dir / "spec.json").write_text(json.dumps(run.spec, indent=1) + "\n")


def stage_seg(args: argparse.Namespace, runs: list[Run], train_root: Path, val_root: Path) -> list[dict]:
    """Run every segmenter that has no ``result.json`` yet, ``--jobs`` subprocesses at a time (on GPUs, one per
    slot); every run's result."""
    for run in runs:
        if not (run.run_dir / "result.json").is_file():
            prepare_run(args, run, train_root, val_root)
    threads = max(1, args.threads // args.jobs)
    jobs = [Job(name=f"{run.spec['variant']} seed {run.spec['seed']}", log=run.run_dir / "run.log",
                done=run.run_dir / "result.json", command=[sys.executable, str(SCRIPT), "--child", str(run.run_dir)])
            for run in runs]

    def finished(job: Job, seconds: float) -> str:
        res = json.loads(Path(job.done).read_text())
        return f"[seg] done {job.name}: mIoU {res['mIoU']:.2f} ({seconds:.0f} s, {res['s_per_iter_median']} s/iter)"

    run_jobs(jobs, args.jobs, lambda slot: thread_env(threads, slot if args.device == "cuda" else None), tag="seg",
             on_finished=finished)
    return [json.loads((r.run_dir / "result.json").read_text()) for r in runs]
