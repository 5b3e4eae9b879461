"""Cross-check ozcycle.fit against fastai: recorded LR/momentum per batch and per group, refit vs a fresh
fit_one_cycle, fit_cycle vs fastai's fit_one_cycle, and exact resume with checkpoints, trackers and loggers."""
import os, pickle, re, warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.progress import CSVLogger, ProgressCallback
from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.optimizer import SGD, Adam, OptimWrapper
from fastai.test_utils import RegModel, synth_dbunch
from fastai.torch_core import set_seed

from ozcycle.fit import *
from ozcycle.schedules import *

N_TRN = 5   # training batches per epoch


class HyperLog(Callback):
    "Independent record of every group's lr and mom as set for each training batch"
    order = 70   # after ParamScheduler (60)
    def before_fit(self): self.lrs, self.ms = [], []
    def before_batch(self):
        if not self.training: return
        self.lrs.append([h['lr'] for h in self.opt.hypers])
        self.ms.append([h.get('mom', np.nan) for h in self.opt.hypers])
    def arrays(self): return np.array(self.lrs), np.array(self.ms)


class StopAfter(Callback):
    "Interrupt the fit at the end of epoch `epoch` (after SaveModelCallback has saved it)"
    order = 99
    def __init__(self, epoch): self.stop_at = epoch
    def after_epoch(self):
        if self.epoch == self.stop_at: raise CancelFitException()


def two_groups(m): return [[m.a], [m.b]]


def make(groups=1, opt_func=partial(SGD, mom=0.9), path=None, bar=False, seed=0, shuffle=False):
    "A synth learner with N_TRN batches per epoch, deterministic (fixed init, no shuffling unless asked)"
    set_seed(seed)
    dls = synth_dbunch(n_train=N_TRN, n_valid=2)
    dls.train.shuffle = shuffle
    kw = dict(splitter=two_groups) if groups == 2 else {}
    learn = Learner(dls, RegModel(), loss_func=MSELossFlat(), opt_func=opt_func, lr=1e-3,
                    path=path if path is not None else Path('.'), **kw)
    if not bar: learn.remove_cb(ProgressCallback)
    learn.logger = lambda *a: None
    return learn


def peak(groups): return 1e-2 if groups == 1 else np.array([1e-4, 1e-2])
def lr_arg(groups): return 1e-2 if groups == 1 else slice(1e-4, 1e-2)


def check_record(learn, log, lr_sched, mom_sched, n_epoch, start_epoch, groups):
    "fit_state.hps and the independent log both equal sched_values of the intended schedules, from start_epoch on"
    fs, n = learn.fit_state, n_epoch * N_TRN
    lrs, ms = log.arrays()
    assert fs.hps['lr'].shape == (n - start_epoch * N_TRN, groups) == lrs.shape
    want = sched_values(lr_sched, n).reshape(n, -1)[start_epoch * N_TRN:]
    np.testing.assert_array_equal(fs.hps['lr'], np.broadcast_to(want, fs.hps['lr'].shape))   # exactly sched(i / n_steps)
    np.testing.assert_array_equal(fs.hps['lr'], lrs)
    wm = sched_values(mom_sched, n).reshape(n, -1)[start_epoch * N_TRN:]
    np.testing.assert_array_equal(fs.hps['mom'], np.broadcast_to(wm, fs.hps['mom'].shape))
    np.testing.assert_array_equal(fs.hps['mom'], ms)
    np.testing.assert_array_equal(fs.lr_last, fs.hps['lr'][-1])
    assert (fs.n_epoch, fs.n_steps, fs.start_epoch) == (n_epoch, n, start_epoch)


CASES = [(1, 0, 1), (3, 0, 1), (3, 2, 1), (4, 1, 2), (2, 2, 2)]   # (n_epoch, start_epoch, groups)


