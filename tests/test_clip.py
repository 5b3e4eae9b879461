"""Cross-checks of `ozcycle.clip` against PyTorch's `clip_grad_norm_`/`clip_grad_value_` and fastai's `GradientClip`,
plus bad input and the non-finite cases that PyTorch gets wrong."""
import math, warnings
import numpy as np
import pytest
import torch
from torch import nn
from hypothesis import given, settings, strategies as st
from fastai.callback.core import Callback, CancelStepException
from fastai.callback.training import GradientClip
from fastai.test_utils import synth_learner
from fastai.torch_core import set_seed
from ozcycle.clip import GradClip, clip_grads_, grad_norm

INF, NAN = float('inf'), float('nan')


def _net_with_grads(seed=0, scale=1.):
    "A small MLP with random gradients of size ~`scale` (the last bias has none), and its deep copy"
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3), nn.Linear(3, 2))
    for p in net.parameters(): p.grad = torch.randn_like(p) * scale
    net[3].bias.grad = None
    twin = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3), nn.Linear(3, 2))
    twin.load_state_dict(net.state_dict())
    for p, q in zip(net.parameters(), twin.parameters()): q.grad = None if p.grad is None else p.grad.clone()
    return net, twin


def _groups(net):
    "The parameters of `net` split in three parameter groups, as a fastai splitter would"
    return [list(net[0].parameters()), list(net[2].parameters()), list(net[3].parameters())]


@pytest.mark.parametrize('norm_type', [1., 2., 3., INF])
@pytest.mark.parametrize('max_norm', [0.1, 1.5, 1e4])
def test_norm_matches_clip_grad_norm(norm_type, max_norm):
    ours, ref = _net_with_grads(seed=int(max_norm * 10) % 7)
    n_ref = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm, norm_type).item()
    n, clipped = clip_grads_([p for g in _groups(ours) for p in g], max_norm, norm_type)
    assert n == pytest.approx(n_ref, rel=1e-6)
    assert clipped == (n_ref > max_norm)
    for p, q in zip(ours.parameters(), ref.parameters()):
        if q.grad is None: assert p.grad is None; continue
        # PyTorch divides by norm + 1e-6; we divide by the norm: equal to ~1e-6 relative
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-8)
    if clipped: assert grad_norm(ours.parameters(), norm_type) == pytest.approx(max_norm, rel=1e-6)


@pytest.mark.parametrize('max_norm', [0.05, 0.5, 10.])
def test_value_matches_clip_grad_value(max_norm):
    ours, ref = _net_with_grads(seed=3)
    torch.nn.utils.clip_grad_value_(ref.parameters(), max_norm)
    n, clipped = clip_grads_(ours.parameters(), max_norm, mode='value')
    grads = [p.grad for p in _net_with_grads(seed=3)[0].parameters() if p.grad is not None]
    assert n == max(g.abs().max().item() for g in grads)           # the norm reported is the largest |g|
    assert clipped == (n > max_norm)
    for p, q in zip(ours.parameters(), ref.parameters()):
        if q.grad is not None: assert torch.equal(p.grad, q.grad)  # clamping is exact


def _agc_reference(params, clip_factor, eps):
    "Adaptive gradient clipping (Brock et al. 2021) unit by unit in float64: the paper's formula, written plainly"
    out = []
    for p in params:
        if p.grad is None: out.append(None); continue
        w, g = p.detach().double(), p.grad.double().clone()
        rows = [slice(None)] if w.ndim < 2 else range(w.shape[0])
        for i in rows:
            bound = clip_factor * max(w[i].norm().item(), eps)
            if g[i].norm().item() > bound: g[i] = g[i] * (bound / g[i].norm().item())
        out.append(g)
    return out


@pytest.mark.parametrize('clip_factor', [0.01, 0.1, 1.])
def test_agc_matches_reference(clip_factor):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4, 3))
    nn.init.zeros_(net[2].bias)                                   # zero units: eps sets their bound
    for p in net.parameters(): p.grad = torch.randn_like(p) * torch.logspace(-3, 1, p.shape[0]).view(-1, *[1] * (p.ndim - 1))
    expect = _agc_reference(net.parameters(), clip_factor, 1e-3)
    n, clipped = clip_grads_(net.parameters(), mode='agc', clip_factor=clip_factor)
    assert clipped
    for p, e in zip(net.parameters(), expect): torch.testing.assert_close(p.grad.double(), e, rtol=1e-5, atol=1e-12)


