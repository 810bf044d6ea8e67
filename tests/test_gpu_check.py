"""Issue 28 (4): the GPU check is ready to run: its smoke mode runs every part on the CPU with tiny sizes and writes
the JSON a GPU run writes; without a GPU the real run refuses rather than record CPU numbers as a GPU's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "speed" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_smoke_run_writes_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--smoke", "--device", "cpu", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["smoke"] is True and record["machine"]["device"] == "cpu"
    (step,) = record["train_step"]
    assert step["seconds_per_iter_median"] > 0 and step["precision"] == "fp32"
    assert {(r["dtype"], tuple(r["size_hw"])) for r in record["generate"]} == {
        (d, s) for d in ("fp32", "bf16") for s in ((64, 64), (64, 128))}
    batch = record["batch_synthesis"]
    assert batch["plain"]["seconds_per_iter_median"] > 0 and batch["dpsims_batch"]["seconds_per_iter_median"] > 0
    assert batch["synthesis_images_per_s"]["batched"] > 0 and batch["replaced_per_batch"] == 1


def test_without_a_gpu_the_real_check_refuses(capsys):
    if torch.cuda.is_available():
        return
    assert gpu_check.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