@pytest.mark.parametrize("n_epoch,start_epoch,groups", CASES)
def test_fit_cycle_records(n_epoch, start_epoch, groups):
    learn, log = make(groups), HyperLog()
    learn.fit_cycle(n_epoch, lr_arg(groups), cbs=log, start_epoch=start_epoch)
    if start_epoch == n_epoch:
        assert learn.fit_state.n_trained == 0 and log.lrs == []
        np.testing.assert_array_equal(learn.fit_state.lr_last, np.broadcast_to(last_value(one_cycle(peak(groups)), n_epoch * N_TRN), (groups,)))
        np.testing.assert_array_equal([h['lr'] for h in learn.opt.hypers], learn.fit_state.lr_last)
        return
    check_record(learn, log, one_cycle(peak(groups)), one_cycle_moms(), n_epoch, start_epoch, groups)
    assert learn.fit_state.kind == 'one_cycle'
    np.testing.assert_allclose(learn.fit_state.lr_max, np.broadcast_to(peak(groups), (groups,)))


def intended(strategy, groups, kw):
    "The schedules a continuation should run after fit_cycle(2, lr_max), built straight from ozcycle.schedules"
    p, base_moms = peak(groups), FitStateLast[groups]
    if strategy == 'refit':
        lr = kw.get('lr_max', p / kw.get('lr_div', 3.))   # the documented defaults: refit at a third of the peak,
        return one_cycle(lr, pct_start=kw.get('pct_start', 0.25)), one_cycle_moms(kw.get('moms', (0.95, 0.85, 0.95)), kw.get('pct_start', 0.25))
    if strategy == 'constant':
        return constant(kw.get('lr', p / kw.get('lr_div', 10.))), constant(kw.get('mom', base_moms))   # constant at a tenth,
    return (decay_only(kw.get('lr_start', p / kw.get('lr_div', 1.)), kw.get('div_final', 1e5), kw.get('kind', 'cos')),   # decay from the peak
            decay_only_moms(kw.get('moms', (0.85, 0.95)), kw.get('kind', 'cos')))


FitStateLast = {g: last_value(one_cycle_moms(), 2 * N_TRN) for g in (1, 2)}

STRATEGY_KW = [('refit', {}), ('refit', {'lr_div': 3., 'pct_start': 0.4}), ('refit', {'lr_max': 2e-3, 'moms': (0.9, 0.8, 0.9)}),
               ('constant', {}), ('constant', {'lr': 3e-4, 'mom': 0.9}), ('decay', {}),
               ('decay', {'lr_start': 2e-3, 'kind': 'linear', 'div_final': 100.})]


@pytest.mark.parametrize("strategy,kw", STRATEGY_KW)
@pytest.mark.parametrize("n_epoch,start_epoch,groups", [(2, 0, 1), (3, 1, 2)])
@pytest.mark.parametrize("via", ['method', 'fit_continue'])
def test_continuations_record_intended_schedule(strategy, kw, n_epoch, start_epoch, groups, via):
    if groups == 2 and ('lr_max' in kw or 'lr' in kw or 'lr_start' in kw): kw = dict(kw)  # explicit float: same for both groups
    learn = make(groups)
    learn.fit_cycle(2, lr_arg(groups))
    base = learn.fit_state
    log = HyperLog()
    if via == 'method': getattr(learn, f'fit_{strategy}')(n_epoch, cbs=log, start_epoch=start_epoch, **kw)
    else: learn.fit_continue(n_epoch, strategy, cbs=log, start_epoch=start_epoch, **kw)
    lr_s, mom_s = intended(strategy, groups, kw)
    check_record(learn, log, lr_s, mom_s, n_epoch, start_epoch, groups)
    fs = learn.fit_state
    assert fs.kind == strategy
    # the schedules the fit ran are exactly what continuation_scheds gives (what the explorer draws)
    cs = continuation_scheds(strategy, base, **kw)
    assert fs.scheds == {k: v for k, v in cs.items() if v is not None}
    if strategy == 'decay': assert np.all(np.diff(fs.hps['lr'], axis=0) <= 0)
    if strategy == 'constant' and start_epoch == 0: np.testing.assert_allclose(fs.hps['lr'][0], np.broadcast_to(kw.get('lr', peak(groups) / 10), (groups,)))
    if groups == 2 and not kw: np.testing.assert_allclose(fs.hps['lr'][:, 1] / fs.hps['lr'][:, 0], 100., rtol=1e-9)


