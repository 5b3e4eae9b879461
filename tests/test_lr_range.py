"""Cross-check ozcycle.lr_range against fastai's `lr_find` (same LRs value for value, same smoothed losses, same stop),
and check that a range test leaves a `Learner` exactly as it was: weights, optimizer, callbacks, RNGs, data order,
and the numbers of a following fit."""
import json, math, random
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.optimizer import SGD, Adam, OptimWrapper
from fastai.test_utils import synth_learner
from fastai.torch_core import set_seed

from ozcycle.data import get_data, make_model
from ozcycle.fastai_compat import lean_learner, recorder_token, recorder_changed
from ozcycle.loaders import TensorDataLoaders
from ozcycle.lr_range import RangeTest, lr_range_test, first_divergence


def _plain(seed=0, opt_func=Adam, path=None, splitter=None):
    "A plain fastai Learner (default callbacks: Recorder, progress bar) on small tensors: 8 features, 2 classes"
    set_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(320, 8, generator=g); y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds[:256], bs=32, shuffle=True, drop_last=True), DataLoader(ds[256:], bs=64))
    kw = {} if splitter is None else dict(splitter=splitter)
    return Learner(dls, nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), loss_func=CrossEntropyLossFlat(),
                   opt_func=opt_func, path=path or '.', **kw)


def _weights(learn): return {k: v.clone() for k, v in learn.model.state_dict().items()}
def _same(a, b): return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _fastai_lr_find(learn, **kw):
    "fastai's own `lr_find`: its recorded LRs and smoothed losses"
    with learn.no_bar(): learn.lr_find(show_plot=False, suggest_funcs=None, **kw)
    return [float(v) for v in learn.recorder.lrs], [float(v) for v in learn.recorder.losses]


@pytest.mark.parametrize('num_it,end_lr', [(50, 10.), (100, 1.), (7, 10.)])
def test_same_as_fastai_lr_find_no_divergence(tmp_path, num_it, end_lr):
    learn = _plain(path=tmp_path)
    with learn.no_bar(): rt = learn.lr_range_test(num_it=num_it, end_lr=end_lr)   # seed None: from the RNG state as it is
    lrs, smooth = _fastai_lr_find(learn, num_it=num_it, end_lr=end_lr, stop_div=False)   # same state: ours restored it
    assert rt.lrs == lrs   # value for value, not just close
    assert rt.smoothed == smooth
    assert len(rt.lrs) == num_it


def test_same_as_fastai_lr_find_divergence(tmp_path):
    "A linear regression with SGD diverges: both stop at the same step, with the same losses"
    set_seed(0); learn = synth_learner(n_trn=5, path=tmp_path)
    with learn.no_bar(): rt = learn.lr_range_test(start_lr=1e-4, end_lr=1e3, num_it=60)
    lrs, smooth = _fastai_lr_find(learn, start_lr=1e-4, end_lr=1e3, num_it=60)
    assert rt.diverged and rt.lrs == lrs and rt.smoothed == smooth
    assert rt.edge == lrs[-1] and len(lrs) < 60
    assert first_divergence(smooth) == len(smooth) - 1   # fastai stopped where our rule fires


