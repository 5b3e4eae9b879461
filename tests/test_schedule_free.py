"""Cross-checks of ozcycle.schedule_free (issue 16): the optimizer mode at every fastai event, SGD as well as AdamW, the
decaying-schedule refusal before anything trains, and per-epoch checkpoints holding evaluation weights."""
import numpy as np
import pytest
import torch
from torch import nn
from fastai.callback.core import Callback
from fastai.torch_core import set_seed

from ozcycle.data import get_data
from ozcycle.fastai_compat import lean_learner
from ozcycle.schedule_free import ScheduleFree, adamw_schedule_free, sgd_schedule_free

DLS = get_data('mnist1d', n_train=300, n_valid=100)
def bn_mlp(): return nn.Sequential(nn.Flatten(), nn.Linear(40, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


class Modes(Callback):
    "Record the optimizer's train_mode at each event"
    order = 50
    def __init__(self): self.seen = []
    def _r(self, ev): self.seen.append((ev, self.opt.opt.param_groups[0]['train_mode']))
    def before_batch(self): self._r('train_batch' if self.training else 'valid_batch')
    def after_fit(self): self._r('after_fit')


@pytest.mark.parametrize('opt', ['adamw', 'sgd'])
def test_mode_at_every_event(opt):
    set_seed(0); learn = lean_learner(DLS, bn_mlp())
    m = Modes()
    learn.fit_schedule_free(2, 1e-2, opt=opt, cbs=m)
    assert {mode for ev, mode in m.seen if ev == 'train_batch'} == {True}
    assert {mode for ev, mode in m.seen if ev != 'train_batch'} == {False}
    assert any(ev == 'valid_batch' for ev, _ in m.seen)


def test_refused_before_training():
    set_seed(0); learn = lean_learner(DLS, bn_mlp(), ); learn.opt_func = sgd_schedule_free; learn.create_opt()
    w = learn.model[1].weight.clone()
    with pytest.raises(ValueError, match='decreasing LR'): learn.fit_flat_cos(1, 1e-2, cbs=ScheduleFree())
    assert torch.equal(w, learn.model[1].weight)


class SaveEvery(Callback):
    "Save the model and optimizer after every epoch, as fastai's SaveModelCallback(every_epoch=True) does"
    def after_epoch(self): self.learn.save(f'model_{self.epoch}', with_opt=True)


def test_checkpoint_per_epoch_holds_eval_weights(tmp_path):
    set_seed(0); learn = lean_learner(DLS, bn_mlp()); learn.path = tmp_path
    learn.fit_schedule_free(2, 1e-2, opt='adamw', cbs=SaveEvery())
    sd = torch.load(tmp_path / 'models' / 'model_1.pth', weights_only=False)
    for k, v in learn.model.state_dict().items(): assert torch.equal(sd['model'][k], v), k
    assert sd['opt']['param_groups'][0]['train_mode'] is False