@pytest.mark.parametrize("n_epoch,start_epoch,groups", [(2, 0, 1), (3, 1, 2)])
def test_fit_schedule_records(n_epoch, start_epoch, groups):
    lr = wsd(peak(groups), pct_warmup=0.2, pct_decay=0.3, decay='linear')
    mom = piecewise([0.9, 0.8], [0.5, 0.5])
    learn, log = make(groups), HyperLog()
    learn.fit_schedule(n_epoch, {'lr': lr, 'mom': mom}, cbs=log, start_epoch=start_epoch)
    check_record(learn, log, lr, mom, n_epoch, start_epoch, groups)
    assert learn.fit_state.kind == 'schedule'
    np.testing.assert_allclose(learn.fit_state.lr_max, np.broadcast_to(peak(groups), (groups,)))


@pytest.mark.parametrize("groups,e1", [(1, 3), (2, 2)])
def test_refit_equals_fresh_fit_one_cycle(groups, e1):
    learn, log = make(groups), HyperLog()
    learn.fit_cycle(2, lr_arg(groups))
    learn.fit_refit(e1, cbs=log)
    ref, rlog = make(groups), HyperLog()
    ref.fit_one_cycle(e1, 1e-2 / 3 if groups == 1 else slice(1e-4 / 3, 1e-2 / 3), cbs=rlog)   # fastai's own, at a third of the peak (refit's default)
    (a, am), (b, bm) = log.arrays(), rlog.arrays()
    assert a.shape == b.shape == (e1 * N_TRN, groups)
    np.testing.assert_allclose(a, b, rtol=1e-6)     # fastai computes phase positions in float32
    np.testing.assert_allclose(am, bm, rtol=1e-6)
    np.testing.assert_allclose(learn.fit_state.hps['lr'], ref.fit_state.hps['lr'], rtol=1e-6)
    assert ref.fit_state.kind == 'one_cycle'


@pytest.mark.parametrize("e0,e1,groups", [(2, 3, 1), (1, 2, 2)])
def test_long_cycle_equals_fastai(e0, e1, groups):
    "fit_cycle(E0+E1), in one go and as E0 epochs then a resume at E0, equals fastai's fit_one_cycle(E0+E1)"
    ref, rlog = make(groups), HyperLog()
    ref.fit_one_cycle(e0 + e1, lr_arg(groups), cbs=rlog)
    one, olog = make(groups), HyperLog()
    one.fit_cycle(e0 + e1, lr_arg(groups), cbs=olog)
    np.testing.assert_allclose(olog.arrays()[0], rlog.arrays()[0], rtol=1e-6)
    np.testing.assert_allclose(olog.arrays()[1], rlog.arrays()[1], rtol=1e-6)
    two, l1, l2 = make(groups), HyperLog(), HyperLog()
    two.fit_cycle(e0 + e1, lr_arg(groups), cbs=[l1, StopAfter(e0 - 1)])
    two.fit_cycle(e0 + e1, lr_arg(groups), cbs=l2, start_epoch=e0)
    np.testing.assert_array_equal(np.concatenate([l1.arrays()[0], l2.arrays()[0]]), olog.arrays()[0])
    np.testing.assert_array_equal(np.concatenate([l1.arrays()[1], l2.arrays()[1]]), olog.arrays()[1])
    for p, q in zip(one.model.parameters(), two.model.parameters()): assert torch.equal(p, q)


def files(d): return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(Path(d).glob('*.pth'))}


@pytest.mark.parametrize("method,kw", [('fit_cycle', {'lr_max': 1e-2}), ('fit_refit', {}), ('fit_constant', {}),
                                       ('fit_decay', {'kind': 'linear'})])
