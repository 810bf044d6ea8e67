"""Every shipped augment/ config loads, and every type it names exists in the mmseg/mmengine registries."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / "augment").glob("*/*.py") if p.parent.name != "_base_")
NUM_CLASSES = {"embedded": 10, "ade20k": 150, "coco_stuff": 171, "cityscapes": 19}


@pytest.fixture(scope="module")
def registries():
    from mmseg.registry import (
        DATA_SAMPLERS,
        DATASETS,
        HOOKS,
        METRICS,
        MODELS,
        OPTIMIZERS,
        PARAM_SCHEDULERS,
        TRANSFORMS,
        VISUALIZERS,
        WEIGHT_INITIALIZERS,
    )
    from mmseg.utils import register_all_modules

    import dpsims_aug.mm  # noqa: F401  (what custom_imports does)
    import dpsims_aug.mm.batch_synthesis  # noqa: F401  (what the _batch configs' custom_imports add)

    register_all_modules(init_default_scope=True)
    return dict(models=MODELS, datasets=DATASETS, transforms=TRANSFORMS, samplers=DATA_SAMPLERS, metrics=METRICS,
                optimizers=OPTIMIZERS, schedulers=PARAM_SCHEDULERS, hooks=HOOKS, visualizers=VISUALIZERS,
                initializers=WEIGHT_INITIALIZERS)


def _types(node, found: list[str], skip: tuple[str, ...] = ("init_cfg",)) -> list[str]:
    """Every ``type`` value in a nested config (dicts and lists), not looking into the keys in ``skip``."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            found.append(node["type"])
        for key, value in node.items():
            if key not in skip:
                _types(value, found, skip)
    elif isinstance(node, list | tuple):
        for value in node:
            _types(value, found, skip)
    return found


def _init_cfgs(node, found: list) -> list:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "init_cfg" and value is not None:
                found.append(value)
            else:
                _init_cfgs(value, found)
    elif isinstance(node, list | tuple):
        for value in node:
            _init_cfgs(value, found)
    return found


def _exists(registry, name: str) -> bool:
    return registry.get(name) is not None


def _pipelines(dataset) -> list[list]:
    if dataset.type == "SyntheticMixDataset":
        return [*_pipelines(dataset.real), *_pipelines(dataset.synthetic)]
    if dataset.type == "ConcatDataset":
        return [p for d in dataset.datasets for p in _pipelines(d)]
    if dataset.type == "RepeatDataset":
        return _pipelines(dataset.dataset)
    return [dataset.pipeline]


def _leaf_datasets(dataset) -> list:
    if dataset.type == "SyntheticMixDataset":
        return [*_leaf_datasets(dataset.real), *_leaf_datasets(dataset.synthetic)]
    if dataset.type == "ConcatDataset":
        return [leaf for d in dataset.datasets for leaf in _leaf_datasets(d)]
    if dataset.type == "RepeatDataset":
        return _leaf_datasets(dataset.dataset)
    return [dataset]


