"""The GPU check: one command that measures what only a GPU can tell, writing one JSON.

    python benchmarks/speed/gpu_check.py                      # on a CUDA machine; about 5 minutes on one H100
    python benchmarks/speed/gpu_check.py --smoke              # tiny sizes on the CPU: checks the script itself runs

Nothing needs a network or a trained model: the paper's ConvNeXt-L discriminator and every generator run with
random weights (their cost does not depend on the values). Three parts:

1. ``train_step``: the ``ade20k`` GAN config's training step (D update + G update + EMA) at batch 4, 256x256, in
   fp32 and with AMP bf16 (``AmpOptimWrapper(dtype='bfloat16')``): seconds per iteration (median), peak memory.
2. ``generate``: ``Synthesizer`` throughput of the ``ade20k`` generator preset in fp32 and bf16, at 256x256 and
   256x512 (H x W), batch 16: images per second.
3. ``batch_synthesis``: a SegFormer-B0 (random init) training step at 512x512, batch 8, with the plain
   ``SegDataPreProcessor`` and with ``DPSIMSDataPreprocessor`` rendering half the batch in one bf16 forward; plus
   the worker transform's way, the same 4 images rendered one at a time (batch 1): the overhead per iteration and
   the images-per-second ratio of batched to per-sample synthesis (issue target: >= 3x on a GPU).

Results: ``work_dirs/benchmarks/gpu_check.json``; ``--update-results`` writes ``benchmarks/results/gpu_check.json``
(to commit), ``--out`` any path. On a CPU without ``--smoke`` it refuses: the numbers would not be a GPU's.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py, jobs.py
from common import REPO, add_output_args, machine_info, output_path, write_results  # noqa: E402

NAME = "gpu_check.json"


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, steps: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _peak_gib(device) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def check_train_step(device, size: int, batch: int, steps: int, amp: bool) -> dict:
    """The ade20k config's training step with random ConvNeXt-L weights."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS

    import train_gan  # noqa: F401 - registries
    from train_gan.optim import PerModuleOptimWrapperConstructor

    cfg = Config.fromfile(str(REPO / "train_gan/configs/ade20k.py"))
    model_cfg = cfg.model.to_dict()
    model_cfg["discriminator"] = {**model_cfg["discriminator"], "weights": None}
    model = MODELS.build(model_cfg).to(device)
    wrappers = {k: dict(v) for k, v in cfg.optim_wrapper.items() if k != "constructor"}
    if amp:
        for name in ("generator", "discriminator"):
            wrappers[name].update(type="AmpOptimWrapper", dtype="bfloat16")
    optim = PerModuleOptimWrapperConstructor(wrappers)(model)
    gen = torch.Generator().manual_seed(0)
    data = {"image": torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen),
            "label": torch.randint(0, model.label_space.num_classes, (batch, size, size), generator=gen)}
    model.train()
    _reset_peak(device)
    times = _timed(functools.partial(model.train_step, data, optim), device, steps)
    result = dict(batch=batch, size_hw=[size, size], precision="amp_bf16" if amp else "fp32",
                  seconds_per_iter_median=round(statistics.median(times), 4),
                  seconds_per_iter=[round(t, 4) for t in times], peak_memory_gib=_peak_gib(device))
    del model, optim
    return result


def _random_generator_file(preset: str, folder: Path, image_size=None) -> Path:
    """A generator of ``preset`` with random weights, saved as an inference checkpoint."""
    import torch

    from dpsims_aug.checkpoint import GeneratorCheckpoint, save_generator_checkpoint
    from dpsims_aug.labels import get_label_space
    from dpsims_aug.models import DPSIMSGenerator, generator_config

    space = get_label_space("ade20k")
    overrides = {} if image_size is None else {"image_size": image_size}
    config = generator_config(preset, num_classes=space.num_classes, ignore_index=space.ignore_index, **overrides)
    torch.manual_seed(0)
    generator = DPSIMSGenerator(config).eval()
    path = folder / f"{preset}_random.safetensors"
    save_generator_checkpoint(path, GeneratorCheckpoint(state_dict=generator.state_dict(),
                                                        generator_config=config.to_dict(), label_space=space))
    return path


def check_generate(device, checkpoint: Path, sizes: list[tuple[int, int]], batch: int, steps: int) -> list[dict]:
    """Images per second of the Synthesizer per dtype and size."""
    import numpy as np

    from dpsims_aug.synthesis import Synthesizer

    rows = []
    for dtype in ("fp32", "bf16"):
        synth = Synthesizer.from_checkpoint(checkpoint, device=device, dtype=dtype, batch_size=batch)
        for h, w in sizes:
            rng = np.random.default_rng(0)
            labels = rng.integers(0, synth.label_space.num_classes, size=(batch, h, w)).astype(np.uint8)
            seeds = list(range(batch))
            _reset_peak(device)
            times = _timed(functools.partial(synth.synthesize, labels, seeds), device, steps)
            rows.append(dict(dtype=dtype, size_hw=[h, w], batch=batch,
                             images_per_s=round(batch / statistics.median(times), 2),
                             peak_memory_gib=_peak_gib(device)))
        del synth
    return rows