@pytest.mark.parametrize("k", [1, 3])
def test_resume_equals_uninterrupted(tmp_path, method, kw, k):
    "Interrupt after epoch k-1, reload its checkpoint in a new learner, resume at k: same batches, same weights, old files untouched"
    E = 4
    def run(path, cbs, start_epoch=0, load=None, prev=None):
        learn = make(path=path)
        learn.fit_cycle(2, 1e-2)   # the base run (also sets fit_state)
        base = pickle.loads(pickle.dumps(learn.fit_state))
        if load is not None: learn.load(load, with_opt=True)
        log = HyperLog()
        extra = {} if method == 'fit_cycle' else {'prev': prev or base}
        getattr(learn, method)(E, cbs=[SaveModelCallback(every_epoch=True, with_opt=True, fname='ep'), log] + cbs,
                               start_epoch=start_epoch, **kw, **extra)
        return learn, log, base
    full, flog, _ = run(tmp_path / 'full', [])
    part, _, base = run(tmp_path / 'part', [StopAfter(k - 1)])
    saved = files(tmp_path / 'part' / 'models')
    assert sorted(saved) == [f'ep_{i}.pth' for i in range(k)]
    res, rlog, _ = run(tmp_path / 'part', [], start_epoch=k, load=f'ep_{k-1}', prev=base)
    after = files(tmp_path / 'part' / 'models')
    assert sorted(after) == [f'ep_{i}.pth' for i in range(E)]
    for name, v in saved.items(): assert after[name] == v, f'{name} was rewritten'   # same bytes, same mtime
    np.testing.assert_array_equal(rlog.arrays()[0], flog.arrays()[0][k * N_TRN:])
    np.testing.assert_array_equal(rlog.arrays()[1], flog.arrays()[1][k * N_TRN:])
    np.testing.assert_array_equal(res.fit_state.hps['lr'], full.fit_state.hps['lr'][k * N_TRN:])
    for p, q in zip(full.model.parameters(), res.model.parameters()): assert torch.equal(p, q)
    assert len(res.recorder.values) == E - k
    for i in range(k, E):
        for p, q in zip(torch.load(tmp_path / 'full' / 'models' / f'ep_{i}.pth', weights_only=False)['model'].values(),
                        torch.load(tmp_path / 'part' / 'models' / f'ep_{i}.pth', weights_only=False)['model'].values()):
            assert torch.equal(p, q)


def test_resume_with_trackers_csvlogger_and_progress_bar(tmp_path, capsys):
    "Skipped epochs write nothing: CSV rows, printed table and tracker values only for epochs trained"
    learn = make(path=tmp_path, bar=True)
    learn.logger = print
    cbs = [CSVLogger(), EarlyStoppingCallback(patience=10), SaveModelCallback(fname='best'), SaveModelCallback(every_epoch=True, fname='ep')]
    learn.fit_cycle(4, 1e-2, start_epoch=2, cbs=cbs)
    rows = (tmp_path / 'history.csv').read_text().strip().split('\n')
    assert rows[0].startswith('epoch,train_loss,valid_loss') and [r.split(',')[0] for r in rows[1:]] == ['2', '3']
    assert len(learn.recorder.values) == 2 and all(len(v) == 2 for v in learn.recorder.values)
    assert sorted(p.name for p in (tmp_path / 'models').glob('*.pth')) == ['best.pth', 'ep_2.pth', 'ep_3.pth']
    out = capsys.readouterr().out
    assert re.findall(r'(\d+)\s+[\d.]+\s+[\d.]+\s+\d\d:\d\d', out) == ['2', '3'], out   # printed table rows
    assert 'Epoch 3/4' in out and 'Epoch 4/4' in out and 'Epoch 1/4' not in out and 'Epoch 2/4' not in out
    learn.fit_continue(3, 'decay', start_epoch=1, cbs=[CSVLogger(fname='cont.csv'), EarlyStoppingCallback(patience=10)])
    assert [r.split(',')[0] for r in (tmp_path / 'cont.csv').read_text().strip().split('\n')[1:]] == ['1', '2']


def test_fastai_start_epoch_is_flagged(tmp_path):
    learn = make(path=tmp_path)
    learn.fit_one_cycle(3, 1e-2, start_epoch=1)
    assert [len(v) for v in learn.recorder.values] == [0, 2, 2]   # fastai's empty row for the skipped epoch
    with pytest.warns(UserWarning, match='SkipToEpoch'):          # said when fit_state is rebuilt from the recorder
        st = learn.fit_state
    assert st.start_epoch == 1 and st.n_trained == 2 * N_TRN


