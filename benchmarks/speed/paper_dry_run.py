"""True-size dry runs of the paper configs (issue 28, parts 1 and 5): every stage a GPU user runs, on the CPU.

For each paper dataset (ADE-20K, COCO-Stuff, Cityscapes) it writes a handful of image / label pairs in the dataset's
real on-disk format at its real size (:mod:`dpsims_aug.data.paper_formats`), then runs, each stage as the user runs
it (the ``dpsims-aug`` commands, in a subprocess of its own whose peak RSS is recorded):

1. ``readers``: the GAN config's training and held-out datasets, ``generate``'s label-map listing, and every mmseg
   dataset of the dataset's ``augment/`` configs that needs nothing generated (``_real``), each item 0 read;
2. ``model`` (a worker of this script): the paper config's model at its true size (ConvNeXt-L with random weights):
   parameters of G and D (trainable / frozen), GFLOPs of a G forward at the preset's image size and of one training
   step at batch 1 (``FlopCounterMode``: matmuls, convolutions, attention), G images/s (fp32, batch 1) and seconds per
   training step at batch 1; OASIS's GFLOPs at the same size (``oasis_reference.py``, counted on the meta device);
3. ``train``: ``dpsims-aug train NAME --data-root ... --max-iters 2`` with the CPU options (batch 1, no workers, no
   AMP, random ConvNeXt-L weights, sample grid every iteration and evaluation every 2 on 2 held-out maps): a
   checkpoint, a sample grid, an evaluation, the export at the end;
4. ``resume``: the same with ``--resume --max-iters 3``;
5. ``export``: ``dpsims-aug export iter_3.pth`` (fp32 and ``--half``);
6. ``generate``: ``dpsims-aug generate`` of the training maps with the export (the offline pool, ``<root>_dpsims``);
7. ``datasets``: every mmseg dataset of every ``augment/`` config of the dataset (pool mixes, online
   ``DPSIMSAugment`` on the CPU with the export, the batch form's ``DPSIMSSelect``), items read;
8. ``seg_pool`` / ``seg_online`` (/ ``seg_batch`` where shipped): ``dpsims-aug seg-train`` of the ``_pool``,
   ``_online`` (``DPSIMSAugment(device='cpu', prob=1)``) and ``_batch`` configs for one iteration with random-init
   backbones (nothing downloads), then their validation.

A failing stage is the finding: it is recorded with its command, exit code and the end of its log; the stages that
need its output are skipped. Results (one JSON for all datasets) go to ``work_dirs/benchmarks/paper_dry_run.json``,
or with ``--update-results`` to ``benchmarks/results/paper_dry_run.json``. ``--reduced`` runs the same pipeline with
the configs' class counts and instance-edge settings but the tiny generator preset, a random-init EfficientNet-Lite0
discriminator and images of 64..128 px, in this process (what ``tests/test_paper_scale.py`` runs).

    python benchmarks/speed/paper_dry_run.py --update-results          # all three at true size (26 min, 1 thread)
    python benchmarks/speed/paper_dry_run.py --datasets ade20k         # one
    python benchmarks/speed/paper_dry_run.py --reduced --work-dir /tmp/reduced
    python benchmarks/speed/paper_dry_run.py --card                    # the cost card table from the results
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder: oasis_reference.py
from common import REPO, RESULTS, WORK, add_output_args, machine_info, output_path, write_results  # noqa: E402

from dpsims_aug.data.paper_formats import (  # noqa: E402
    GAN_LABEL_SPACES,
    PAPER_DATASETS,
    ROOT_NAMES,
    write_paper_dataset,
)

NAME = "paper_dry_run.json"
# The segmenter configs of each dataset: augment/<folder>/<model>_<suffix>_<kind>.py
SEG_FOLDERS = {"ade20k": "ade20k", "coco_stuff": "coco_stuff", "cityscapes": "cityscapes"}
SEG_SUFFIXES = {"ade20k": "ade20k-512x512", "coco_stuff": "coco-stuff164k-512x512", "cityscapes": "cityscapes-512x1024"}
# The paper schedule the GPU projection uses: 8 GPUs x batch 4 (train_gan/configs/_base_/paper.py), 100k iterations.
GPU_PEAK_TFLOPS = 989.0  # H100 SXM, dense bf16 tensor cores
ASSUMED_MFU = (0.30, 0.40)

# CPU settings of every GAN run: random ConvNeXt-L weights (same cost, no download), batch 1, no workers, no AMP,
# a checkpoint at iteration 2, a sample grid every iteration and an evaluation every 2 on 2 held-out maps, every
# logging interval in the log (seconds per iteration).
GAN_CPU_OPTIONS = ["model.discriminator.weights=None", "train_dataloader.batch_size=1",
                   "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
                   "default_hooks.checkpoint.interval=2", "default_hooks.logger.interval=1"]
# --reduced: the configs' class counts and instance-edge settings, small widths and sizes.
GAN_REDUCED_OPTIONS = ["model.generator.preset=tiny", "model.discriminator.backbone=tf_efficientnet_lite0",
                       "model.discriminator.decoder_channels=8", "model.discriminator.max_decoder_channels=16",
                       "model.discriminator.high_res_channels=8", "model.loss.nce_patches=32",
                       "model.ema_bn_batches=2"]
REDUCED_SIZES = {"ade20k": ((96, 128), (128, 96)), "coco_stuff": ((96, 128), (128, 96)),
                 "cityscapes": ((64, 128),)}
REDUCED_CROPS = {"ade20k": "64", "coco_stuff": "64", "cityscapes": "(64,128)"}
REDUCED_SEG_CROPS = {"ade20k": (64, 64), "coco_stuff": (64, 64), "cityscapes": (64, 128)}
# Every segmenter run: random-init backbones (nothing downloads), no dataloader workers.
SEG_CPU_OPTIONS = ["model.pretrained=None", "model.backbone.init_cfg=None",
                   *[f"{loader}.{key}" for loader in ("train_dataloader", "val_dataloader", "test_dataloader")
                     for key in ("num_workers=0", "persistent_workers=False")]]


# ----------------------------------------------------------------------------------------------- stage running

class Stages:
    """Runs the stages of one dataset, records each (command, exit code, seconds, peak RSS, log tail)."""

    def __init__(self, folder: Path, in_process: bool, env: dict[str, str]) -> None:
        self.folder = folder
        self.in_process = in_process
        self.env = env
        self.records: dict[str, dict] = {}

    def ok(self, *names: str) -> bool:
        return all(self.records.get(n, {}).get("ok") for n in names)

    def skip(self, name: str, needs: tuple[str, ...]) -> bool:
        """Record ``name`` as skipped (and return True) when a stage it needs did not pass."""
        failed = [n for n in needs if not self.ok(n)]
        if failed:
            self.records[name] = {"ok": None, "skipped": f"needs {', '.join(failed)}"}
            return True
        return False

    def cli(self, name: str, argv: list[str], check=None) -> dict:
        """``dpsims-aug ARGV``: in a subprocess (peak RSS of that process), or in this process (``in_process``)."""
        command = shlex.join(["dpsims-aug", *argv])
        if self.in_process:
            return self._in_process(name, command, lambda: _dpsims_main(argv), check)
        return self._subprocess(name, command, [sys.executable, "-m", "dpsims_aug", *argv], check)

    def worker(self, name: str, args: list[str], check=None) -> dict:
        """A worker of this script (``--worker ...``); its last stdout line is JSON, kept as ``result``."""
        command = shlex.join(["python", "benchmarks/speed/paper_dry_run.py", *args])
        if self.in_process:
            return self._in_process(name, command, lambda: worker_main(args), check, returns_json=True)
        return self._subprocess(name, command, [sys.executable, str(Path(__file__).resolve()), *args], check,
                                returns_json=True)

    def _finish(self, name: str, record: dict, check, output: str) -> dict:
        if record["ok"] and check is not None:
            problem = check(record)
            if problem:
                record.update(ok=False, problem=problem)
        if not record["ok"]:
            record["log_tail"] = output[-3000:]
        self.records[name] = record
        status = "ok" if record["ok"] else f"FAILED (rc {record['rc']}) {record.get('problem', '')}"
        print(f"  {name}: {status} in {record['seconds']:.1f} s", flush=True)
        return record

    def _subprocess(self, name: str, command: str, cmd: list[str], check, returns_json: bool = False) -> dict:
        log = self.folder / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=self.folder, env=self.env)
            _, status, usage = os.wait4(proc.pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        output = log.read_text(errors="replace")
        record = {"command": command, "rc": rc, "ok": rc == 0, "seconds": round(time.perf_counter() - start, 2),
                  "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3), "log": str(log)}
        if returns_json and rc == 0:
            record["result"] = _last_json(output)
        return self._finish(name, record, check, output)

    def _in_process(self, name: str, command: str, fn, check, returns_json: bool = False) -> dict:
        buffer = io.StringIO()
        start = time.perf_counter()
        cwd = os.getcwd()
        os.chdir(self.folder)
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                out = fn()
            rc = 0 if returns_json else int(out or 0)
        except SystemExit as err:
            rc = err.code if isinstance(err.code, int) else 1
            out = None
        except Exception:  # noqa: BLE001 - the failure is the finding
            buffer.write(traceback.format_exc())
            rc, out = 1, None
        finally:
            os.chdir(cwd)
        record = {"command": command, "rc": rc, "ok": rc == 0, "seconds": round(time.perf_counter() - start, 2),
                  "peak_rss_gib": None}
        if returns_json and rc == 0:
            record["result"] = out
        return self._finish(name, record, check, buffer.getvalue())


def _dpsims_main(argv: list[str]) -> int:
    from dpsims_aug.cli import main

    return main(argv)


def _last_json(output: str) -> Any:
    for line in reversed(output.strip().splitlines()):
        with contextlib.suppress(ValueError):
            return json.loads(line)
    return None


# ------------------------------------------------------------------------------------------------- workers

def worker_main(args: list[str]) -> dict:
    """``--worker readers|model|datasets ...``: one JSON result (printed as the last line when run as a script)."""
    parser = argparse.ArgumentParser(prog="paper_dry_run.py --worker")
    parser.add_argument("--worker", required=True, choices=("readers", "model", "datasets"))
    parser.add_argument("--dataset", required=True, choices=PAPER_DATASETS)
    parser.add_argument("--root", required=True)
    parser.add_argument("--gan-root", help="the data root the GAN stages read (default: --root)")
    parser.add_argument("--checkpoint", help="datasets: the exported generator")
    parser.add_argument("--gan-options", nargs="*", default=[])
    parser.add_argument("--timed-steps", type=int, default=2)
    parser.add_argument("--kinds", nargs="*", default=None, help="datasets: config kinds (real, pool, ...)")
    parser.add_argument("--train-items", type=int, default=3, help="datasets: training items read per config")
    opts = parser.parse_args(args)
    if opts.worker == "readers":
        return check_readers(opts)
    if opts.worker == "model":
        return model_costs(opts)
    return check_segmenter_datasets(opts.dataset, opts.root, opts.checkpoint, opts.kinds, opts.train_items)


def _gan_config(dataset: str, root: str, options: list[str]):
    """The resolved config of ``dpsims-aug train DATASET --data-root ROOT --cfg-options OPTIONS`` (the trainer's own
    ``build_config``, so whatever it wires, e.g. instance edges, is wired here too)."""
    from train_gan.train import build_config, parse_args

    return build_config(parse_args([dataset, "--data-root", root, "--cfg-options", *options]))


def _item_summary(item: dict) -> dict:
    out = {}
    for key, value in item.items():
        if hasattr(value, "shape"):
            out[key] = list(value.shape)
    if "label" in item:
        label = item["label"]
        out["label_ids"] = [int(label[label != 255].min()) if (label != 255).any() else None, int(label.max())]
    return out


def check_readers(opts) -> dict:
    """The GAN config's training and held-out datasets (item 0 each), generate's listing of the training maps, and
    the mmseg datasets of the ``_real`` configs."""
    from mmengine.registry import DATASETS

    import train_gan  # noqa: F401 - registers SegPairDataset
    from dpsims_aug.data.readers import find_label_maps
    from train_gan.hooks import held_out_dataset

    result: dict = {"gan": {}}
    gan_root = opts.gan_root or opts.root
    try:
        cfg = _gan_config(opts.dataset, gan_root, opts.gan_options)
        train = DATASETS.build(cfg.train_dataloader.dataset)
        held_out = DATASETS.build(held_out_dataset(type("R", (), {"cfg": cfg})(), None))
        result["gan"] = {"ok": True, "train_pairs": len(train), "val_pairs": len(held_out),
                         "train_item": _item_summary(train[0]), "val_item": _item_summary(held_out[0])}
    except Exception as err:  # noqa: BLE001 - recorded
        result["gan"] = {"ok": False, "error": f"{type(err).__name__}: {err}"[:1000]}
    try:
        refs = find_label_maps(gan_root, split="train")
        result["generate_listing"] = {"ok": True, "maps": [r.key for r in refs],
                                      "with_instance_map": sum(getattr(r, "instance_path", None) is not None
                                                               for r in refs)}
    except Exception as err:  # noqa: BLE001
        result["generate_listing"] = {"ok": False, "error": f"{type(err).__name__}: {err}"[:1000]}
    result["mmseg"] = check_segmenter_datasets(opts.dataset, opts.root, None, ["real"], opts.train_items)["configs"]
    result["ok"] = (result["gan"]["ok"] and result["generate_listing"]["ok"]
                    and all(c["ok"] for c in result["mmseg"].values()))
    return result


def segmenter_configs(dataset: str, kinds: list[str] | None = None) -> list[Path]:
    """The shipped ``augment/`` configs of a paper dataset (of the given kinds: the name's last part)."""
    folder = REPO / "augment" / SEG_FOLDERS[dataset]
    return sorted(p for p in folder.glob("*.py") if kinds is None or p.stem.rsplit("_", 1)[1] in kinds)


def _pipeline_steps(pipeline, step_type: str) -> list[int]:
    return [i for i, step in enumerate(pipeline or []) if step.get("type") == step_type]


def generator_options(cfg, checkpoint: str | None) -> list[str]:
    """``--cfg-options`` that point a segmenter config's generator at ``checkpoint`` on the CPU with ``prob=1``
    (every sample synthesized): ``DPSIMSAugment`` / ``DPSIMSSelect`` steps of the training pipeline and a
    ``DPSIMSDataPreprocessor``."""
    if checkpoint is None:
        return []
    out = []
    pipeline = cfg.train_dataloader.dataset.get("pipeline")
    for i in _pipeline_steps(pipeline, "DPSIMSAugment"):
        out += [f"train_dataloader.dataset.pipeline.{i}.{k}" for k in (f"checkpoint={checkpoint}", "device=cpu",
                                                                        "prob=1.0")]
    for i in _pipeline_steps(pipeline, "DPSIMSSelect"):
        out += [f"train_dataloader.dataset.pipeline.{i}.checkpoint={checkpoint}",
                f"train_dataloader.dataset.pipeline.{i}.prob=1.0"]
    if cfg.model.get("data_preprocessor", {}).get("type") == "DPSIMSDataPreprocessor":
        out.append(f"model.data_preprocessor.checkpoint={checkpoint}")
    return out


def shrink_options(cfg, crop: tuple[int, int]) -> list[str]:
    """``--cfg-options`` that train a segmenter config at ``crop`` (height, width) instead of its own size: every
    ``RandomResize`` / ``RandomCrop`` of the training pipelines (nested mixes included) and the data preprocessor's
    padding size (``--reduced``: the pipeline and the model stay those of the config, only smaller)."""
    h, w = crop
    out = [f"model.data_preprocessor.size=({h},{w})"]

    def walk(node, where: str) -> None:
        if isinstance(node, dict) or hasattr(node, "items"):
            for key, value in node.items():
                if key == "pipeline" and isinstance(value, (list, tuple)):
                    for i, step in enumerate(value):
                        if step.get("type") == "RandomResize":
                            out.append(f"{where}.pipeline.{i}.scale=({4 * w},{h})")
                        elif step.get("type") == "RandomCrop":
                            out.append(f"{where}.pipeline.{i}.crop_size=({h},{w})")
                elif isinstance(value, dict) or hasattr(value, "items"):
                    walk(value, f"{where}.{key}")

    walk(cfg.train_dataloader.dataset, "train_dataloader.dataset")
    return out


def check_segmenter_datasets(dataset: str, root: str, checkpoint: str | None, kinds: list[str] | None,
                             train_items: int = 3) -> dict:
    """Every mmseg dataset (training, validation) of the dataset's ``augment/`` configs, with the data root set and
    the generator pointed at ``checkpoint``: built, and a few training items and validation item 0 read through the
    pipelines."""
    from mmengine.registry import init_default_scope

    from dpsims_aug.mm.runner import build_segmenter_config

    configs: dict[str, dict] = {}
    seen: dict[str, str] = {}  # the datasets of the configs (models differ, datasets repeat) -> first config
    for path in segmenter_configs(dataset, kinds):
        record: dict = {}
        try:
            cfg = build_segmenter_config(str(path), data_root=root)
            options = generator_options(cfg, checkpoint)
            if options:
                cfg = build_segmenter_config(str(path), data_root=root, cfg_options=options)
            signature = json.dumps([cfg.train_dataloader.dataset.to_dict(), cfg.val_dataloader.dataset.to_dict(),
                                    (cfg.model.get("data_preprocessor") or {}).get("type")], sort_keys=True,
                                   default=str)
            if signature in seen:
                configs[path.stem] = {"ok": configs[seen[signature]]["ok"], "same_datasets_as": seen[signature]}
                continue
            seen[signature] = path.stem
            init_default_scope("mmseg")
            from mmseg.registry import DATASETS

            for key in ("train_dataloader", "val_dataloader"):
                built = DATASETS.build(copy.deepcopy(cfg[key].dataset))
                items = [built[i] for i in range(min(len(built), train_items if key == "train_dataloader" else 1))]
                seg = [item["data_samples"].gt_sem_seg.data for item in items]
                record[key] = {"len": len(built), "inputs": [list(item["inputs"].shape) for item in items],
                               "label_max_not_ignore": max(int(s[s != 255].max()) if (s != 255).any() else -1
                                                           for s in seg),
                               "classes": len(built.metainfo["classes"])}
                if record[key]["label_max_not_ignore"] >= record[key]["classes"]:
                    raise ValueError(f"{key}: label {record[key]['label_max_not_ignore']} beyond the "
                                     f"{record[key]['classes']} classes")
            record["ok"] = True
        except Exception as err:  # noqa: BLE001 - recorded
            record.update(ok=False, error=f"{type(err).__name__}: {err}"[:1500])
        configs[path.stem] = record
    return {"configs": configs, "ok": all(r["ok"] for r in configs.values())}


def model_costs(opts) -> dict:
    """Parameters, GFLOPs (G forward at the preset's size, one training step at batch 1), G images/s (fp32, batch
    1) and seconds per training step (batch 1) of the config's model; OASIS's GFLOPs at the same size."""
    import resource

    import torch
    from mmengine.registry import MODELS

    import train_gan  # noqa: F401

    cfg = _gan_config(opts.dataset, opts.gan_root or opts.root, opts.gan_options)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    out = _model_summary(opts.dataset, cfg, model)
    crop = cfg.train_dataloader.dataset.crop_size  # the training resolution: the preset's image size in the paper
    h, w = (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))
    out["image_size_hw"] = [h, w]
    out["preset_image_size_hw"] = list(model.generator_config.image_size)
    out.update(_generator_costs(model.generator, model.generator_config, h, w))
    out.update(_train_step_costs(cfg, model, opts.timed_steps))
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def _model_summary(dataset: str, cfg, model) -> dict:
    """The model's config, generator preset and settings, discriminator backbone and parameter counts (millions)."""
    import torch

    g, d = model.generator, model.discriminator
    gcfg = model.generator_config
    return {
        "config": f"train_gan/configs/{dataset}.py", "torch_threads": torch.get_num_threads(),
        "generator_preset": dict(cfg.model.generator).get("preset"),
        "use_instance_edges": gcfg.use_instance_edges, "num_classes": gcfg.num_classes,
        "discriminator_backbone": model.discriminator_config.backbone,
        "params_m": {
            "generator": sum(p.numel() for p in g.parameters()) / 1e6,
            "generator_trainable": sum(p.numel() for p in g.parameters() if p.requires_grad) / 1e6,
            "discriminator_trainable": sum(p.numel() for p in d.trainable_parameters()) / 1e6,
            "discriminator_frozen": sum(p.numel() for p in d.backbone.parameters()) / 1e6,
        },
    }


