"""ozcycle.arms_thread (issue 15): `piecewise` against PyTorch's `MultiStepLR` value for value, a `piecewise` run of the
runner resumed from its checkpoint against one trained in one go, and fuzz of `piecewise`, `fit_piecewise` and the
kind's check (any input: a valid result, or a TypeError/ValueError naming the argument)."""
import math, re, warnings
import numpy as np, pandas as pd, pytest, torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.test_utils import synth_learner
from hypothesis import HealthCheck, given, settings, strategies as st

import ozcycle.runner as runner
from ozcycle.arms import ARM_KINDS, check_arms
from ozcycle.arms_thread import piecewise, epoch_milestones, run_info, arm_table

def multistep_lrs(lr, n_epoch, n_batches, epochs, gamma):
    "The LR of every batch under torch's MultiStepLR stepped once per epoch"
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sch, out = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=epochs, gamma=gamma), []
    for _ in range(n_epoch):
        out += [opt.param_groups[0]['lr']] * n_batches
        opt.step(); sch.step()
    return out

def tiny(n_batches=3):
    torch.manual_seed(0)
    l = synth_learner(n_trn=n_batches, n_val=1)
    l.remove_cb(ProgressCallback); l.logger = lambda *a: None
    return l

@pytest.mark.parametrize('n_epoch,milestones,gamma,lr', [(4, (0.5, 0.75), 0.1, 1e-2), (10, (0.3, 0.7), 0.1, 0.3), (7, (0.29, 0.5, 0.9), 0.5, 3e-3),
                                                        (5, (0.,), 0.2, 1e-1), (3, (), 0.1, 1e-2), (6, (0.5, 1.), 0.1, 1e-2)])
def test_fit_piecewise_is_multistep_lr(n_epoch, milestones, gamma, lr):
    learn = tiny(3)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); learn.fit_piecewise(n_epoch, lr, milestones, gamma)
    got = np.ravel(learn.fit_state.hps['lr']).tolist()
    assert got == multistep_lrs(lr, n_epoch, 3, epoch_milestones(milestones, n_epoch), gamma)   # value for value
    assert np.ravel(learn.fit_state.hps['mom']).tolist() == [0.9] * (3 * n_epoch)

@settings(max_examples=300, deadline=None)
@given(n_epoch=st.integers(1, 40), n_batches=st.integers(1, 9), data=st.data(), gamma=st.sampled_from([0.1, 0.5, 0.3, 1.]),
       lr=st.sampled_from([1e-3, 0.1, 3., 0.037]))
def test_piecewise_schedule_is_multistep_lr(n_epoch, n_batches, data, gamma, lr):
    epochs = sorted(data.draw(st.sets(st.integers(0, n_epoch), max_size=4)))   # distinct: MultiStepLR takes gamma**count at a repeated one
    ms = [e / n_epoch for e in epochs]
    assert epoch_milestones(ms, n_epoch) == epochs
    s, n = piecewise(lr, ms, gamma), n_epoch * n_batches
    assert [s(i / n) for i in range(n)] == multistep_lrs(lr, n_epoch, n_batches, epochs, gamma)