def test_slice_per_group_ratio_and_one_group_error():
    learn = make(2)
    learn.fit_cycle(2, slice(1e-4, 1e-2))
    for f in (lambda: learn.fit_refit(1), lambda: learn.fit_refit(1, lr_max=slice(1e-5, 1e-3)),
              lambda: learn.fit_constant(1), lambda: learn.fit_decay(1), lambda: learn.fit_decay(1, lr_start='last')):
        f()
        np.testing.assert_allclose(learn.fit_state.hps['lr'][:, 1] / learn.fit_state.hps['lr'][:, 0], 100., rtol=1e-9)
    one = make(1)
    with pytest.raises(ValueError, match=r'lr_max=slice\(0.0001, 0.01'): one.fit_cycle(1, slice(1e-4, 1e-2))
    one.fit_cycle(1, 1e-2)
    with pytest.raises(ValueError, match=r'lr_max=slice'): one.fit_refit(1, lr_max=slice(1e-4, 1e-3))
    with pytest.raises(ValueError, match=r'lr=slice'): one.fit_constant(1, lr=slice(1e-5, 1e-3))
    with pytest.raises(ValueError, match='2 values'): one.fit_decay(1, lr_start=[1e-3, 1e-4])


def test_momentum_rules():
    adam = make(opt_func=Adam)
    adam.fit_cycle(1, 1e-2); adam.fit_refit(1); adam.fit_decay(1)
    assert adam.opt.hypers[0]['sqr_mom'] == 0.99
    tadam = make(opt_func=partial(OptimWrapper, opt=torch.optim.Adam))
    tadam.fit_cycle(1, 1e-2); tadam.fit_constant(1, mom=0.8)
    assert tadam.opt.opt.param_groups[0]['betas'] == (0.8, 0.999)
    assert np.all(tadam.fit_state.hps['mom'] == 0.8)
    # momentum 0: kept at 0 (warning naming moms), unless asked for; fastai gives it momentum
    sgd = make(opt_func=SGD)
    with pytest.warns(UserWarning, match='moms'): sgd.fit_cycle(1, 1e-2)
    assert np.all(sgd.fit_state.hps['mom'] == 0) and 'mom' not in sgd.fit_state.scheds
    for s in strategies: sgd.fit_continue(1, s); assert np.all(sgd.fit_state.hps['mom'] == 0), s
    with pytest.warns(UserWarning, match='moms'): make(opt_func=SGD).fit_refit(1, lr_max=1e-3)
    fresh = make(opt_func=SGD); fresh.fit_constant(1, lr=1e-3)   # no previous fit: momentum left as built
    assert np.all(fresh.fit_state.hps['mom'] == 0) and 'mom' not in fresh.fit_state.scheds
    sgd.fit_refit(1, moms=(0.95, 0.85, 0.95)); assert sgd.fit_state.hps['mom'][0, 0] == 0.95
    fa = make(opt_func=SGD); fa.fit_one_cycle(1, 1e-2); assert fa.fit_state.hps['mom'][0, 0] == 0.95
    # no momentum at all: LR-only schedules, clear errors when momentum is asked for
    ada = make(opt_func=partial(OptimWrapper, opt=torch.optim.Adagrad))
    with pytest.raises(KeyError): ada.fit_one_cycle(1, 1e-2)   # fastai
    ada = make(opt_func=partial(OptimWrapper, opt=torch.optim.Adagrad))
    ada.fit_cycle(1, 1e-2)
    assert ada.fit_state.mom_last is None and 'mom' not in ada.fit_state.hps
    for s in strategies: ada.fit_continue(1, s); assert ada.fit_state.mom_last is None
    with pytest.raises(ValueError, match='moms='): ada.fit_cycle(1, 1e-2, moms=(0.95, 0.85, 0.95))
    with pytest.raises(ValueError, match='moms='): ada.fit_refit(1, moms=(0.95, 0.85, 0.95))
    with pytest.raises(ValueError, match='mom=0.9'): ada.fit_constant(1, mom=0.9)
    with pytest.raises(ValueError, match="scheds\\['mom'\\]"): ada.fit_schedule(1, {'lr': constant(1e-3), 'mom': constant(0.9)})