def _generator_costs(g, gcfg, h: int, w: int) -> dict:
    """GFLOPs of a G forward at ``h`` x ``w`` and of OASIS's (on the meta device), and G images/s (fp32, batch 1);
    leaves G in training mode."""
    import torch
    from oasis_reference import OASISGenerator
    from torch.utils.flop_counter import FlopCounterMode

    out: dict = {}
    labels = torch.randint(0, gcfg.num_classes, (1, h // 16, w // 16)).repeat_interleave(16, 1).repeat_interleave(16, 2)
    noise = g.sample_noise([0])
    edges = torch.zeros(1, 1, h, w) if gcfg.use_instance_edges else None
    g.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        g(labels, noise, edges)
    out["gflops_generator_forward"] = counter.get_total_flops() / 1e9
    with torch.device("meta"):
        oasis = OASISGenerator(gcfg.num_classes, use_instance_edges=gcfg.use_instance_edges).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            oasis(labels.to("meta"), torch.zeros(1, 64), edges.to("meta") if edges is not None else None)
    out["gflops_oasis_forward_same_size"] = counter.get_total_flops() / 1e9
    fast = copy.deepcopy(g).prepare_for_inference(channels_last=True)
    times = []
    with torch.inference_mode():
        for _ in range(1 + 3):
            start = time.perf_counter()
            fast(labels, noise, edges)
            times.append(time.perf_counter() - start)
    out["generator_images_per_s_fp32_b1"] = 1.0 / statistics.median(times[1:])
    out["generator_seconds_all"] = times
    del fast
    g.train()
    return out


def _train_step_costs(cfg, model, timed_steps: int) -> dict:
    """GFLOPs and seconds of one training step at batch 1 (a warm-up step first, then ``timed_steps`` timed)."""
    from mmengine.dataset import default_collate
    from mmengine.registry import DATASETS
    from torch.utils.flop_counter import FlopCounterMode

    from train_gan.optim import PerModuleOptimWrapperConstructor

    # One training step at batch 1 on a real sample of the training set (the dataset's own keys, edges included).
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = default_collate([dataset[0]])
    optim = PerModuleOptimWrapperConstructor(
        {k: v for k, v in cfg.optim_wrapper.items() if k != "constructor"})(model)
    model.train()
    out: dict = {}
    step_times = []
    start = time.perf_counter()
    model.train_step(batch, optim)  # warm-up
    step_times.append(time.perf_counter() - start)
    with FlopCounterMode(display=False) as counter:
        model.train_step(batch, optim)
    out["gflops_train_step_b1"] = counter.get_total_flops() / 1e9
    for _ in range(timed_steps):
        start = time.perf_counter()
        model.train_step(batch, optim)
        step_times.append(time.perf_counter() - start)
    out["train_step_size_hw"] = list(batch["label"].shape[-2:])
    out["train_step_seconds_b1"] = statistics.median(step_times[1:]) if len(step_times) > 1 else step_times[0]
    out["train_step_seconds_all"] = step_times  # the first is the warm-up
    return out


# ------------------------------------------------------------------------------------------------ one dataset

def _hook_index(dataset: str, hook_type: str) -> int:
    from mmengine.config import Config

    cfg = Config.fromfile(str(REPO / "train_gan" / "configs" / f"{dataset}.py"))
    return next(i for i, h in enumerate(cfg.custom_hooks) if h["type"] == hook_type)


def gan_options(dataset: str, reduced: bool) -> list[str]:
    grid, evaluation = _hook_index(dataset, "SampleGridHook"), _hook_index(dataset, "GANEvaluationHook")
    options = [*GAN_CPU_OPTIONS, f"custom_hooks.{grid}.interval=1", f"custom_hooks.{grid}.num_images=2",
               f"custom_hooks.{evaluation}.interval=2", f"custom_hooks.{evaluation}.num_images=2"]
    if reduced:
        options = [o for o in options if not o.startswith("model.discriminator.weights")]
        options += [*GAN_REDUCED_OPTIONS, "model.discriminator.weights=None",
                    f"train_dataloader.dataset.crop_size={REDUCED_CROPS[dataset]}"]
    return options


def coco_gan_view(root: Path, view: Path) -> Path:
    """A copy of ``root`` (hard links) without mmseg's ``*_labelTrainIds.png``: what the GAN stages read when its
    reader takes those files for stuffthingmaps (the finding the ``readers`` stage records)."""
    if view.exists():
        shutil.rmtree(view)
    for path in root.rglob("*"):
        if path.is_file() and not path.name.endswith("_labelTrainIds.png"):
            target = view / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return view


def _file_mb(path: Path) -> float | None:
    return round(path.stat().st_size / 2**20, 2) if path.is_file() else None


def _iteration_times(work: Path) -> list[dict]:
    """``time`` and ``data_time`` per logged iteration of every run in a GAN work dir (mmengine's scalars.json)."""
    out = []
    for scalars in sorted(work.glob("*/vis_data/scalars.json")):
        for line in scalars.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if "time" in record and "iter" in record:
                    out.append({"iter": record["iter"], "time": record["time"], "data_time": record.get("data_time")})
    return out


def _trained(work: Path, iters: int) -> Callable[[dict], str | None]:
    """The check of a GAN run to ``iters`` iterations in ``work``: checkpoint, export, sample grid, evaluation."""
    def check(_record):
        missing = [p for p in (work / f"iter_{iters}.pth", work / "generator_ema.safetensors") if not p.is_file()]
        grids = list(work.glob("*/samples/iter_*.png"))
        evaluations = list(work.glob("*/metrics.jsonl"))
        if missing:
            return f"missing {', '.join(p.name for p in missing)}"
        if not grids or not evaluations:
            return "no sample grid or no evaluation record"
        return None
    return check


class _DatasetRun:
    """The stages of one paper dataset in ``folder``, in order, with the paths they share and the dataset's record."""

    # A plain class, not a dataclass: the tests load this script without registering it in sys.modules, which
    # dataclasses need to resolve the postponed annotations.
    def __init__(self, dataset: str, folder: Path, reduced: bool, stages: Stages, options: list[str]) -> None:
        self.dataset = dataset
        self.folder = folder
        self.reduced = reduced
        self.stages = stages
        self.options = options  # the GAN stages' --cfg-options
        self.record: dict = {}
        self.root = folder / ROOT_NAMES[dataset]
        self.pool = Path(f"{self.root}_dpsims")  # where the _pool configs look
        self.work = folder / "gan"
        self.export = self.work / "export" / f"{dataset}_generator.safetensors"
        self.export_half = self.work / "export" / f"{dataset}_generator_half.safetensors"
        self.gan_root = self.root  # a view of it instead where the GAN reader refuses the data as written

    def write_data(self) -> None:
        """Remove an earlier run's data, pool and runs, write the dataset in its paper format and start the record."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in (self.root, self.pool, self.work, self.folder / "seg"):
            if stale.exists():
                shutil.rmtree(stale)
        start = time.perf_counter()
        summary = write_paper_dataset(self.root, self.dataset, n_train=2, n_val=2, seed=0,
                                      sizes=REDUCED_SIZES[self.dataset] if self.reduced else None)
        self.record = {
            "data": {"root": str(self.root), "seconds": round(time.perf_counter() - start, 2),
                     "classes": summary["classes"], "label_space_gan": GAN_LABEL_SPACES[self.dataset],
                     "splits": {s: {"pairs": len(v["files"]), "sizes_hw": sorted({tuple(f["size_hw"])
                                                                                  for f in v["files"]}),
                                    "classes_present": v["classes_present"]}
                                for s, v in summary["splits"].items()},
                     "files": sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())},
            "findings": [],
        }

    def stage_readers(self) -> bool:
        """1. The readers (GAN, generate's listing, mmseg's _real datasets) on the dataset as written; returns whether
        the GAN stages can read it (directly or through a view)."""
        dataset, root, options = self.dataset, self.root, self.options
        readers = self.stages.worker("readers", ["--worker", "readers", "--dataset", dataset, "--root", str(root),
                                                 "--train-items", "1", "--gan-options", *options],
                                     check=lambda r: None if r["result"]["ok"] else "a reader refused the data")
        result = readers.get("result") or {}
        if dataset == "coco_stuff" and not result.get("gan", {}).get("ok", True) and "labelTrainIds" in str(result):
            self.record["findings"].append(
                "COCO-Stuff as mmseg's converter leaves it (annotations/<split>2017/ holding <id>.png stuffthingmaps "
                "and <id>_labelTrainIds.png side by side, what the augment/ configs read): the GAN reader "
                "(dpsims_aug.data.readers, coco_stuff format) lists the *_labelTrainIds.png files as label maps too, "
                "so SegPairDataset refuses the folder ('label maps have no image') and generate would synthesize for "
                "them as if they held raw ids. The GAN stages below read a hard-linked view without them.")
            self.gan_root = coco_gan_view(root, self.folder / f"{ROOT_NAMES[dataset]}_gan_view")
            self.record["gan_root_workaround"] = str(self.gan_root)
            self.stages.worker("readers_gan_view", ["--worker", "readers", "--dataset", dataset, "--root", str(root),
                                                    "--gan-root", str(self.gan_root), "--gan-options", *options],
                               check=lambda r: None if r["result"]["gan"]["ok"] else "the GAN reader refused the view")
        # The GAN stages need the GAN's reader only (a failing mmseg reader is recorded, and its configs fail later).
        gan_readable = bool(result.get("gan", {}).get("ok")) or self.stages.ok("readers_gan_view")
        if not gan_readable:
            for name_ in ("model", "train"):
                self.stages.records[name_] = {"ok": None, "skipped": "the GAN reader refused the data"}
        return gan_readable

    def stage_model(self, timed_steps: int) -> None:
        """2. The model's costs at its true size (or the reduced one)."""
        self.stages.worker("model", ["--worker", "model", "--dataset", self.dataset, "--root", str(self.root),
                                     "--gan-root", str(self.gan_root), "--timed-steps", str(timed_steps),
                                     "--gan-options", *self.options])

    def stage_train(self, gan_readable: bool) -> None:
        """3.-4. Train two iterations (checkpoint, sample grids, an evaluation, the export), resume to three."""
        name = self.dataset  # the shipped GAN config's name
        base = ["train", name, "--data-root", str(self.gan_root), "--work-dir", str(self.work)]
        if gan_readable:
            self.stages.cli("train", [*base, "--max-iters", "2", "--cfg-options", *self.options],
                            check=_trained(self.work, 2))
        if not self.stages.skip("resume", ("train",)):
            self.stages.cli("resume", [*base, "--max-iters", "3", "--resume", "--cfg-options", *self.options],
                            check=_trained(self.work, 3))
        self.record["cli_iteration_times"] = _iteration_times(self.work)

    def stage_export(self) -> None:
        """5. Export the resumed checkpoint (fp32 and --half)."""
        export, export_half, checkpoint = self.export, self.export_half, self.work / "iter_3.pth"
        if not self.stages.skip("export", ("resume",)):
            self.stages.cli("export", ["export", str(checkpoint), "--out", str(export)],
                            check=lambda r: None if export.is_file() else "no export written")
            if self.stages.ok("export"):
                self.stages.cli("export_half", ["export", str(checkpoint), "--out", str(export_half), "--half"])

    def stage_generate(self) -> None:
        """6. Generate the offline pool from the training maps (where the _pool configs look: <root>_dpsims)."""
        pool = self.pool
        if not self.stages.skip("generate", ("export",)):
            self.stages.cli("generate", ["generate", "--labels", str(self.gan_root), "--split", "train", "--n", "1",
                                         "--checkpoint", str(self.export), "--out", str(pool), "--no-progress",
                                         "--grid", "--batch-size", "1"],
                            check=lambda r: None if len(list((pool / "images").rglob("*.jpg"))) == 2
                            else "not 2 pool images")

    def stage_datasets(self) -> None:
        """7. Every mmseg dataset of the dataset's augment/ configs (pool, online, batch), items read."""
        if not self.stages.skip("datasets", ("generate",)):
            self.stages.worker("datasets", ["--worker", "datasets", "--dataset", self.dataset, "--root",
                                            str(self.root), "--checkpoint", str(self.export), "--train-items",
                                            "1" if self.reduced else "3"],
                               check=lambda r: None if r["result"]["ok"] else "datasets failed: " + ", ".join(
                                   k for k, v in r["result"]["configs"].items() if not v["ok"]))

    def stage_segmenters(self, segmenter: str) -> None:
        """8. One segmenter iteration of the _pool, _online (and _batch) configs, then their validation."""
        from mmengine.config import Config

        dataset = self.dataset
        for kind in ("pool", "online", "batch"):
            config = REPO / "augment" / SEG_FOLDERS[dataset] / f"{segmenter}_{SEG_SUFFIXES[dataset]}_{kind}.py"
            if not config.is_file():
                continue
            if self.stages.skip(f"seg_{kind}", ("generate",)):
                continue
            seg_cfg = Config.fromfile(str(config))
            seg_options = [*SEG_CPU_OPTIONS, *generator_options(seg_cfg, str(self.export))]
            if self.reduced:
                seg_options += shrink_options(seg_cfg, REDUCED_SEG_CROPS[dataset])
            argv = ["seg-train", config.stem, "--data-root", str(self.root), "--work-dir",
                    str(self.folder / "seg" / kind), "--max-iters", "1"]
            if self.reduced:
                argv.append("--no-validate")
            self.stages.cli(f"seg_{kind}", [*argv, "--cfg-options", *seg_options])

    def finish(self, keep_checkpoints: bool) -> dict:
        """The record completed: file sizes, the stages, whether all that ran passed and a summary (checkpoints
        removed unless ``keep_checkpoints``)."""
        work, pool, record, records = self.work, self.pool, self.record, self.stages.records
        record["sizes_mb"] = {
            "iter_2.pth": _file_mb(work / "iter_2.pth"), "iter_3.pth": _file_mb(work / "iter_3.pth"),
            "generator_ema.safetensors (training export)": _file_mb(work / "generator_ema.safetensors"),
            "export fp32": _file_mb(self.export), "export --half": _file_mb(self.export_half),
            "pool": round(sum(p.stat().st_size for p in pool.rglob("*") if p.is_file()) / 2**20, 2)
            if pool.is_dir() else None,
        }
        if not keep_checkpoints:
            for path in work.glob("iter_*.pth"):
                path.unlink()
        record["stages"] = records
        ran = [r for r in records.values() if r.get("ok") is not None]
        record["passed"] = bool(ran) and all(r["ok"] for r in records.values())
        record["summary"] = {
            "stages": {k: ("skipped" if v.get("ok") is None else "ok" if v["ok"] else "FAILED")
                       for k, v in records.items()},
            "peak_rss_gib": {k: v["peak_rss_gib"] for k, v in records.items() if v.get("peak_rss_gib")},
            "seconds": {k: v["seconds"] for k, v in records.items() if "seconds" in v},
        }
        return record


def run_dataset(dataset: str, folder: Path, segmenter: str, reduced: bool, in_process: bool,
                keep_checkpoints: bool, env: dict[str, str], timed_steps: int) -> dict:
    """Every stage for one paper dataset in ``folder``; returns its record."""
    print(f"{dataset}:", flush=True)
    run = _DatasetRun(dataset, folder, reduced, Stages(folder, in_process, env), gan_options(dataset, reduced))
    run.write_data()
    gan_readable = run.stage_readers()
    if gan_readable:
        run.stage_model(timed_steps)
    run.stage_train(gan_readable)
    run.stage_export()
    run.stage_generate()
    run.stage_datasets()
    run.stage_segmenters(segmenter)
    return run.finish(keep_checkpoints)


# ------------------------------------------------------------------------------------------------ the card

def gpu_projection(model: dict, iters: int = 100_000, global_batch: int = 32) -> dict:
    """FLOPs-based H100 hours of the paper schedule (``global_batch`` x ``iters`` samples at the measured FLOPs per
    sample of a training step) and generation images/s, at :data:`ASSUMED_MFU` of :data:`GPU_PEAK_TFLOPS`."""
    total = model["gflops_train_step_b1"] * 1e9 * global_batch * iters
    hours = {f"mfu_{m:.2f}": total / (GPU_PEAK_TFLOPS * 1e12 * m) / 3600 for m in ASSUMED_MFU}
    images = {f"mfu_{m:.2f}": GPU_PEAK_TFLOPS * 1e12 * m / (model["gflops_generator_forward"] * 1e9)
              for m in ASSUMED_MFU}
    return {"schedule": f"{iters} iterations x global batch {global_batch}", "total_pflops": total / 1e15,
            "h100_hours": hours, "generate_images_per_s": images, "peak_tflops": GPU_PEAK_TFLOPS}


def cost_card(results: dict) -> str:
    """The cost card's table (markdown) from a results record."""
    rows = ["| preset (config) | G params (M) | D trainable / frozen (M) | GFLOPs per image (G fwd) | OASIS GFLOPs, "
            "same size | CPU images/s (fp32, b1) | CPU s/iter (train step, b1) | GFLOPs per train step (b1) | "
            "H100 hours, 100k x 32 (MFU 40% .. 30%) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for dataset, record in results.get("datasets", {}).items():
        model = (record.get("stages", {}).get("model") or {}).get("result")
        if not model:
            continue
        p = model["params_m"]
        gpu = gpu_projection(model)["h100_hours"]
        h, w = model["image_size_hw"]
        rows.append(f"| {dataset} ({h}x{w}) | {p['generator']:.1f} | {p['discriminator_trainable']:.1f} / "
                    f"{p['discriminator_frozen']:.1f} | {model['gflops_generator_forward']:.0f} | "
                    f"{model['gflops_oasis_forward_same_size']:.0f} | {model['generator_images_per_s_fp32_b1']:.2f} | "
                    f"{model['train_step_seconds_b1']:.1f} | {model['gflops_train_step_b1']:.0f} | "
                    f"{gpu['mfu_0.40']:.1f} .. {gpu['mfu_0.30']:.1f} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------ main

def _git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "modified_files": git("status", "--porcelain").splitlines()}


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--worker``, hidden, is handled by :func:`worker_main` before parsing)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(PAPER_DATASETS), choices=PAPER_DATASETS)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where data, runs and logs go (default: work_dirs/benchmarks/paper_dry_run)")
    parser.add_argument("--segmenter", default="segformer_mit-b0",
                        help="segmenter model of the augment configs run (default segformer_mit-b0)")
    parser.add_argument("--reduced", action="store_true",
                        help="tiny generator, random Lite0 discriminator, 64..128 px images, in this process")
    parser.add_argument("--in-process", action="store_true", help="run the stages in this process (no peak RSS)")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep the GAN's iter_N.pth (about 2 GB each)")
    parser.add_argument("--timed-steps", type=int, default=2, help="timed training steps of the model stage")
    parser.add_argument("--card", action="store_true",
                        help="print the cost card table of the committed results (or of --out) and exit")
    add_output_args(parser, NAME)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    words = list(argv if argv is not None else sys.argv[1:])
    if "--worker" in words:
        print(json.dumps(worker_main(words)))
        return 0
    args = parser.parse_args(words)
    if args.card:  # the committed results unless --out names others
        print(cost_card(json.loads((args.out or RESULTS / NAME).read_text())))
        return 0
    out = output_path(args, NAME)
    work = args.work_dir or WORK / "paper_dry_run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    started = datetime.datetime.now(datetime.timezone.utc)
    results = _results_header(args, argv, started)
    for dataset in args.datasets:
        results["datasets"][dataset] = run_dataset(
            dataset, work / dataset, args.segmenter, args.reduced, args.in_process or args.reduced,
            args.keep_checkpoints, env, args.timed_steps)
        model = (results["datasets"][dataset]["stages"].get("model") or {}).get("result")
        if model and not args.reduced:
            results["datasets"][dataset]["gpu_projection"] = gpu_projection(model)
        results["machine"]["loadavg_end"] = machine_info()["loadavg"]
        write_results(out, results)  # after every dataset: a long run keeps what it has
    results["seconds"] = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1)
    write_results(out, results)
    _print_report(out, results, args.reduced)
    return 0 if all(r["passed"] for r in results["datasets"].values()) else 1


