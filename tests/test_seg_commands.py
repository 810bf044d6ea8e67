"""Issue 29: configs found by name, the segmenter trained and tested by ``dpsims-aug`` itself (a real mmseg
Fast-SCNN with mmengine's Runner, no mmseg tools/), and a quiet console whose details go to the log file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmengine.config import Config

from dpsims_aug.cli import main
from dpsims_aug.config_names import ConfigNotFoundError, config_folder, find_config, list_configs
from dpsims_aug.data.writers import write_ade20k

REPO = Path(__file__).resolve().parents[1]
# 64x64 scenes decode in microseconds: worker processes would only cost start-up time here.
NO_WORKERS = [f"{loader}.{key}" for loader in ("train_dataloader", "val_dataloader", "test_dataloader")
              for key in ("num_workers=0", "persistent_workers=False")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seg") / "data"
    write_ade20k(root, n_train=6, n_val=3, size=(64, 64), seed=0)
    return root


def test_shipped_configs_are_found_by_name_and_paths_win():
    gan, seg = list_configs("gan"), list_configs("segmenter")
    assert {"embedded_small", "ade20k", "coco_stuff", "cityscapes"} <= set(gan)
    assert "fastscnn_embedded_pool" in seg and "segformer_mit-b0_ade20k-512x512_online" in seg
    assert not any("_base_" in p.parts for p in [*gan.values(), *seg.values()])
    assert find_config("embedded_small", "gan") == REPO / "train_gan/configs/embedded_small.py"
    assert find_config("fastscnn_embedded_real.py", "segmenter") == REPO / "augment/embedded/fastscnn_embedded_real.py"
    assert config_folder("segmenter") == REPO / "augment"
    from dpsims_aug.cli import _segmenter_config  # evaluate's and filter's segmenter options take names too

    assert _segmenter_config("fastscnn_embedded_real") == str(REPO / "augment/embedded/fastscnn_embedded_real.py")
    relative = Path("augment/embedded/fastscnn_embedded_real.py")
    assert find_config(REPO / relative, "segmenter") == REPO / relative  # a path is taken as given


def test_unknown_config_names_the_argument_and_the_closest_names():
    with pytest.raises(ConfigNotFoundError, match=r"fastscnn_embeded_pool.*did you mean fastscnn_embedded_pool"):
        find_config("fastscnn_embeded_pool", "segmenter")
    with pytest.raises(ConfigNotFoundError, match="no shipped gan config"):
        find_config("fastscnn_embedded_pool", "gan")  # a segmenter config is no GAN config


def test_seg_train_then_seg_test_then_resume(data, tmp_path, capsys):
    work = tmp_path / "run"
    argv = ["seg-train", "fastscnn_embedded_real", "--data-root", str(data), "--work-dir", str(work),
            "--max-iters", "4", "--seed", "1", "--cfg-options", *NO_WORKERS]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert f"checkpoint: {work / 'iter_4.pth'}" in out
    assert "validation: mIoU" in out  # the final weights were validated on the held-out images
    assert "Config:" not in out + err and "Could not import OneDL" not in out + err  # quiet console
    log = Path(out.split("log: ")[1].split()[0])
    assert "Config:" in log.read_text()  # the details are in the log file
    cfg = Config.fromfile(str(work / "fastscnn_embedded_real.py"))  # mmengine's dump of the run's config
    assert cfg.train_cfg.max_iters == 4 and cfg.randomness.seed == 1
    assert cfg.train_dataloader.dataset.data_root == str(data)
    # The shipped poly schedule is rescaled to the run's length.
    assert max(s.get("end", 0) for s in cfg.param_scheduler) <= 4

    metrics_file = tmp_path / "metrics.json"
    assert main(["seg-test", "fastscnn_embedded_real", str(work / "iter_4.pth"), "--data-root", str(data),
                 "--work-dir", str(tmp_path / "test"), "--out", str(metrics_file), "--cfg-options", *NO_WORKERS]) == 0
    out, _ = capsys.readouterr()
    record = json.loads(metrics_file.read_text())
    assert set(record["metrics"]) >= {"mIoU", "aAcc", "mAcc"}
    assert f"mIoU {record['metrics']['mIoU']:.2f}" in out

    # Resume continues from iteration 4 to 6 (not from 0).
    assert main([*argv[:argv.index("--max-iters")], "--max-iters", "6", "--resume", "--cfg-options",
                 *NO_WORKERS]) == 0
    out, _ = capsys.readouterr()
    assert f"checkpoint: {work / 'iter_6.pth'}" in out
    log = Path(out.split("log: ")[1].split()[0]).read_text()
    assert "resumed" in log.lower() and "Iter(train) [1/6]" not in log


def test_seg_train_refuses_missing_data_and_pool_by_name(data, tmp_path, capsys):
    assert main(["seg-train", "fastscnn_embedded_real", "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "data root" in capsys.readouterr().err
    # The pool config without a pool: names the folder and the command that writes it.
    assert main(["seg-train", "fastscnn_embedded_pool", "--data-root", str(data), "--work-dir",
                 str(tmp_path / "p"), "--max-iters", "2", "--cfg-options", *NO_WORKERS]) == 2
    err = capsys.readouterr().err
    assert f"{data}_dpsims" in err and "dpsims-aug generate" in err
    assert main(["seg-train", "no_such_config"]) == 2
    assert "no_such_config not found" in capsys.readouterr().err
    assert main(["seg-test", "fastscnn_embedded_real", str(tmp_path / "missing.pth"), "--data-root", str(data)]) == 2
    assert "missing.pth: no such file" in capsys.readouterr().err


def test_seg_train_on_the_pool_by_name(data, tmp_path, capsys):
    """The README's miniature recipe: generate a pool of the training maps, then train on real + pool by name."""
    pool = Path(f"{data}_dpsims")
    assert main(["generate", "--labels", str(data), "--split", "train", "--n", "1", "--out", str(pool)]) == 0
    assert main(["seg-train", "fastscnn_embedded_pool", "--data-root", str(data), "--work-dir", str(tmp_path / "w"),
                 "--max-iters", "2", "--no-validate", "--cfg-options", *NO_WORKERS]) == 0
    out = capsys.readouterr().out
    assert "trained 2 iterations" in out and "validation:" not in out
    cfg = Config.fromfile(str(tmp_path / "w" / "fastscnn_embedded_pool.py"))
    assert cfg.train_dataloader.dataset.synthetic.data_root == str(pool)


