"""One test per fastai internal that ozcycle.fastai_compat relies on: each fails naming the internal, the fastai version
and what changed, so a fastai upgrade points at the one module to update (nbs/01a_fastai_compat.ipynb)."""
import inspect, os

import fastai
import numpy as np
import pytest
import torch
from fastcore.foundation import L
from fastai.callback.core import Callback, CancelEpochException, TrainEvalCallback, event
from fastai.callback.progress import ProgressCallback
from fastai.callback.schedule import SchedCos, SchedExp, SchedLin, SchedNo, _Annealer, combine_scheds, combined_cos
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.optimizer import Adam, Optimizer, _BaseOptimizer
from fastai.test_utils import RegModel, synth_dbunch, synth_learner
from fastai.torch_core import set_seed

from ozcycle.fastai_compat import LeanCallback, _LeanLearner, _LeanTrainEval, as_sched, set_hyper, train_from
from ozcycle.schedules import anneal, one_cycle


def need(ok, internal, what):
    if not ok: pytest.fail(f"fastai {fastai.__version__} changed {internal}: {what}. ozcycle relies on it in "
                           f"ozcycle/fastai_compat.py (nbs/01a_fastai_compat.ipynb): update it there", pytrace=False)


def synth(**kw):
    learn = synth_learner(**kw)
    learn.remove_cb(ProgressCallback); learn.logger = lambda *a: None
    return learn


def test_callback_call_dispatch():
    "LeanCallback relies on Callback.__call__(event_name) running the method of that name, honouring run/run_train/run_valid"
    need(list(inspect.signature(Callback.__call__).parameters) == ['self', 'event_name'], 'Callback.__call__',
         f"its signature is {inspect.signature(Callback.__call__)}, not (self, event_name)")
    class Count(Callback):
        run_valid = False
        def before_fit(self): self.n = 0
        def before_batch(self): self.n += 1
    class LeanCount(LeanCallback, Count): pass
    a, b = Count(), LeanCount()
    synth(cbs=[a, b]).fit(1)
    need(a.n == b.n == 10, 'Callback.__call__', f"a train-only callback saw {a.n} batches (plain) and {b.n} (lean), not 10 each")
    c = LeanCount(); c.run = False; c('after_fit')
    need(c.run is True, 'Callback.__call__', "after_fit no longer resets `run` to True")



def test_callback_training_and_setattr():
    "LeanCallback's `training` descriptor and its once-per-name `__setattr__` stand in for what Callback.__call__ and Callback.__setattr__ do"
    reads = []
    class Probe(Callback):
        @property
        def training(self): reads.append(1); return True
        def after_batch(self): pass
    Probe()('after_batch')
    need(len(reads) > 0, 'Callback.__call__', "it no longer reads `self.training` for batch events: LeanCallback.training "
         "(read from the learner's __dict__) speeds up nothing; drop it")
    learn = synth()
    src = inspect.getsource(Callback.__setattr__)
    need('hasattr(self.learn,name)' in src.replace(' ', '') and 'warn(' in src, 'Callback.__setattr__',
         "it does more than warn when the learner has an attribute of the name set: LeanCallback.__setattr__ skips it "
         "after a name's first assignment")
    class Lean(LeanCallback):
        def after_batch(self): self.seen = self.training
    cb = Lean(); learn.fit(1, cbs=cb)
    need(cb.seen == learn.training, 'TrainEvalCallback', "the learner's `training` is not where LeanCallback reads it")
    with pytest.warns(UserWarning, match='shadowing'):
        cb.learn = learn; cb.lr = 1.

def test_optimizer_set_hyper_internal():
    "set_hyper writes floats into Optimizer.hypers when the optimizer's _set_hyper is _BaseOptimizer._set_hyper"
    need(hasattr(_BaseOptimizer, '_set_hyper'), '_BaseOptimizer._set_hyper', 'it no longer exists')
    learn = synth(); learn.create_opt(); opt = learn.opt
    need(isinstance(opt, Optimizer) and isinstance(opt.hypers, (list, L)) and all(isinstance(h, dict) for h in opt.hypers),
         'Optimizer.hypers', f"it is a {type(opt.hypers).__name__}, not a list (or fastcore L) of one dict per parameter group")
    set_hyper(opt, 'lr', 0.125); opt.set_hyper('mom', 0.5)
    need([h['lr'] for h in opt.hypers] == [0.125] and opt.hypers[0]['mom'] == 0.5, 'Optimizer.hypers',
         "a value written into hypers is not the one the optimizer reads")
    p = next(learn.model.parameters()); p.grad = torch.ones_like(p); before = p.detach().clone()
    opt.set_hyper('mom', 0.); opt.step()
    need(torch.allclose(before - p.detach(), torch.full_like(p, 0.125)), 'Optimizer.hypers', "step() does not use hypers[i]['lr']")