def _fit(cb, seed=7, n_epoch=2, lr=0.2, **kw):
    "Final parameters of a 3-group synth_learner fit with `cb`"
    set_seed(seed)
    net = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 4), nn.Linear(4, 1))
    learn = synth_learner(model=net, lr=lr, cbs=cb, splitter=_groups, **kw)
    with learn.no_logging(), learn.no_bar(): learn.fit(n_epoch)
    return torch.cat([p.detach().flatten() for p in net.parameters()]), learn


@pytest.mark.parametrize('norm_type', [2., INF])
def test_fit_matches_fastai_gradient_clip(norm_type):
    ref, _ = _fit(GradientClip(max_norm=0.5, norm_type=norm_type))
    ours, learn = _fit(GradClip(max_norm=0.5, norm_type=norm_type))
    assert len(learn.opt.param_lists) == 3
    assert learn.grad_clip.stats.clipped.sum() > 0                 # the comparison includes clipped steps
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    plain, _ = _fit(None)
    assert not torch.allclose(plain, ref, rtol=1e-3)               # and clipping changed the fit


def test_fit_with_frozen_group():
    set_seed(0)
    net = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 4), nn.Linear(4, 1))
    learn = synth_learner(model=net, lr=0.1, cbs=GradClip(max_norm=1e-3), splitter=_groups)
    learn.freeze()                                                 # only the last group trains
    frozen = [p.detach().clone() for p in net[0].parameters()]
    with learn.no_logging(), learn.no_bar(): learn.fit(1)
    assert all(p.grad is None for p in net[0].parameters())
    assert all(torch.equal(p, q) for p, q in zip(net[0].parameters(), frozen))
    assert learn.grad_clip.stats.clipped.all()


@pytest.mark.parametrize('kw,name', [
    (dict(max_norm=-1.), 'max_norm'), (dict(max_norm=0.), 'max_norm'), (dict(max_norm=NAN), 'max_norm'),
    (dict(max_norm=INF), 'max_norm'), (dict(norm_type=0.), 'norm_type'), (dict(norm_type=-2.), 'norm_type'),
    (dict(norm_type=NAN), 'norm_type'), (dict(clip_factor=0.), 'clip_factor'), (dict(clip_factor=INF), 'clip_factor'),
    (dict(eps=-1e-3), 'eps'), (dict(mode='global'), 'mode'), (dict(mode=None), 'mode')])
def test_bad_input(kw, name):
    with pytest.raises(ValueError, match=f'{name}='): GradClip(**kw)
    with pytest.raises(ValueError, match=f'{name}='): clip_grads_([], **kw)


def test_bad_input_more():
    with pytest.raises(ValueError, match="nonfinite='warn'"): GradClip(nonfinite='warn')
    with pytest.raises(TypeError, match="max_norm='1'"): GradClip(max_norm='1')
    with pytest.raises(TypeError, match='max_norm=True'): GradClip(max_norm=True)
    with pytest.raises(ValueError, match='norm_type=0'): grad_norm([], norm_type=0)
    _, learn = _fit(GradClip(), n_epoch=1)
    with pytest.raises(ValueError, match='q=101'): learn.grad_clip.summary(q=101)


def _param(*vals, dtype=torch.float32):
    p = nn.Parameter(torch.zeros(len(vals), dtype=dtype)); p.grad = torch.tensor(vals, dtype=dtype); return p