def test_wd_cbs_reset_opt():
    class Seen(Callback):
        order = 70
        def before_fit(self): self.wds, self.n = [], 0
        def before_batch(self):
            if self.training: self.wds.append(self.opt.hypers[0]['wd']); self.n += 1
    learn = make(opt_func=Adam)
    learn.fit_cycle(1, 1e-2)
    seen, opt = Seen(), learn.opt
    learn.fit_refit(2, wd=0.1, cbs=seen)
    assert seen.n == 2 * N_TRN and set(seen.wds) == {0.1}
    assert seen not in learn.cbs and learn.opt is opt
    step = max(s.get('step', 0) for s in learn.opt.state.values())
    assert step >= 3 * N_TRN
    learn.fit_constant(1, reset_opt=True)
    assert learn.opt is not opt and max(s.get('step', 0) for s in learn.opt.state.values()) == N_TRN
    assert learn.fit_state.hps['lr'][0, 0] == pytest.approx(1e-2 / 3 / 10)   # continues from the refit's peak 1e-2 / 3, over 10


def test_no_previous_fit_raises_and_trains_nothing():
    learn = make()
    assert learn.fit_state is None   # not fitted yet: None, not an AttributeError from the model
    w = [p.clone() for p in learn.model.parameters()]
    for f, arg in [(lambda: learn.fit_refit(1), 'lr_max'), (lambda: learn.fit_constant(1), 'lr='),
                   (lambda: learn.fit_decay(1), 'lr_start'), (lambda: learn.fit_continue(1, 'refit'), 'lr_max'),
                   (lambda: learn.fit_constant(1, lr='last'), "lr='last'")]:
        with pytest.raises(ValueError, match=arg): f()
    assert all(torch.equal(a, b) for a, b in zip(w, learn.model.parameters()))
    with pytest.raises(ValueError, match="strategy='long'"): learn.fit_continue(1, 'long')
    with pytest.raises(TypeError, match='lr_start'): learn.fit_continue(1, 'constant', lr_start=1e-3)


def test_fastai_fits_leave_fit_state(tmp_path):
    learn = make(path=tmp_path)
    learn.fit_flat_cos(2, 3e-3)
    assert learn.fit_state.kind == 'schedule' and learn.fit_state.lr_max[0] == pytest.approx(3e-3)
    learn.fit(1, 1e-4)
    assert learn.fit_state.kind == 'fit' and learn.fit_state.lr_last[0] == 1e-4
    assert learn.fit_state.lr_max[0] == pytest.approx(3e-3)   # plain fit carries the cycle's peak
    st = learn.fit_state
    learn.lr_find(num_it=10, show_plot=False)
    after = learn.fit_state                                    # the LR finder leaves it alone (its save/load pickles a copy)
    assert (after.kind, after.n_trained, after.lr_last, after.lr_max) == (st.kind, st.n_trained, st.lr_last, st.lr_max)
    learn.fit_one_cycle(1, 1e-2)
    st2 = pickle.loads(pickle.dumps(learn.fit_state))
    assert st2.scheds['lr'] == one_cycle(1e-2) and st2.kind == 'one_cycle'
    np.testing.assert_array_equal(st2.hps['lr'], learn.fit_state.hps['lr'])