def test_losses_and_smoothing_by_hand():
    "smoothed is fastai's debiased EMA of the raw losses: s_i = (sum_j beta^(i-j) (1-beta) l_j) / (1 - beta^(i+1))"
    learn = _plain()
    with learn.no_bar(): rt = learn.lr_range_test(num_it=40, end_lr=1., beta=0.9)
    ema, s = 0., []
    for i, l in enumerate(rt.losses):
        ema = 0.9 * ema + 0.1 * l; s.append(ema / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(rt.smoothed, s, rtol=1e-5)
    assert rt.lrs[0] == 1e-7 and rt.lrs == [1e-7 * 1e7 ** (i / 40) for i in range(40)]


def test_plain_learner_left_as_it_was():
    learn = _plain()
    with learn.no_bar(), learn.no_logging():   # (no_bar puts back a new ProgressCallback when it ends)
        learn.fit(1, 1e-2)
        w, opt, tok = _weights(learn), learn.opt, recorder_token(learn)
        opt_state = {id(p): {k: v.clone() for k, v in s.items() if torch.is_tensor(v)} for p, s in opt.state.items()}
        cbs, rec_values, attrs = list(learn.cbs), list(learn.recorder.values), set(learn.__dict__)
        rng = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
        dl_rng = learn.dls.train.rng.getstate()
        rt = learn.lr_range_test(num_it=30, end_lr=100., seed=3)
        assert _same(w, _weights(learn))
        assert learn.opt is opt and all(torch.equal(opt.state[p][k], v) for p in opt.state for k, v in opt_state[id(p)].items())
        assert list(learn.cbs) == cbs and learn.recorder.values == rec_values and set(learn.__dict__) == attrs
        assert not recorder_changed(learn, tok)   # ozcycle.fit still sees the user's last fit
        assert torch.equal(torch.get_rng_state(), rng[0]) and (np.random.get_state()[1] == rng[1]).all() and random.getstate() == rng[2]
        assert learn.dls.train.rng.getstate() == dl_rng


def _fit_after(range_test, seed=0, n_epoch=1):
    "Weights and RNG draws after a fit of the runner's learner, with or without a range test just before it"
    dls = get_data('mnist1d', n_train=500, n_valid=100)
    set_seed(seed); learn = lean_learner(dls, make_model('cnn1d'))   # Python's, NumPy's and torch's generators
    if range_test: rt = learn.lr_range_test(num_it=20, start_lr=1e-4, end_lr=10.)
    learn.fit(n_epoch, 3e-3)
    return _weights(learn), torch.rand(3), np.random.rand(3), random.random(), dls.train.epoch


def test_following_fit_identical_lean_learner():
    a, b = _fit_after(False), _fit_after(True)
    assert _same(a[0], b[0])
    assert torch.equal(a[1], b[1]) and (a[2] == b[2]).all() and a[3] == b[3] and a[4] == b[4]


def test_following_fit_identical_plain_learner():
    def run(rt):
        learn = _plain()
        with learn.no_bar():
            learn.fit(1, 1e-2)
            if rt: learn.lr_range_test(num_it=25, seed=1)
            learn.fit(2, 1e-2)
        return _weights(learn), [float(v) for v in learn.recorder.losses], learn.recorder.values
    a, b = run(False), run(True)
    assert _same(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]


def test_seed_gives_the_same_curve_and_the_data_order_counts():
    learn = lean_learner(get_data('mnist1d', n_train=500, n_valid=100), make_model('cnn1d'))
    kw = dict(num_it=12, start_lr=1e-3, end_lr=10.)
    a, b, c = learn.lr_range_test(seed=0, **kw), learn.lr_range_test(seed=0, **kw), learn.lr_range_test(seed=1, **kw)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert a.losses != c.losses    # another seed, another data order
    assert a.seed == 0 and c.seed == 1


def test_fresh_optimizer_momentum_counts():
    "The test starts from a fresh optimizer; `mom` holds the momentum during it"
    learn = _plain(opt_func=partial(SGD, mom=0.9))
    with learn.no_bar():
        a, b = learn.lr_range_test(num_it=30, seed=0, mom=0.), learn.lr_range_test(num_it=30, seed=0)
    assert a.losses[:2] == b.losses[:2] and a.losses[5:] != b.losses[5:]   # first steps equal: no momentum history yet
    assert learn.opt is None


def test_fastai_sgd_without_momentum_ignores_mom():
    "fastai's `SGD` built with mom=0 has no momentum step: a `mom` hyper-parameter changes nothing (as in fit_one_cycle's moms)"
    learn = _plain(opt_func=SGD)
    with learn.no_bar():
        a, b = learn.lr_range_test(num_it=30, seed=0), learn.lr_range_test(num_it=30, seed=0, mom=0.9)
    assert a.losses == b.losses


_SEEN = []   # not a callback's attribute: the range test puts those back as they were, list contents included

class _Hypers(Callback):
    "Records each training batch's (lr, mom) per group into `_SEEN`"
    order = 99
    def before_batch(self):
        if self.training: _SEEN.append([(h['lr'], h.get('mom')) for h in self.opt.hypers])


def test_every_group_gets_the_lr_and_mom():
    learn = _plain(splitter=lambda m: [list(m[0].parameters()), list(m[2].parameters())])
    h, seen = _Hypers(), _SEEN; seen.clear(); learn.add_cb(h)
    with learn.no_bar(): rt = learn.lr_range_test(num_it=10, mom=0.5)
    assert len(learn.opt_func(learn.splitter(learn.model), lr=1.).hypers) == 2
    assert [s[0] for s in seen] == [(lr, 0.5) for lr in rt.lrs] and all(len(set(s)) == 1 for s in seen) and len(seen[0]) == 2
    assert h in learn.cbs and h.learn is learn   # the user's callback is still there


def test_optimwrapper_state_restored():
    "A PyTorch optimizer passed as an `OptimWrapper`: fastai's create_opt reuses and clears it, so its state is put back"
    learn = _plain()
    learn.opt_func = OptimWrapper(opt=torch.optim.SGD(learn.model.parameters(), lr=1e-2, momentum=0.9))
    with learn.no_bar(): learn.fit(1)
    before = {k: v.clone() for k, v in learn.opt.opt.state_dict()['state'][0].items()}
    with learn.no_bar(): learn.lr_range_test(num_it=10)
    after = learn.opt.opt.state_dict()['state'][0]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_eval_mode_and_grads_restored():
    learn = _plain(); learn.model.eval()
    learn.model[0].weight.grad = torch.full_like(learn.model[0].weight, 0.5)
    with learn.no_bar(): learn.lr_range_test(num_it=8)
    assert not any(m.training for m in learn.model.modules())
    assert torch.equal(learn.model[0].weight.grad, torch.full_like(learn.model[0].weight, 0.5))
    assert learn.model[2].weight.grad is None


class _Boom(nn.Module):
    def __init__(self): super().__init__(); self.lin, self.n = nn.Linear(8, 2), 0
    def forward(self, x):
        self.n += 1
        if self.n == 5: raise RuntimeError('boom')
        return self.lin(x)


def test_error_mid_test_restores_and_propagates():
    learn = _plain(); learn.model = _Boom(); learn.model.n = 0
    w, rng = _weights(learn), torch.get_rng_state()
    with learn.no_bar(), pytest.raises(RuntimeError, match='boom'): learn.lr_range_test(num_it=20)
    assert _same(w, _weights(learn)) and torch.equal(torch.get_rng_state(), rng) and learn.opt is None
    assert not hasattr(learn, 'range_callback')


def test_nan_model_gives_an_honest_result():
    class NaNs(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(8, 2)
        def forward(self, x): return self.lin(x) * float('nan')
    learn = _plain(); learn.model = NaNs()
    with learn.no_bar(): rt = learn.lr_range_test()
    assert rt.diverged and rt.edge == 1e-7 and len(rt.lrs) == 1 and math.isnan(rt.losses[0])
    d = rt.to_dict()
    assert RangeTest.from_dict(json.loads(json.dumps(d, allow_nan=False))).to_dict() == d


def test_cycles_the_data():
    "More steps than batches: fastai's lr_find runs num_it // n_batches + 1 epochs; so does the range test"
    dls = TensorDataLoaders.from_tensors(torch.randn(64, 40), torch.randint(0, 10, (64,)), torch.randn(16, 40),
                                         torch.randint(0, 10, (16,)), bs=16, device='cpu')
    learn = lean_learner(dls, make_model('mlp'))
    rt = learn.lr_range_test(num_it=10, end_lr=1e-3)
    assert len(rt.lrs) == 10 and not rt.diverged and dls.train.epoch == 0 and learn.opt is None


def test_empty_training_data():
    learn = _plain()
    learn.dls.train.n = 0
    with pytest.raises(ValueError, match='learn.dls.train gives no batch'): learn.lr_range_test()