@pytest.mark.parametrize('mode', ['norm', 'value', 'agc'])
@pytest.mark.parametrize('bad', [INF, -INF, NAN])
def test_nonfinite_grads_left_untouched(mode, bad):
    p, q = _param(bad, 1.), _param(5., 5.)
    n, clipped = clip_grads_([p, q], max_norm=0.1, mode=mode)
    assert not math.isfinite(n) and not clipped
    assert p.grad[1].item() == 1. and torch.equal(q.grad, torch.tensor([5., 5.]))
    torch.nn.utils.clip_grad_norm_([p, q], 0.1)                   # what PyTorch does instead
    assert torch.isnan(torch.cat([p.grad, q.grad])).any() or (q.grad == 0).all()


@pytest.mark.parametrize('vals,max_norm', [([1e20] * 10, 1.), ([3e38, -3e38, 1.], 0.1), ([2e19] * 1000, 1e-3)])
def test_overflowing_norm(vals, max_norm):
    ref = _param(*vals)
    torch.nn.utils.clip_grad_norm_([ref], max_norm)
    assert (ref.grad == 0).all()                                   # PyTorch: the norm overflowed, all zeroed
    p = _param(*vals)
    true_norm = float(np.linalg.norm(np.array(vals, dtype=np.float64)))
    n, clipped = clip_grads_([p], max_norm)
    assert clipped and n == pytest.approx(true_norm, rel=1e-6)
    expect = torch.tensor(np.array(vals, dtype=np.float64) * (max_norm / true_norm))
    torch.testing.assert_close(p.grad.double(), expect, rtol=1e-5, atol=0)


def test_half_precision_grads():
    p = _param(*[60000.] * 100, dtype=torch.float16)
    assert torch.nn.utils.get_total_norm([p.grad]).isinf()        # float16's own norm overflows
    n, clipped = clip_grads_([p], 1.)
    assert clipped and n == pytest.approx(600000., rel=1e-6)
    torch.testing.assert_close(p.grad.float(), torch.full((100,), 0.1), rtol=2e-3, atol=0)


@settings(max_examples=60, deadline=None)
@given(vals=st.lists(st.floats(-3.0000000054977558e+38, 3.0000000054977558e+38, allow_nan=False, width=32), min_size=1, max_size=40),
       max_norm=st.floats(1e-6, 1e6), norm_type=st.sampled_from([1., 2., 3., INF]))
def test_norm_clip_properties(vals, max_norm, norm_type):
    "Finite gradients of any magnitude: finite after clipping, norm at most max_norm, direction kept"
    p = _param(*vals)
    before = p.grad.double().clone()
    true_norm = torch.linalg.vector_norm(before, norm_type).item()
    n, clipped = clip_grads_([p], max_norm, norm_type)
    assert n == pytest.approx(true_norm, rel=1e-5)
    assert torch.isfinite(p.grad).all()
    if not clipped: assert torch.equal(p.grad.double(), before); return
    after = p.grad.double()
    assert torch.linalg.vector_norm(after, norm_type).item() == pytest.approx(max_norm, rel=1e-5)
    big = before.abs() > before.abs().max() * 1e-3                  # elements not lost to float32 underflow
    torch.testing.assert_close(after[big] / before[big], torch.full_like(after[big], max_norm / true_norm), rtol=1e-5, atol=0)


class _Poison(Callback):
    "Write `val` into the first gradient at training step `at`"
    def __init__(self, at, val): self.at, self.val = at, val
    def after_backward(self):
        if self.learn.train_iter == self.at: next(self.learn.model.parameters()).grad.view(-1)[0] = self.val


class _CancelAt(Callback):
    "Skip the optimizer step at training step `at`, the way fastai callbacks do"
    order = GradClip.order
    def __init__(self, at): self.at = at
    def before_step(self):
        if self.learn.train_iter == self.at: raise CancelStepException()


@pytest.mark.parametrize('bad', [INF, NAN])
def test_skip_is_a_skipped_step(bad):
    "A poisoned step under GradClip(nonfinite='skip') ends exactly like the same fit with that step cancelled"
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        ours, learn = _fit([GradClip(max_norm=1e6), _Poison(at=5, val=bad)], n_epoch=1)
    ref, _ = _fit([GradClip(max_norm=1e6), _CancelAt(at=5)], n_epoch=1)
    assert torch.equal(ours, ref)
    plain, _ = _fit(GradClip(max_norm=1e6), n_epoch=1)
    assert not torch.equal(ours, plain)                            # skipping a step did change the fit
    st_ = learn.grad_clip.stats
    assert st_.skipped.tolist() == [i == 5 for i in range(10)] and learn.grad_clip.n_skipped == 1
    assert any('skipped 1 of 10' in str(w.message) for w in ws)


