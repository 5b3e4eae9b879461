"""Cross-checks of ozcycle.average (issue 16): `swa_sched` against PyTorch's `SWALR`; the SWA callback leaves training and the
live model's BatchNorm statistics exactly as without it (keep='live'), and recalibrates only the averaged copy; the averaged
weights are what `learn.save` writes."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import SWALR
from fastai.torch_core import set_seed

from ozcycle.average import EMA, SWA, recalibrate_bn, swa_sched
from ozcycle.data import get_data
from ozcycle.fastai_compat import lean_learner
from ozcycle.schedules import sched_values

DLS = get_data('mnist1d', n_train=500, n_valid=300)
def bn_mlp(): return nn.Sequential(nn.Flatten(), nn.Linear(40, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
def fresh(seed=0):
    set_seed(seed); DLS.train.load_state_dict({'seed': seed, 'epoch': 0})
    return lean_learner(DLS, bn_mlp())


@pytest.mark.parametrize('strategy', ['cos', 'linear'])
def test_swa_sched_is_swalr(strategy):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-2)
    n, n_anneal = 40, 10
    sch = SWALR(opt, swa_lr=1e-3, anneal_epochs=n_anneal, anneal_strategy=strategy)
    want = []
    for _ in range(n): want.append(opt.param_groups[0]['lr']); opt.step(); sch.step()
    got = sched_values(swa_sched(1e-2, 1e-3, n_anneal / n, strategy), n)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize('cb', [lambda: SWA(keep='live'), lambda: EMA(0.9, keep='live')])
def test_live_model_untouched(cb):
    a = fresh(); a.fit(3, 1e-3)
    b = fresh(); c = cb(); b.fit(3, 1e-3, cbs=c)
    for k, v in a.model.state_dict().items(): assert torch.equal(b.model.state_dict()[k], v), k   # training and live BN stats as without it
    assert not torch.equal(c.averaged.module[2].running_mean, b.model[2].running_mean)          # the copy's were recomputed


def test_saved_weights_are_averaged(tmp_path):
    learn = fresh(); learn.path = tmp_path
    cb = learn.fit_swa(2, 1e-3)
    learn.save('w')
    sd = torch.load(tmp_path / 'models' / 'w.pth', weights_only=False)['model']
    for k, v in cb.averaged.module.state_dict().items(): assert torch.equal(sd[k], v), k


def test_momentum_none_is_cumulative_average():
    m = nn.BatchNorm1d(3)
    xs = [torch.randn(8, 3) + i for i in range(4)]
    recalibrate_bn(nn.Sequential(m), [(x,) for x in xs])
    torch.testing.assert_close(m.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))
    assert m.momentum == 0.1