def _results_header(args: argparse.Namespace, argv: list[str] | None, started: datetime.datetime) -> dict:
    """The results record before any dataset ran: command, date, machine, git state and settings."""
    return {
        "benchmark": "paper_dry_run",
        "command": shlex.join(["python", "benchmarks/speed/paper_dry_run.py",
                               *(argv if argv is not None else sys.argv[1:])]),
        "date_utc": started.isoformat(timespec="seconds"),
        "machine": machine_info(omp_num_threads=os.environ.get("OMP_NUM_THREADS")),
        "git": _git_state(),
        "settings": {"reduced": args.reduced, "segmenter": args.segmenter,
                     "in_process": args.in_process or args.reduced,
                     "gan_options": {d: gan_options(d, args.reduced) for d in args.datasets},
                     "segmenter_options": SEG_CPU_OPTIONS,
                     "gpu_projection_assumptions": {
                         "peak_tflops": GPU_PEAK_TFLOPS, "mfu": list(ASSUMED_MFU),
                         "note": "H100 SXM dense bf16 peak at an assumed model-FLOPs utilization; FLOPs are "
                                 "FlopCounterMode's (matmuls, convolutions, attention; no elementwise ops). An "
                                 "estimate until benchmarks/speed/gpu_check.py runs on a GPU."}},
        "datasets": {},
    }


def _print_report(out: Path, results: dict, reduced: bool) -> None:
    """Where the results went, each dataset's outcome and findings, and (at true size) the cost card."""
    print(f"\nwrote {out}")
    for dataset, record in results["datasets"].items():
        failed = [k for k, v in record["stages"].items() if v.get("ok") is False]
        skipped = [k for k, v in record["stages"].items() if v.get("ok") is None]
        print(f"{dataset}: {'passed' if record['passed'] else 'FAILED'}"
              + (f"; failed: {', '.join(failed)}" if failed else "")
              + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
        for finding in record["findings"]:
            print(f"  finding: {finding}")
    if not reduced:
        print(cost_card(results))


if __name__ == "__main__":
    sys.exit(main())