def test_raise_names_the_step():
    set_seed(0)
    learn = synth_learner(cbs=[GradClip(nonfinite='raise'), _Poison(at=13, val=INF)])
    with learn.no_logging(), learn.no_bar(), pytest.raises(FloatingPointError, match=r'training step 13 \(epoch 1, batch 3\)'):
        learn.fit(2)
    assert learn.grad_clip.stats.skipped.tolist() == [False] * 13 + [True]


class _FakeScale(Callback):
    "Loss scaling as fastai's `MixedPrecision` does it, on the CPU: scale the loss, unscale the gradients in before_step"
    order, S = 10, 2.**16
    def before_backward(self): self.learn.loss_grad = self.learn.loss_grad * self.S
    def before_step(self): torch._foreach_mul_([p.grad for p in self.learn.model.parameters()], 1 / self.S)


class _PostClipNorm(Callback):
    "Norm (float64) of the gradients the optimizer is about to use"
    order = GradClip.order + 1
    def before_fit(self): self.seen = []
    def before_step(self):
        self.seen.append(torch.linalg.vector_norm(torch.cat([p.grad.double().flatten() for p in self.learn.model.parameters()])).item())


def test_runs_after_loss_unscaling():
    from fastai.callback.fp16 import MixedPrecision
    assert GradClip.order > MixedPrecision.order == _FakeScale.order
    probe = _PostClipNorm()
    _fit([_FakeScale(), GradClip(max_norm=1e-3), probe], n_epoch=1)
    np.testing.assert_allclose(probe.seen, 1e-3, rtol=1e-6)       # clipped in the units of the real gradient


def test_fit_with_a_pytorch_optimizer():
    "fastai's `OptimWrapper` around `torch.optim.SGD`: same result as fastai's `GradientClip`"
    from functools import partial
    from fastai.learner import Learner
    from fastai.losses import MSELossFlat
    from fastai.optimizer import OptimWrapper
    from fastai.test_utils import synth_dbunch
    def fit(cb):
        set_seed(5)
        net = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))
        learn = Learner(synth_dbunch(), net, loss_func=MSELossFlat(), lr=0.1, cbs=cb,
                        opt_func=partial(OptimWrapper, opt=partial(torch.optim.SGD, momentum=0.9)))
        with learn.no_logging(), learn.no_bar(): learn.fit(2)
        return torch.cat([p.detach().flatten() for p in net.parameters()]), learn
    ref, _ = fit(GradientClip(max_norm=0.3))
    ours, learn = fit(GradClip(max_norm=0.3))
    assert learn.grad_clip.stats.clipped.sum() > 0
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


# ---- issue 12: NaN must not reach the model's state -------------------------------------------------------------

class _NaNInputAt(Callback):
    "Replace the inputs of training step `at` by NaN; record the BatchNorm buffers just before that batch"
    def __init__(self, at, bn): self.at, self.bn = at, bn
    def before_batch(self):
        if self.training and self.learn.train_iter == self.at:
            self.seen = (self.bn.running_mean.clone(), self.bn.running_var.clone())
            self.learn.xb = (torch.full_like(self.xb[0], NAN),)


class _BNAfter(Callback):
    "BatchNorm's buffers after every training batch"
    def __init__(self, bn): self.bn, self.seen = bn, []
    def after_batch(self):
        if self.training: self.seen.append((self.bn.running_mean.clone(), self.bn.running_var.clone()))


def _bn_learner(*cbs, **kw):
    set_seed(0)
    model = nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    return synth_learner(model=model, lr=1e-2, cbs=list(cbs), **kw), model[1]