def test_bad_arguments():
    learn = make()
    learn.fit_cycle(1, 1e-2)
    with pytest.raises(ValueError, match='n_epoch=0'): learn.fit_refit(0)
    with pytest.raises(ValueError, match='start_epoch=3'): learn.fit_decay(2, start_epoch=3)
    with pytest.raises(ValueError, match='start_epoch=-1'): learn.fit_cycle(2, 1e-2, start_epoch=-1)
    with pytest.raises(ValueError, match='lr_div=0.5'): learn.fit_refit(1, lr_div=0.5)
    with pytest.raises(ValueError, match='pct_start=2'): learn.fit_refit(1, pct_start=2.)
    with pytest.raises(ValueError, match='mom=1.5'): learn.fit_constant(1, mom=1.5)
    with pytest.raises(TypeError, match='prev='): learn.fit_refit(1, prev={'lr_max': 1e-2})
    with pytest.raises(TypeError, match='scheds'): learn.fit_schedule(1, [constant(1e-3)])
    with pytest.raises(TypeError, match='lr=True'): learn.fit_constant(1, lr=True)
    with pytest.raises(TypeError, match='lr_max=True'): learn.fit_refit(1, lr_max=True)
    with pytest.raises(TypeError, match='lr_max=True'): learn.fit_cycle(1, lr_max=True)
    with pytest.raises(ValueError, match='wd=-1'): learn.fit_refit(1, wd=-1)
    with pytest.raises(ValueError, match='wd=nan'): learn.fit_decay(1, wd=float('nan'))
    with pytest.raises(TypeError, match="moms='high'"): learn.fit_refit(1, moms='high')
    with pytest.raises(ValueError, match=re.escape('moms=(0.9, 1.5, 0.9): moms[1]=1.5 must be a momentum in [0, 1)')):
        learn.fit_refit(1, moms=(0.9, 1.5, 0.9))
    assert learn.fit_state.kind == 'one_cycle' and learn.fit_state.n_trained == N_TRN   # none of them trained


@pytest.mark.parametrize("strategy", strategies)
def test_resume_after_callback_cancel_uses_base_defaults(strategy):
    "fit_one_cycle(2); a continuation stopped by CancelFitException after epoch 2; resumed at start_epoch=2 without prev == uninterrupted tail"
    def base():
        learn = make()
        learn.fit_one_cycle(2, 1e-2)
        return learn
    full = base()
    full.fit_continue(4, strategy)
    cut = base(); base_state = cut.fit_state
    cut.fit_continue(4, strategy, cbs=StopAfter(1))   # fastai catches the CancelFitException; after_fit still records
    st = cut.fit_state
    assert not st.completed and st.n_trained == 2 * N_TRN and st.defaults_from is base_state
    assert pickle.loads(pickle.dumps(st)).defaults_from.lr_max == base_state.lr_max   # survives a checkpoint
    log = HyperLog()
    cut.fit_continue(4, strategy, start_epoch=2, cbs=log)
    np.testing.assert_array_equal(cut.fit_state.hps['lr'], full.fit_state.hps['lr'][2 * N_TRN:])
    np.testing.assert_array_equal(log.arrays()[0], full.fit_state.hps['lr'][2 * N_TRN:])
    np.testing.assert_array_equal(cut.fit_state.hps['mom'], full.fit_state.hps['mom'][2 * N_TRN:])
    np.testing.assert_array_equal(cut.fit_state.lr_max, full.fit_state.lr_max)
    if strategy == 'refit': np.testing.assert_allclose(cut.fit_state.lr_max, [1e-2 / 3])   # base 1e-2 / 3, not 1e-2 / 9
    for p, q in zip(full.model.parameters(), cut.model.parameters()): assert torch.equal(p, q)
    assert cut.fit_state.completed and cut.fit_state.defaults_from is None


@pytest.mark.parametrize("strategy", strategies)
def test_rebuilt_base_state_gives_the_same_continuation(strategy):
    "A new process can rebuild the base's FitState without training; the continuation is then identical"
    learn = make()
    learn.fit_cycle(3, 1e-2)
    rec = learn.fit_state
    other = make()
    other.fit_cycle(3, 1e-2, start_epoch=3)   # trains nothing
    plan = FitState.planned({'lr': one_cycle(1e-2), 'mom': one_cycle_moms()}, 3, N_TRN, kind='one_cycle')
    for st in (other.fit_state, plan):
        for a in ('lr_last', 'mom_last', 'lr_max'): np.testing.assert_array_equal(getattr(st, a), getattr(rec, a))
        assert continuation_scheds(strategy, st) == continuation_scheds(strategy, rec)
    assert other.fit_state.n_trained == 0 and all(torch.equal(p, q) for p, q in zip(other.model.parameters(), make().model.parameters()))