def test_learner_do_fit_loop():
    "train_from replaces Learner._do_fit per instance and runs _with_events(_do_epoch, 'epoch', CancelEpochException)"
    for name in ('_do_fit', '_with_events', '_do_epoch'):
        need(callable(getattr(Learner, name, None)), f'Learner.{name}', 'it no longer exists')
    need(list(inspect.signature(Learner._with_events).parameters)[:4] == ['self', 'f', 'event_type', 'ex'],
         'Learner._with_events', f"its signature is {inspect.signature(Learner._with_events)}")
    need('self._do_fit()' in inspect.getsource(Learner.fit) or '_do_fit' in inspect.getsource(Learner.fit), 'Learner.fit',
         'it no longer calls self._do_fit')
    class Epochs(Callback):
        def before_fit(self): self.seen = []
        def before_epoch(self): self.seen.append((self.epoch, self.train_iter))
    learn, ep = synth(), Epochs()
    with train_from(learn, 2): learn.fit(4, cbs=ep)
    need(ep.seen == [(2, 20), (3, 30)] and len(learn.recorder.values) == 2, 'Learner._do_fit',
         f"a fit from epoch 2 of 4 saw epochs {ep.seen} and {len(learn.recorder.values)} recorder rows, not [(2, 20), (3, 30)] and 2")


def test_annealer_internal():
    "as_sched reads fastai's annealers as _Annealer objects with .f, .start and .end"
    for f, kind in ((SchedCos, 'cos'), (SchedLin, 'linear'), (SchedExp, 'exp')):
        s = f(1e-3, 1e-2)
        need(isinstance(s, _Annealer) and all(hasattr(s, k) for k in ('f', 'start', 'end')), '_Annealer',
             f"{f.__name__}(...) is a {type(s).__name__} without .f/.start/.end")
        need(as_sched(s) == anneal(1e-3, 1e-2, kind), '_Annealer', f"{f.__name__} is not read as anneal(..., {kind!r})")
        np.testing.assert_allclose([as_sched(s)(p) for p in (0, .3, 1)], [float(s(p)) for p in (0, .3, 1)], rtol=1e-6)
    need(as_sched(SchedNo(2., 3.)) == anneal(2., 3., 'no'), '_Annealer', 'SchedNo is not read as anneal(..., "no")')


def test_combine_scheds_closure():
    "as_sched reads combine_scheds' closure: qualname 'combine_scheds.<locals>._inner', nonlocals 'pcts' (cumulative) and 'scheds'"
    f = combined_cos(0.25, 1e-2 / 25, 1e-2, 1e-7)
    need(getattr(f, '__qualname__', '') == 'combine_scheds.<locals>._inner', 'combine_scheds', f"its function is {f.__qualname__!r}")
    nl = inspect.getclosurevars(f).nonlocals
    need({'pcts', 'scheds'} <= set(nl), 'combine_scheds', f"its closure holds {sorted(nl)}, not pcts and scheds")
    need(np.allclose(np.asarray(nl['pcts'], dtype=float), [0, 0.25, 1]), 'combine_scheds', f"pcts is {nl['pcts']}, not cumulative")
    need(as_sched(f) == one_cycle(1e-2), 'combine_scheds', 'combined_cos(0.25, lr/25, lr, lr/1e5) is not read as one_cycle(lr)')