def test_piecewise_run_resumes_exactly(tmp_path, monkeypatch, one_thread):
    "Kill-free: stop the run after its epoch 2 checkpoint, run again (resume with start_epoch=2), compare with one go"
    kw = dict(dataset='mnist1d', opt_func='sgd', lr_max=5e-2, n_epoch_base=1, n_epoch_cont=1, seeds=[3], long=False, quiet=True,
              data_kw=dict(n_train=256, n_valid=128), device='cpu')
    arms = {'pc': {'strategy': 'piecewise', 'n_epoch': 4, 'max_norm': 0.01}, 'p': {'strategy': 'piecewise', 'n_epoch': 4, 'grad_stats': True}}
    one = runner.run_experiment(arms, out=tmp_path/'one', **kw)
    after0 = runner.RunLog.after_epoch
    def after_epoch(self):
        after0(self)
        if self.epoch0 == 0 and self.epoch + 1 == 2 and len(self.rows) == 2 and self.starts == [0] and self.n_epoch_planned == 4: raise KeyboardInterrupt
    def before_fit(self): self.n_epoch_planned = self.n_epoch
    monkeypatch.setattr(runner.RunLog, 'after_epoch', after_epoch); monkeypatch.setattr(runner.RunLog, 'before_fit', before_fit, raising=False)
    for _ in arms:
        with pytest.raises(KeyboardInterrupt): runner.run_experiment(arms, out=tmp_path/'two', **kw)
    monkeypatch.undo()
    two = runner.run_experiment(arms, out=tmp_path/'two', **kw)
    cols = ['arm', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom']
    pd.testing.assert_frame_equal(two.df[cols], one.df[cols], check_exact=True)
    assert two.df[two.df.arm == 'p']['lr'].tolist() == [5e-2, 5e-2, 5e-2 * 0.1, 5e-2 * 0.1 * 0.1]
    i1, i2 = run_info(one).set_index('arm'), run_info(two).set_index('arm')
    for a in arms: assert i1.loc[a, 'norm_p50'] == i2.loc[a, 'norm_p50'] and i1.loc[a, 'pct_clipped'] == i2.loc[a, 'pct_clipped']
    starts = {a: runner.load_record(tmp_path/'two'/'_runs'/two.config['runs'][a]['3']/'run.json')['starts'] for a in arms}
    assert starts == {'p': [0, 2], 'pc': [0, 2]}, starts   # resumed, not retrained
    t = arm_table(two)
    assert t.loc['pc', 'pct_clipped'] > 0 and t.loc['p', 'pct_clipped'] == 0 and t['n_seeds'].tolist() == [1, 1, 1]
    assert list(t.index) == ['base', 'pc', 'p']   # the results' order, not sorted

# ---- fuzz -------------------------------------------------------------------------------------------------------------
anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 50), st.floats(allow_nan=True, allow_infinity=True), st.floats(-0.5, 1.5),
                     st.text(max_size=3), st.lists(st.floats(-0.2, 1.2, allow_nan=False), max_size=4),
                     st.tuples(st.floats(0, 1), st.floats(0, 1)), st.sampled_from([np.array([0.5]), np.array([[0.5]]), {'a': 1}, object(), slice(1e-3)]))
KEYS = ['n_epoch', 'lr_max', 'lr_fraction', 'milestones', 'gamma', 'mom', 'div', 'max_norm', 'opt']

def _names_arg(e, names):
    return any(re.search(rf"\b{re.escape(n)}\b", str(e)) for n in names)

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.dictionaries(st.sampled_from(KEYS), anything, max_size=4), n_epoch=st.one_of(st.integers(1, 30), anything))
def test_fuzz_piecewise_arm_check(params, n_epoch):
    spec = {'strategy': 'piecewise', 'n_epoch': n_epoch, **params}
    try: out = check_arms({'p': spec})
    except (TypeError, ValueError) as e:
        assert "arms['p']" in str(e), e
        return
    p = {k: v for k, v in out['p'].items() if k not in ('strategy', 'opt', 'max_norm')}
    s = ARM_KINDS['piecewise'].spec({'lr_max': 0.1}, p)   # a checked arm always has a spec and a schedule
    piecewise(s['lr_max'], s['milestones'], s['gamma'])

@settings(max_examples=300, deadline=None)
@given(lr=anything, milestones=anything, gamma=anything)
def test_fuzz_piecewise(lr, milestones, gamma):
    try: s = piecewise(lr, milestones, gamma)
    except (TypeError, ValueError) as e:
        assert _names_arg(e, ['lr_max', 'milestones', 'gamma']), e
        return
    v = np.asarray([s(p) for p in np.linspace(0, 1, 11)])
    assert np.isfinite(v).all() and (v >= 0).all()

class Reached(Exception): "The fit passed every check and is about to train"
class Sentinel(Callback):
    order = -1000
    def before_fit(self): raise Reached('the fit starts')

LEARN = tiny(1); LEARN.add_cb(Sentinel())

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_epoch=st.one_of(st.integers(1, 6), anything), lr=st.one_of(st.just(1e-2), anything), milestones=st.one_of(st.just((0.5,)), anything),
       gamma=st.one_of(st.just(0.1), anything), mom=st.one_of(st.just(0.9), anything), start_epoch=st.one_of(st.integers(0, 3), anything))
def test_fuzz_fit_piecewise(n_epoch, lr, milestones, gamma, mom, start_epoch):
    w0 = [p.detach().clone() for p in LEARN.model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try: LEARN.fit_piecewise(n_epoch, lr, milestones, gamma, mom, start_epoch=start_epoch)
        except Reached: pass
        except (TypeError, ValueError) as e: assert _names_arg(e, ['n_epoch', 'lr_max', 'milestones', 'gamma', 'mom', 'start_epoch']), e
    assert all(torch.equal(a, b) for a, b in zip(w0, LEARN.model.parameters()))   # nothing trained before the checks