def test_plot_returns_a_closed_figure():
    "fit_state.plot() displays once in a notebook: it returns its figure and removes it from pyplot's state"
    import matplotlib.pyplot as plt
    learn = make()
    learn.fit_cycle(1, 1e-2)
    n = len(plt.get_fignums())
    fig = learn.fit_state.plot()
    assert fig.axes and len(plt.get_fignums()) == n and fig.axes[0].get_title() == 'one_cycle: lr'


@pytest.mark.parametrize("strategy", strategies)
def test_continuation_defaults_are_the_signatures(strategy):
    "continuation_defaults reads each method's signature: the two cannot disagree, and continuation_scheds uses them"
    import inspect
    sig = inspect.signature(getattr(Learner, f'fit_{strategy}')).parameters
    d = continuation_defaults(strategy)
    assert d == {k: p.default for k, p in sig.items() if k not in ('self', 'n_epoch', 'wd', 'cbs', 'reset_opt', 'start_epoch', 'prev')}
    assert d['lr_div'] == {'refit': 3., 'constant': 10., 'decay': 1.}[strategy]   # the answer map's best arms (see 01_fit)
    base = FitState.planned({'lr': one_cycle(1e-2), 'mom': one_cycle_moms()}, 2, N_TRN, kind='one_cycle')
    assert continuation_scheds(strategy, base) == continuation_scheds(strategy, base, **d)


def test_importing_ozcycle_changes_no_fastai_default():
    from fastcore.basics import defaults
    assert not any(getattr(c, '__module__', '').startswith('ozcycle') for c in defaults.callbacks)
    learn = make()
    learn.fit_refit(1, lr_max=1e-2); learn.fit_one_cycle(1, 1e-2)
    assert not any(type(cb).__module__.startswith('ozcycle') for cb in learn.cbs)
    assert not any(k.startswith('_oz') or type(v).__module__.startswith('ozcycle') for k, v in learn.__dict__.items())


def test_issue12_inputs_raise_before_training():
    "The inputs of issue 12: each a TypeError/ValueError naming the argument, raised before any batch trains"
    import math
    learn = make()
    learn.fit_cycle(1, 1e-2)
    w, st = [p.detach().clone() for p in learn.model.parameters()], learn.fit_state
    cases = [(lambda: learn.fit_schedule(1, {'lr': lambda p: -1e-3}), ValueError, r"scheds\['lr'\]\(0\)=-0.001 must be a finite learning rate >= 0"),
             (lambda: learn.fit_schedule(1, {'lr': constant(1e-3), 'mom': lambda p: 1.5}), ValueError, r"scheds\['mom'\]\(0\)=1.5 must be a finite momentum in \[0, 1\)"),
             (lambda: learn.fit_schedule(1, {'lr': lambda p: math.nan if p > 0.5 else 1e-3}), ValueError, r"scheds\['lr'\]\(0.6\)=nan"),
             (lambda: learn.fit_constant(1, lr=1e-3, lr_div=0.5), ValueError, 'lr_div=0.5'),
             (lambda: learn.fit_decay(1, lr_start=1e-3, lr_div=-1), ValueError, 'lr_div=-1'),
             (lambda: learn.fit_refit(1, wd=1e12), ValueError, r'wd=1000000000000.0 must be a finite weight decay in \[0, 1\]'),
             (lambda: learn.fit_cycle(1, 1e-2, wd=[0.1, 0.2]), ValueError, r'wd=\[0.1, 0.2\] has 2 values but the optimizer has 1 parameter groups'),
             (lambda: learn.fit_schedule(1, {'lr': constant(1e-3)}, wd=1.5), ValueError, 'wd=1.5'),
             (lambda: learn.fit_refit(1, cbs='x'), TypeError, "cbs='x'"),
             (lambda: learn.fit_refit(1, reset_opt='yes'), TypeError, "reset_opt='yes'")]
    for f, exc, msg in cases:
        with pytest.raises(exc, match=msg): f()
    assert all(torch.equal(a, b) for a, b in zip(w, learn.model.parameters())) and learn.fit_state is st
    learn.fit_refit(1, wd=[0.1]); learn.fit_cycle(1, 1e-2, wd=slice(1e-2))   # one value per group, or fastai's slice