def test_nan_batch_leaves_batchnorm_buffers():
    "Before: running_mean/var NaN after one NaN batch and validation NaN; now: the values from before that batch"
    learn, bn = _bn_learner()
    nan_in, after = _NaNInputAt(3, bn), _BNAfter(bn)
    with learn.no_logging(), learn.no_bar(), warnings.catch_warnings():
        warnings.simplefilter('ignore'); learn.fit(1, cbs=[GradClip(), nan_in, after])
    mean3, var3 = after.seen[3]
    assert torch.equal(mean3, nan_in.seen[0]) and torch.equal(var3, nan_in.seen[1])
    assert not torch.equal(after.seen[4][0], mean3)                 # later batches still update them
    assert bn.running_mean.isfinite().all() and bn.running_var.isfinite().all()
    with learn.no_bar(): assert math.isfinite(learn.validate()[0])


def test_nan_batch_raise_before_state_changes():
    learn, bn = _bn_learner()
    nan_in = _NaNInputAt(3, bn)
    with learn.no_logging(), learn.no_bar(), pytest.raises(FloatingPointError, match='training step 3'):
        learn.fit(1, cbs=[GradClip(nonfinite='raise'), nan_in])
    assert torch.equal(bn.running_mean, nan_in.seen[0]) and torch.equal(bn.running_var, nan_in.seen[1])


def test_nan_batch_under_gradient_accumulation():
    "A NaN in an accumulated batch (not the one that steps): the buffers go back to the start of the accumulation"
    from fastai.callback.training import GradientAccumulation
    learn, bn = _bn_learner()
    nan_in, after, gc = _NaNInputAt(2, bn), _BNAfter(bn), GradClip()  # bs 16, n_acc 32: steps at batches 1, 3, 5, ...
    with learn.no_logging(), learn.no_bar(), warnings.catch_warnings():
        warnings.simplefilter('ignore'); learn.fit(1, cbs=[GradientAccumulation(32), gc, nan_in, after])
    st_ = gc.stats
    assert st_.skipped.tolist() == [False, True, False, False, False]
    assert torch.equal(after.seen[3][0], after.seen[1][0]) and torch.equal(after.seen[3][1], after.seen[1][1])
    assert bn.running_mean.isfinite().all()


def test_no_buffers_no_copies():
    cb = GradClip()
    _, learn = _fit(cb, n_epoch=1)
    assert cb._bufs == []


class _AllNaN(Callback):
    def after_backward(self): next(self.learn.model.parameters()).grad.view(-1)[0] = NAN


@pytest.mark.parametrize('kw,n_epoch,match', [
    (dict(max_skips=5), 1, 'skipped the last 5 optimizer steps in a row'),
    (dict(), 1, 'skipped every one of the 10 optimizer steps'),              # shorter than max_skips=20
    (dict(max_skips=None), 3, 'skipped every one of the 30 optimizer steps')])
def test_every_step_skipped_is_an_error(kw, n_epoch, match):
    "Before: every step skipped, weights unchanged, one warning at the end; now: FloatingPointError"
    learn = synth_learner(cbs=[GradClip(**kw), _AllNaN()])
    with learn.no_logging(), learn.no_bar(), pytest.raises(FloatingPointError, match=match): learn.fit(n_epoch)


def test_max_skips_counts_in_a_row():
    "Skips separated by good steps never add up to max_skips"
    class _EveryOther(Callback):
        def after_backward(self):
            if self.learn.train_iter % 2: next(self.learn.model.parameters()).grad.view(-1)[0] = NAN
    learn = synth_learner(cbs=[GradClip(max_skips=2), _EveryOther()])
    with learn.no_logging(), learn.no_bar(), warnings.catch_warnings():
        warnings.simplefilter('ignore'); learn.fit(2)
    assert learn.grad_clip.n_skipped == 10


# ---- norm_type: bounded, and norms safe from over- and underflow ------------------------------------------------

@pytest.mark.parametrize('norm_type', [0.05, 0.5, 0.999, 0., -1.])
def test_norm_type_below_one_refused(norm_type):
    "Before: GradClip(norm_type=0.05) skipped every step (the 0.05-'norm' overflowed float32); now refused at once"
    for f in (lambda: GradClip(norm_type=norm_type), lambda: clip_grads_(nn.Linear(2, 2).parameters(), norm_type=norm_type),
              lambda: grad_norm(nn.Linear(2, 2).parameters(), norm_type=norm_type)):
        with pytest.raises(ValueError, match=f'norm_type={norm_type!r} must be .* >= 1'): f()


