"""EMA BatchNorm recalibration: the generator's statistics re-collected for its own weights."""

from __future__ import annotations

import pytest
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn

from dpsims_aug.models import DPSIMSGenerator, generator_config
from train_gan.model import DPSIMSGAN


def _norms(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_recalibration_sets_the_average_statistics_of_these_weights():
    torch.manual_seed(0)
    g = DPSIMSGenerator(generator_config("tiny", num_classes=10, spectral_norm=False)).eval()
    batches = [torch.randint(0, 10, (4, 32, 32)) for _ in range(2)]
    norms = _norms(g)
    # What each BatchNorm sees in train mode on each batch, with the noise recalibration draws (seeds k*4096 + i).
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(norms))}
    hooks = [n.register_forward_hook(lambda m, inp, out, i=i: seen[i].append(inp[0].detach()))
             for i, n in enumerate(norms)]
    with torch.no_grad():
        for k, labels in enumerate(batches):
            g.train()
            g(labels, g.sample_noise([k * 4096 + i for i in range(4)]))
    for h in hooks:
        h.remove()
    g.eval()
    momenta = [m.momentum for m in norms]
    assert g.recalibrate_batch_norm(batches, seed=0) == 2
    assert not g.training and [m.momentum for m in norms] == momenta
    for i, norm in enumerate(norms):
        means = torch.stack([x.mean(dim=(0, 2, 3)) for x in seen[i]]).mean(0)
        variances = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in seen[i]]).mean(0)
        assert torch.allclose(norm.running_mean, means, atol=1e-5, rtol=1e-4)
        assert torch.allclose(norm.running_var, variances, atol=1e-6, rtol=1e-3)
    with pytest.raises(ValueError, match="at least one batch"):
        g.recalibrate_batch_norm([])


def test_recalibrate_ema_changes_only_the_ema():
    torch.manual_seed(0)
    model = DPSIMSGAN(generator=dict(preset="tiny"),
                      discriminator=dict(decoder_channels=8, max_decoder_channels=16, high_res_channels=8),
                      loss=dict(nce_patches=16, diversity=0))
    wrappers = OptimWrapperDict(
        generator=OptimWrapper(torch.optim.Adam(model.generator.parameters(), 1e-3)),
        discriminator=OptimWrapper(torch.optim.Adam(list(model.discriminator.trainable_parameters()), 4e-4)))
    data = dict(image=torch.randint(0, 255, (2, 3, 64, 64)).float(), label=torch.randint(0, 10, (2, 64, 64)))
    for _ in range(3):
        model.train_step(data, wrappers)
    live = [m.running_mean.clone() for m in _norms(model.generator)]
    copied = [m.running_mean.clone() for m in _norms(model.generator_ema.module)]
    assert all(torch.equal(a, b) for a, b in zip(live, copied))  # the EMA copies the live statistics
    model.recalibrate_ema([data["label"]] * 2)
    assert model.ema_calibrated_step == 3
    ema = [m.running_mean for m in _norms(model.generator_ema.module)]
    assert any(not torch.allclose(a, b) for a, b in zip(copied, ema))
    assert all(torch.equal(a, m.running_mean) for a, m in zip(live, _norms(model.generator)))
