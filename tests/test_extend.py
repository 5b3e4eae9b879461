"""Cross-checks of ozcycle.extend (issue 16): its WSD schedule against `ozcycle.schedules.wsd` and its flat-cos shape against
fastai's own `fit_flat_cos`; a fit plus two extensions against one fit of the total length, value for value, with two
parameter groups; the kept state and `fit_state.pre_cooldown` through `learn.save`/`learn.load`; nothing of it in `learn.export()`."""
import pickle, warnings

import numpy as np
import pytest
import torch
from fastai.callback.progress import ProgressCallback
from fastai.test_utils import synth_learner
from fastai.torch_core import set_seed
from fastcore.basics import noop

from ozcycle.extend import extendable_plan, kept_state, wsd_steps
from ozcycle.schedules import sched_values, wsd


def synth(**kwargs):
    learn = synth_learner(**kwargs)   # 10 training batches per epoch, SGD
    learn.remove_cb(ProgressCallback); learn.logger = noop
    return learn


@pytest.mark.parametrize('decay', ['1-sqrt', 'cos', 'linear'])
@pytest.mark.parametrize('n,w,d', [(40, 2, 8), (37, 0, 5), (100, 10, 20), (7, 3, 4)])
def test_wsd_steps_is_wsd_of_the_same_fit(decay, n, w, d):
    got, want = sched_values(wsd_steps(1e-2, n, w, d, decay), n), sched_values(wsd(1e-2, w / n, d / n, decay), n)
    np.testing.assert_allclose(got, want, rtol=1e-7)   # 1-sqrt near its start magnifies float rounding of wsd's fractions


def test_wsd_steps_per_group_and_pickle():
    s = wsd_steps(np.array([1e-3, 1e-2]), 20, 2, 5)
    v = sched_values(s, 20)
    assert v.shape == (20, 2)
    np.testing.assert_allclose(v[:, 0] * 10, v[:, 1])
    np.testing.assert_array_equal(sched_values(pickle.loads(pickle.dumps(s)), 20), v)


def test_flat_cos_shape_is_fastais_fit_flat_cos():
    set_seed(0); a = synth(lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); a.fit_flat_cos(4, 1e-2)
    set_seed(0); b = synth(lr=1e-2)
    b.fit_extendable(4, 1e-2, shape='flat_cos')
    np.testing.assert_allclose(b.fit_state.hps['lr'][:, 0], np.array(a.recorder.lrs), rtol=1e-5)   # fastai computes in float32
    assert b.fit_state.kind == 'flat_cos' and b.fit_state.pre_cooldown == {'epoch': 3, 'path': None}
    for p, q in zip(a.model.parameters(), b.model.parameters()): torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def two_groups(m): return [[m.a], [m.b]]


def test_fit_and_two_extensions_is_one_fit_per_group():
    set_seed(0); learn = synth(splitter=two_groups)
    lr = slice(1e-3, 1e-2)
    learn.fit_extendable(5, lr, pct_warmup=0.1)              # 5 warm-up batches, 1 cooldown epoch
    f0 = learn.fit_state
    learn.fit_extend(4); f1 = learn.fit_state
    learn.fit_extend(1); f2 = learn.fit_state
    p = extendable_plan(5, 10, pct_warmup=0.1)
    one = sched_values(wsd_steps(np.array([1e-3, 1e-2]), 100, p['n_warmup'], 10), 100)
    run = np.concatenate([f0.hps['lr'][:40], f1.hps['lr'][:40], f2.hps['lr']])
    np.testing.assert_array_equal(run, one)
    assert (f2.n_epoch, f2.start_epoch, f2.pre_cooldown['epoch']) == (10, 8, 9)
    assert f0.n_trained + f1.n_trained + f2.n_trained == 120     # 5 + (4 + 1) + (1 + 1) epochs trained, as counted
    np.testing.assert_array_equal(f2.lr_max, [1e-3, 1e-2])


def test_interrupted_extension_keeps_the_old_state():
    set_seed(0); learn = synth()
    learn.fit_extendable(3, 1e-2)
    before = kept_state(learn)
    class Stop(Exception): pass
    from fastai.callback.core import Callback
    class StopAt(Callback):
        def before_epoch(self):
            if self.epoch == 3: raise Stop('stopped')
    with pytest.raises(Stop): learn.fit_extend(3, cbs=StopAt())
    assert kept_state(learn) is before                          # the extension stopped before its cooldown: run it again
    learn.fit_extend(3)
    assert learn.fit_state.completed and learn.fit_state.n_epoch == 6


def test_save_load_and_export(tmp_path):
    from ozcycle.data import get_data, make_model
    from ozcycle.fastai_compat import lean_learner
    set_seed(0); learn = lean_learner(get_data('mnist1d', n_train=300, n_valid=100), make_model('mlp'))
    learn.path = tmp_path
    learn.fit_extendable(3, 1e-2, path=tmp_path / 'pre.pth')
    learn.save('w')
    learn.fit_state = None
    learn.load('w')
    assert learn.fit_state.pre_cooldown == {'epoch': 2, 'path': str(tmp_path / 'pre.pth')}
    learn.export('e.pkl')
    blob = (tmp_path / 'e.pkl').read_bytes()
    assert b'ozcycle.extend' not in blob and b'pre_cooldown' not in blob   # the kept state lives beside the learner, not on it
    st = kept_state(None, tmp_path / 'pre.pth')
    assert st['plan']['n_epoch'] == 3 and st['plan']['epoch'] == 2 and set(st) == {'model', 'opt', 'plan'}