@pytest.mark.parametrize('scale', [1e-30, 1e-20, 1e-3, 1., 1e20, 1e36])
@pytest.mark.parametrize('norm_type', [1., 1.5, 2., 3., 7., 100., 1000., INF])
def test_norm_matches_float64_at_any_scale(scale, norm_type):
    "PyTorch's float32 norm is 0 or inf at these scales for several p; ours matches float64 (scaled: 1000 is too much for it)"
    torch.manual_seed(0)
    ps = [_param(*(torch.rand(n) * scale).tolist()) for n in (50, 7, 1)]
    def f64_norm(ps):
        g = np.abs(np.concatenate([p.grad.double().numpy() for p in ps])); a = g.max()
        return a if norm_type == INF else a * float(np.sum((g / a) ** norm_type)) ** (1 / norm_type)
    ref = f64_norm(ps)
    if norm_type <= 3 and 1e-15 < scale < 1e15:
        assert ref == pytest.approx(torch.linalg.vector_norm(torch.cat([p.grad.double() for p in ps]), norm_type).item(), rel=1e-12)
    assert grad_norm(ps, norm_type) == pytest.approx(ref, rel=1e-5)
    max_norm = ref / 2
    n, clipped = clip_grads_(ps, max_norm, norm_type)
    assert clipped and n == pytest.approx(ref, rel=1e-5)
    assert f64_norm(ps) == pytest.approx(max_norm, rel=1e-4)


# ---- gradient layouts ---------------------------------------------------------------------------------------------

def _embeddings(seed=0):
    torch.manual_seed(seed)
    e, d = nn.Embedding(6, 3, sparse=True), nn.Embedding(6, 3)
    d.weight.data.copy_(e.weight.data)
    idx = torch.tensor([1, 1, 4, 5, 5, 5])
    for m in (e, d): (m(idx) * torch.arange(1., 4.)).sum().backward()
    return e, d


@pytest.mark.parametrize('max_norm', [0.1, 100.])
def test_sparse_norm_matches_clip_grad_norm(max_norm):
    e, d = _embeddings()
    n_ref = torch.nn.utils.clip_grad_norm_(d.parameters(), max_norm).item()
    n, clipped = clip_grads_(e.parameters(), max_norm)
    assert n == pytest.approx(n_ref, rel=1e-6) and clipped == (n_ref > max_norm)
    torch.testing.assert_close(e.weight.grad.to_dense(), d.weight.grad, rtol=1e-5, atol=1e-8)
    e2, _ = _embeddings()
    assert torch.nn.utils.clip_grad_norm_(e2.parameters(), max_norm).item() == pytest.approx(n_ref, rel=1e-6)


@pytest.mark.parametrize('max_norm', [0.5, 2.5, 100.])
def test_sparse_value_matches_dense_clip_grad_value(max_norm):
    "Before: NotImplementedError (as PyTorch's clip_grad_value_ on a sparse gradient); now: the dense result"
    e, d = _embeddings()
    with pytest.raises(NotImplementedError): torch.nn.utils.clip_grad_value_(_embeddings()[0].parameters(), max_norm)
    torch.nn.utils.clip_grad_value_(d.parameters(), max_norm)
    n, clipped = clip_grads_(e.parameters(), max_norm, mode='value')
    assert n == 9. and clipped == (max_norm < 9.)                     # row 5, third column: 3 lookups x 3
    assert torch.equal(e.weight.grad.to_dense(), d.weight.grad)