def test_the_expected_configs_ship():
    names = {p.relative_to(REPO / "augment").as_posix() for p in CONFIGS}
    assert len(names) == 37
    assert "embedded/fastscnn_embedded_recolour.py" in names  # the no-synthesis baseline
    # The batch (GPU preprocessor) form, for the embedded set and SegFormer-B0 on ADE.
    assert {"embedded/fastscnn_embedded_batch.py", "ade20k/segformer_mit-b0_ade20k-512x512_batch.py"} <= names
    for stage in ("pretrain", "finetune"):  # the two-stage schedule, for the embedded set and SegFormer-B0 on ADE
        assert f"embedded/fastscnn_embedded_{stage}.py" in names
        assert f"ade20k/segformer_mit-b0_ade20k-512x512_{stage}.py" in names
    for variant in ("real", "pool", "online"):
        assert f"embedded/fastscnn_embedded_{variant}.py" in names
        for model in ("segformer_mit-b0", "segformer_mit-b2", "deeplabv3plus_r50-d8"):
            assert f"ade20k/{model}_ade20k-512x512_{variant}.py" in names
            assert f"coco_stuff/{model}_coco-stuff164k-512x512_{variant}.py" in names
            assert f"cityscapes/{model}_cityscapes-512x1024_{variant}.py" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_loads_and_its_types_are_registered(path: Path, registries):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == "mmseg"
    extra = ["dpsims_aug.mm.batch_synthesis"] if path.stem.endswith("_batch") else []
    assert cfg.custom_imports["imports"] == ["dpsims_aug.mm", *extra]
    # Model.
    for name in _types(cfg.model, []):
        assert _exists(registries["models"], name), f"{path.name}: model type {name!r} is not registered"
    for init in _init_cfgs(cfg.model, []):
        assert _exists(registries["initializers"], init["type"])
    heads = [cfg.model.decode_head]
    aux = cfg.model.get("auxiliary_head")
    heads += aux if isinstance(aux, list) else [aux] if aux else []
    assert {h.num_classes for h in heads} == {NUM_CLASSES[path.parent.name]}
    assert tuple(cfg.model.data_preprocessor.size) == tuple(cfg.crop_size)
    # Data.
    loader = cfg.train_dataloader
    assert _exists(registries["samplers"], loader.sampler.type)
    for ds in [loader.dataset, cfg.val_dataloader.dataset]:
        assert _exists(registries["datasets"], ds.type)  # also the SyntheticMixDataset wrapper
        for leaf in _leaf_datasets(ds):
            assert _exists(registries["datasets"], leaf.type), f"{path.name}: dataset type {leaf.type!r}"
        for pipeline in _pipelines(ds):
            for step in pipeline:
                assert _exists(registries["transforms"], step["type"]), f"{path.name}: transform {step['type']!r}"
    assert _exists(registries["metrics"], cfg.val_evaluator.type)
    # Schedule and runtime.
    assert _exists(registries["optimizers"], cfg.optim_wrapper.optimizer.type)
    for sched in cfg.param_scheduler:
        assert _exists(registries["schedulers"], sched.type)
    for hook in [*cfg.default_hooks.values(), *cfg.custom_hooks]:
        assert _exists(registries["hooks"], hook.type)
    assert _exists(registries["visualizers"], cfg.visualizer.type)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_variants_are_what_their_names_say(path: Path, registries, tmp_path):
    from dpsims_aug.labels import get_label_space

    cfg = Config.fromfile(str(path))
    dataset = cfg.train_dataloader.dataset
    steps = [s["type"] for p in _pipelines(dataset) for s in p]
    variant = path.stem.rsplit("_", 1)[1]
    if variant == "real":
        assert dataset.type != "SyntheticMixDataset" and "DPSIMSAugment" not in steps
    elif variant == "finetune":  # stage 2 starts from stage 1's last checkpoint, on real images only
        assert dataset.type != "SyntheticMixDataset" and "DPSIMSAugment" not in steps
        pretrain = Config.fromfile(str(path.with_name(path.name.replace("_finetune", "_pretrain"))))
        assert cfg.load_from == f"work_dirs/{path.stem.replace('_finetune', '_pretrain')}/" \
            f"iter_{pretrain.train_cfg.max_iters}.pth"
        assert pretrain.train_cfg.max_iters % pretrain.default_hooks.checkpoint.interval == 0  # that file is saved
        assert cfg.train_cfg.max_iters < pretrain.train_cfg.max_iters
        assert cfg.optim_wrapper.optimizer.lr < pretrain.optim_wrapper.optimizer.lr
    elif variant in ("pool", "pretrain"):
        real, synthetic = dataset.real, dataset.synthetic
        assert dataset.type == "SyntheticMixDataset" and synthetic.data_root.rstrip("/").endswith("_dpsims")
        assert 0 < dataset.synthetic_share < 1
        assert real.type == synthetic.type  # equal metainfo: SyntheticMixDataset refuses mixed class lists
        assert "DPSIMSAugment" not in steps
        if path.parent.name in ("coco_stuff", "cityscapes"):  # pool annotations keep the generator's raw ids
            (mapper,) = [s for s in synthetic.pipeline if s["type"] == "MapLabelIds"]
            assert get_label_space(mapper["label_space"]).num_classes == NUM_CLASSES[path.parent.name]
    elif variant == "recolour":  # no synthesis: real images, each class recoloured right after its label map loads
        types = [s["type"] for s in dataset.pipeline]
        assert dataset.type != "SyntheticMixDataset" and "DPSIMSAugment" not in steps
        assert types.index("ClassRecolour") == types.index("LoadAnnotations") + 1
    elif variant == "batch":  # the workers decide last, the model's preprocessor renders with the same generator
        types = [s["type"] for s in dataset.pipeline]
        assert "DPSIMSAugment" not in types and types[-2:] == ["DPSIMSSelect", "PackSegInputs"]
        select, pack = dataset.pipeline[-2], dataset.pipeline[-1]
        assert {"dpsims_seed", "dpsims_labels"} <= set(pack["meta_keys"])
        assert cfg.model.data_preprocessor.type == "DPSIMSDataPreprocessor"
        assert cfg.model.data_preprocessor.checkpoint == select["checkpoint"]
    else:
        pipeline = dataset.pipeline
        types = [s["type"] for s in pipeline]
        assert types.index("DPSIMSAugment") == types.index("LoadAnnotations") + 1
        aug = dict(pipeline[types.index("DPSIMSAugment")])
        if path.parent.name == "embedded":
            assert aug["device"] == "cpu" and aug["checkpoint"] is None  # the bundled generator
        else:
            assert aug["device"] == "cuda" and cfg.env_cfg.mp_cfg.mp_start_method == "spawn"
        if aug.get("label_space"):
            assert get_label_space(aug["label_space"]).num_classes == NUM_CLASSES[path.parent.name]


def test_cpu_configs_download_nothing(registries):
    for path in (REPO / "augment" / "embedded").glob("*.py"):
        cfg = Config.fromfile(str(path))
        text = cfg.pretty_text
        assert "http" not in text and "open-mmlab://" not in text and "Pretrained" not in text, path.name
        assert cfg.model.pretrained is None and cfg.model.backbone.init_cfg is None


def test_embedded_model_builds(registries):
    """The CPU model is small enough to build here (the GPU models are not built)."""
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(REPO / "augment" / "embedded" / "fastscnn_embedded_real.py"))
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