def check_batch_synthesis(device, checkpoint: Path, size: int, batch: int, steps: int) -> dict:
    """A SegFormer-B0 training step with the plain and the DP-SIMS preprocessor; per-sample synthesis for
    comparison."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    import dpsims_aug.mm.batch_synthesis  # noqa: F401 - registers DPSIMSDataPreprocessor
    from dpsims_aug.mm.batch_synthesis import synthesis_size
    from dpsims_aug.synthesis import Synthesizer

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(REPO / "augment/ade20k/segformer_mit-b0_ade20k-512x512_batch.py"))
    model_cfg = cfg.model.to_dict()
    model_cfg["backbone"]["init_cfg"] = None  # random init: nothing downloaded
    model_cfg["data_preprocessor"].update(checkpoint=str(checkpoint), size=(size, size),
                                          synthesis_dtype="bf16" if device.type == "cuda" else "fp32")
    space_classes = model_cfg["decode_head"]["num_classes"]
    rng = np.random.default_rng(0)

    def batch_data(marked: bool) -> dict:
        inputs, samples = [], []
        for i in range(batch):
            lab = rng.integers(0, space_classes, size=(size, size)).astype(np.uint8)
            sample = SegDataSample(gt_sem_seg=PixelData(data=torch.as_tensor(lab[None]).long()))
            replace = marked and i % 2 == 0
            sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                                     dpsims_seed=i if replace else -1, dpsims_labels=lab if replace else None))
            samples.append(sample)
            inputs.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8))
        return dict(inputs=inputs, data_samples=samples)

    rows = {}
    for name, preprocessor in (("plain", "SegDataPreProcessor"), ("dpsims_batch", "DPSIMSDataPreprocessor")):
        mc = json.loads(json.dumps(model_cfg))
        mc["data_preprocessor"]["type"] = preprocessor
        if preprocessor == "SegDataPreProcessor":
            for key in ("checkpoint", "synthesis_dtype"):
                mc["data_preprocessor"].pop(key)
        model = MODELS.build(mc).to(device)
        optim = build_optim_wrapper(model, dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=6e-5)))
        data = batch_data(marked=True)
        _reset_peak(device)
        times = _timed(functools.partial(model.train_step, data, optim), device, steps)
        rows[name] = dict(seconds_per_iter_median=round(statistics.median(times), 4),
                          peak_memory_gib=_peak_gib(device))
        del model, optim
    rows["overhead_seconds_per_iter"] = round(rows["dpsims_batch"]["seconds_per_iter_median"]
                                              - rows["plain"]["seconds_per_iter_median"], 4)

    # Synthesis alone: the batch's replaced images in one forward vs one at a time (the worker transform's way).
    synth = Synthesizer.from_checkpoint(checkpoint, device=device, dtype="bf16" if device.type == "cuda" else "fp32",
                                        batch_size=1)
    h, w = synthesis_size(size, size, tuple(synth.config.image_size), synth.stride)
    n = batch // 2
    labels = rng.integers(0, space_classes, size=(n, h, w)).astype(np.uint8)
    per_sample = _timed(lambda: [synth.synthesize(labels[i:i + 1], [i]) for i in range(n)], device, steps)
    synth.batch_size = n
    batched = _timed(lambda: synth.synthesize(labels, list(range(n))), device, steps)
    rows["synthesis_images_per_s"] = dict(per_sample=round(n / statistics.median(per_sample), 2),
                                          batched=round(n / statistics.median(batched), 2), size_hw=[h, w])
    rows["batched_over_per_sample"] = round(statistics.median(per_sample) / statistics.median(batched), 2)
    rows.update(size_hw=[size, size], batch=batch, replaced_per_batch=n)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and few steps on whatever device there is (checks the script runs)")
    parser.add_argument("--device", default=None, help="default: cuda if available")
    add_output_args(parser, NAME)
    args = parser.parse_args(argv)

    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.smoke:
        print("error: no CUDA device: the GPU check measures a GPU (use --smoke to test the script on the CPU)",
              file=sys.stderr)
        return 2
    if args.smoke:
        train = dict(size=64, batch=1, steps=1)
        gen = dict(sizes=[(64, 64), (64, 128)], batch=2, steps=1)
        seg = dict(size=64, batch=2, steps=1)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        train = dict(size=256, batch=4, steps=10)
        gen = dict(sizes=[(256, 256), (256, 512)], batch=16, steps=10)
        seg = dict(size=512, batch=8, steps=10)
    started = time.perf_counter()
    record: dict = dict(
        benchmark="GPU check: paper-scale training step, generate throughput, batched synthesis in a SegFormer step",
        command="python benchmarks/speed/gpu_check.py" + (" --smoke" if args.smoke else ""), smoke=args.smoke,
        machine=machine_info(device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                             cuda=torch.version.cuda),
    )
    record["train_step"] = [check_train_step(device, train["size"], train["batch"], train["steps"], amp=amp)
                            for amp in ((False, True) if device.type == "cuda" else (False,))]
    print(json.dumps(record["train_step"], indent=1), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        image_size = (64, 64) if args.smoke else None
        checkpoint = _random_generator_file("ade20k", Path(tmp), image_size)
        record["generate"] = check_generate(device, checkpoint, gen["sizes"], gen["batch"], gen["steps"])
        print(json.dumps(record["generate"], indent=1), flush=True)
        record["batch_synthesis"] = check_batch_synthesis(device, checkpoint, seg["size"], seg["batch"], seg["steps"])
        print(json.dumps(record["batch_synthesis"], indent=1), flush=True)
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = output_path(args, NAME)
    write_results(out, record)
    print(f"results: {out} ({record['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