def test_sparse_agc_refused_naming_the_parameter():
    "Before: RuntimeError from norm_sparse; now: ValueError naming the parameter (by position, or by name in a fit)"
    e, _ = _embeddings()
    with pytest.raises(ValueError, match=r"params\[0\] \(shape \(6, 3\)\) has a sparse gradient"):
        clip_grads_(e.parameters(), mode='agc')
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper
    from fastai.test_utils import synth_dbunch
    from functools import partial
    class EmbReg(nn.Module):
        def __init__(self): super().__init__(); self.emb, self.lin = nn.Embedding(4, 1, sparse=True), nn.Linear(1, 1)
        def forward(self, x): return self.lin(self.emb((x.abs() * 1000).long() % 4).squeeze(-1))
    learn = Learner(synth_dbunch(), EmbReg(), loss_func=nn.MSELoss(), lr=0.1,
                    opt_func=partial(OptimWrapper, opt=torch.optim.SGD), cbs=GradClip(mode='agc'))
    with learn.no_logging(), learn.no_bar(), pytest.raises(ValueError, match="parameter 'emb.weight' has a sparse gradient"):
        learn.fit(1)


def test_sparse_in_a_fit_by_norm():
    "GradClip in a fit with a sparse embedding and PyTorch's SparseAdam-free SGD: same as clip_grad_norm_ on the dense twin"
    from functools import partial
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper
    from fastai.test_utils import synth_dbunch
    class EmbReg(nn.Module):
        def __init__(self, sparse): super().__init__(); self.emb, self.lin = nn.Embedding(4, 1, sparse=sparse), nn.Linear(1, 1)
        def forward(self, x): return self.lin(self.emb((x.abs() * 1000).long() % 4).squeeze(-1))
    def fit(sparse, cb):
        set_seed(3)
        m = EmbReg(sparse)
        learn = Learner(synth_dbunch(), m, loss_func=nn.MSELoss(), lr=0.1, cbs=cb,
                        opt_func=partial(OptimWrapper, opt=torch.optim.SGD))
        with learn.no_logging(), learn.no_bar(): learn.fit(2)
        return torch.cat([p.detach().flatten() for p in m.parameters()]), learn
    ours, learn = fit(True, GradClip(max_norm=0.05))
    ref, _ = fit(False, GradientClip(max_norm=0.05))
    assert learn.grad_clip.stats.clipped.sum() > 0
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)


def _mixed(vals=(3., -4., 0.5)):
    return [_param(*vals, dtype=dt) for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)]


@pytest.mark.parametrize('max_norm', [0.5, 100.])
def test_mixed_dtypes_match_pytorch(max_norm):
    ours, ref = _mixed(), _mixed()
    n_ref = torch.nn.utils.clip_grad_norm_(ref, max_norm).item()
    n, clipped = clip_grads_(ours, max_norm)
    assert n == pytest.approx(n_ref, rel=2e-3) and clipped == (n_ref > max_norm)   # half-precision per-tensor norms
    for p, q in zip(ours, ref):
        assert p.grad.dtype == q.grad.dtype
        torch.testing.assert_close(p.grad.double(), q.grad.double(), rtol=1e-2, atol=1e-3)
    ours, ref = _mixed(), _mixed()
    torch.nn.utils.clip_grad_value_(ref, max_norm / 4)
    clip_grads_(ours, max_norm / 4, mode='value')
    for p, q in zip(ours, ref): assert torch.equal(p.grad, q.grad)