def test_seg_train_with_class_recolour_by_name(data, tmp_path, capsys):
    """The no-synthesis baseline trains by name: a real mmseg run with ClassRecolour in its pipeline."""
    assert main(["seg-train", "fastscnn_embedded_recolour", "--data-root", str(data), "--work-dir",
                 str(tmp_path / "w"), "--max-iters", "2", "--no-validate", "--cfg-options", *NO_WORKERS]) == 0
    assert "trained 2 iterations" in capsys.readouterr().out
    cfg = Config.fromfile(str(tmp_path / "w" / "fastscnn_embedded_recolour.py"))
    assert "ClassRecolour" in [s["type"] for s in cfg.train_dataloader.dataset.pipeline]


def test_configs_lists_and_writes_a_standalone_copy(tmp_path, capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert "embedded_small" in out and "fastscnn_embedded_online" in out
    copy = tmp_path / "mine.py"
    assert main(["configs", "fastscnn_embedded_real", "--out", str(copy)]) == 0
    cfg = Config.fromfile(str(copy))  # no _base_: it stands alone wherever it is written
    assert "_base_" not in copy.read_text() and cfg.model.type == "EncoderDecoder"
    assert main(["configs", "fastscnn_embedded_real", "--out", str(copy)]) == 2  # never overwritten silently
    assert "exists" in capsys.readouterr().err
    assert main(["configs", "embedded_small"]) == 0
    assert capsys.readouterr().out.strip() == str(REPO / "train_gan/configs/embedded_small.py")


def test_gan_train_by_name_quiet_and_fine_tuning_gets_its_own_work_dir(data, tmp_path, monkeypatch, capsys):
    from train_gan.train import build_config, parse_args

    monkeypatch.chdir(tmp_path)
    bundle = REPO / "dpsims_aug/assets/embedded_small.safetensors"
    scratch = build_config(parse_args(["embedded_small", "--data-root", str(data)]))
    tuned = build_config(parse_args(["embedded_small", "--data-root", str(data), "--cfg-options",
                                     f"model.init_generator={bundle}"]))
    assert scratch.work_dir == "work_dirs/embedded_small"
    assert tuned.work_dir == "work_dirs/embedded_small_from_embedded_small"
    assert main(["train", "embeded_small"]) == 2
    assert "did you mean embedded_small" in capsys.readouterr().err


def test_gan_label_space_option_reaches_model_datasets_and_hooks(data, tmp_path, capsys):
    """One option for one's own classes: every label_space of the config follows (not only the model's)."""
    from train_gan.train import ConfigError, build_config, parse_args
    from train_gan.train import main as train_main

    classes = data / "labels.json"  # the dataset's own label-space file (same classes, given as a file)
    cfg = build_config(parse_args(["embedded_small", "--data-root", str(data), "--label-space", str(classes)]))
    found = []

    def walk(node, where=""):
        if callable(getattr(node, "items", None)):
            for key, value in node.items():
                (found.append((f"{where}.{key}", value)) if key == "label_space" else walk(value, f"{where}.{key}"))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{where}.{i}")

    walk(cfg._cfg_dict)
    assert {".model.label_space", ".train_dataloader.dataset.label_space"} <= {w for w, _ in found}
    assert {v for _, v in found} == {str(classes)}
    with pytest.raises(ConfigError, match="label space no_such_preset"):
        build_config(parse_args(["embedded_small", "--label-space", "no_such_preset"]))
    # A real iteration with the classes given as a file.
    assert train_main(["embedded_small", "--data-root", str(data), "--label-space", str(classes), "--work-dir",
                       str(tmp_path / "gan"), "--max-iters", "1", "--cfg-options", "model.generator.preset=tiny",
                       "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False"]) == 0
    assert (tmp_path / "gan" / "iter_1.pth").is_file()