def test_learner_call_override():
    "_LeanLearner overrides Learner.__call__(event_name) and uses fastai's `event` names and TrainEvalCallback's counters"
    need(list(inspect.signature(Learner.__call__).parameters) == ['self', 'event_name'], 'Learner.__call__',
         f"its signature is {inspect.signature(Learner.__call__)}")
    for e in ('before_fit', 'before_batch', 'after_step', 'after_cancel_step', 'after_fit'):
        need(hasattr(event, e), 'fastai.callback.core.event', f"it has no {e!r}")
    need('after_batch' in TrainEvalCallback.__dict__, 'TrainEvalCallback.after_batch', 'it no longer exists')
    def make(cls, **kw):
        set_seed(0)
        return cls(synth_dbunch(), RegModel(), loss_func=MSELossFlat(), opt_func=Adam, **kw)
    a = make(Learner, cbs=[]); a.remove_cb(ProgressCallback); a.logger = lambda *x: None
    b = make(_LeanLearner, default_cbs=False, cbs=[_LeanTrainEval()])
    a.fit(2, 1e-2); b.fit(2, 1e-2)
    need((a.train_iter, b.train_iter) == (20, 20) and np.isclose(a.pct_train, b.pct_train), 'TrainEvalCallback.after_batch',
         f"train_iter/pct_train are {a.train_iter}/{a.pct_train} (fastai) and {b.train_iter}/{b.pct_train} (lean)")
    need(all(torch.allclose(p, q) for p, q in zip(a.model.parameters(), b.model.parameters())), 'Learner.__call__',
         'the lean learner trains other weights than fastai\'s Learner')


def test_recorder_attributes():
    "read_recorder reads Recorder.lrs (training LRs, reset each fit), .hps (ParamScheduler's, set in after_fit) and .values"
    from ozcycle.fastai_compat import read_recorder, recorder_changed, recorder_token
    learn = synth()
    learn.fit_one_cycle(2, 1e-2)
    rec = learn.__dict__.get('recorder')
    need(rec is not None, 'Learner.recorder', 'the default Recorder is no longer registered as learn.recorder')
    d = rec.__dict__
    need(isinstance(d.get('lrs'), list) and len(d['lrs']) == 20, 'Recorder.lrs', f"it holds {type(d.get('lrs'))} of {len(d.get('lrs') or [])} values, not 20 LRs")
    need(isinstance(d.get('hps'), dict) and len(d['hps'].get('lr', [])) == 20 and len(d['hps'].get('mom', [])) == 20, 'Recorder.hps',
         'ParamScheduler no longer leaves 20 recorded lr and mom values in learn.recorder.hps')
    need([len(v) for v in d.get('values', [])] == [2, 2], 'Recorder.values', f"it is {d.get('values')}, not one row per epoch")
    r = read_recorder(learn)
    need(r['kind'] == 'one_cycle' and np.allclose(r['lr_max'], 1e-2), "fastai's one-cycle shape",
         f"fit_one_cycle(2, 1e-2) is read as {r['kind']} with lr_max={r['lr_max']}")
    t = recorder_token(learn); learn.validate()
    need(not recorder_changed(learn, t), 'Recorder.before_fit', 'validate() now changes what the recorder holds about the last fit')


def test_save_load_signatures(tmp_path):
    "extend_save_load relies on Learner.save returning the .pth path, and load taking (file, device=None, **kwargs)"
    from ozcycle.fastai_compat import _fastai_load, _fastai_save
    learn = synth(path=tmp_path); learn.create_opt()
    pth = _fastai_save(learn, 'w')
    need(pth is not None and str(pth).endswith('w.pth') and os.path.exists(pth), 'Learner.save', f"it returned {pth!r}, not the written .pth path")
    need(list(inspect.signature(_fastai_load).parameters)[:3] == ['self', 'file', 'device'], 'Learner.load', f"its signature is {inspect.signature(_fastai_load)}")
    need(_fastai_load(learn, 'w') is learn, 'Learner.load', 'it no longer returns the learner')


def test_slice_rule_matches_fastai():
    "group_values spreads a value over parameter groups exactly as fastai's Optimizer.set_hyper does"
    from ozcycle.fastai_compat import group_values
    learn = synth(splitter=lambda m: [[m.a], [m.b]]); learn.create_opt()
    for v in (slice(1e-4, 1e-2), slice(1e-2), 3e-3, [1e-3, 2e-3]):
        learn.opt.set_hyper('lr', v)
        fastai_rule = [h['lr'] for h in learn.opt.hypers]
        need(np.allclose(np.broadcast_to(group_values('lr', v, 2), 2), fastai_rule), 'Optimizer.set_hyper',
             f"it spreads {v!r} over 2 groups as {fastai_rule}, not as ozcycle's group_values")