def test_mixed_dtypes_agc_matches_reference():
    ps = _mixed()
    for p in ps: p.data.fill_(1.)
    expect = _agc_reference(ps, 0.1, 1e-3)
    clip_grads_(ps, mode='agc', clip_factor=0.1)
    for p, e in zip(ps, expect): torch.testing.assert_close(p.grad.double(), e, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize('mode', ['norm', 'value', 'agc'])
@pytest.mark.parametrize('norm_type', [2., INF])
def test_empty_tensors_are_ignored(mode, norm_type):
    "PyTorch's clip_grad_norm_(norm_type=inf) raises on an empty gradient; an empty gradient has nothing to clip"
    empty, w = nn.Parameter(torch.zeros(0)), nn.Parameter(torch.ones(2, 0))
    empty.grad, w.grad = torch.zeros(0), torch.zeros(2, 0)
    p, q = _param(3., 4.), _param(3., 4.)
    n, clipped = clip_grads_([empty, w, p], 1., norm_type, mode=mode)
    n_ref, clipped_ref = clip_grads_([q], 1., norm_type, mode=mode)
    assert (n, clipped) == (n_ref, clipped_ref) and torch.equal(p.grad, q.grad)
    assert clip_grads_([empty], 1., norm_type, mode=mode) == (0., False)
    if norm_type == INF:
        with pytest.raises(RuntimeError): torch.nn.utils.clip_grad_norm_([empty], 1., INF)


def test_complex_gradients():
    c, ref = _param(3., 4., dtype=torch.complex64), _param(3., 4., dtype=torch.complex64)
    c.grad, ref.grad = c.grad * 1j, ref.grad * 1j
    torch.nn.utils.clip_grad_norm_([ref], 1.)
    assert clip_grads_([c], 1.) == (pytest.approx(5.), True)
    torch.testing.assert_close(c.grad, ref.grad)
    for mode in ('value', 'agc'):
        with pytest.raises(ValueError, match=r"params\[0\] \(shape \(2,\)\) has a complex gradient"): clip_grads_([c], mode=mode)


def test_integer_gradient_refused():
    t = torch.zeros(3, dtype=torch.long); t.grad = torch.ones(3, dtype=torch.long)
    with pytest.raises(TypeError, match=r"params\[1\] \(shape \(3,\)\) has a torch.int64 gradient"): clip_grads_([_param(1.), t])
    with pytest.raises(TypeError, match=r"params\[0\]"): grad_norm(t)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
@pytest.mark.parametrize('mode', ['norm', 'value', 'agc'])
def test_mixed_devices(mode):
    ps = [_param(3., 4.), _param(30., 40.)]
    gpu = [_param(3., 4.), _param(30., 40.)]
    gpu[1] = nn.Parameter(gpu[1].detach().cuda()); gpu[1].grad = torch.tensor([30., 40.], device='cuda')
    n, clipped = clip_grads_(ps, 1., mode=mode)
    n2, clipped2 = clip_grads_(gpu, 1., mode=mode)
    assert n2 == pytest.approx(n, rel=1e-6) and clipped2 == clipped
    for p, q in zip(ps, gpu): torch.testing.assert_close(p.grad, q.grad.cpu())


# ---- params ----------------------------------------------------------------------------------------------------

def test_consumed_generator_is_an_error():
    "Before: clip_grads_ on a consumed generator clipped nothing and returned (0.0, False); now: ValueError naming params"
    net = nn.Linear(3, 2); net(torch.randn(4, 3)).sum().backward()
    ps = net.parameters(); list(ps)
    for f in (clip_grads_, grad_norm):
        with pytest.raises(ValueError, match='params is empty'): f(ps)
        with pytest.raises(ValueError, match='params is empty'): f([])
    assert clip_grads_(nn.Linear(3, 2).parameters(), 1.) == (0., False)   # parameters without gradients: nothing to do


@pytest.mark.parametrize('bad,match', [(None, 'params=None'), (3, 'params=3'), ('w', "params='w'"), ({'w': 1}, 'params='),
                                       ([torch.ones(1), 'w'], r"params\[1\]='w'"), ([None], r'params\[0\]=None')])
def test_params_not_tensors(bad, match):
    for f in (clip_grads_, grad_norm):
        with pytest.raises(TypeError, match=match): f(bad)


# ---- figures display once -----------------------------------------------------------------------------------------

def test_plots_return_a_closed_figure():
    import matplotlib.pyplot as plt
    _, learn = _fit(GradClip(max_norm=0.5), n_epoch=1)
    before = set(plt.get_fignums())
    for fig in (learn.grad_clip.plot_grad_norms(), learn.plot_grad_norms()):
        assert fig.axes and len(fig.axes[0].lines) >= 1
        assert set(plt.get_fignums()) == before                     # made and closed: shown once
    fig, ax = plt.subplots()
    assert learn.plot_grad_norms(ax=ax) is fig and plt.fignum_exists(fig.number)   # the caller's figure: left open
    plt.close(fig)
    with pytest.raises(TypeError, match='ax='): learn.plot_grad_norms(ax=3)
