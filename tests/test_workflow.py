"""ozcycle in a real fastai workflow (issue 11): trained before importing ozcycle or in an earlier session, `learn.save` /
`learn.load`, `learn.export` loaded where ozcycle is not imported, gradient accumulation and skipped optimizer steps."""
import os, subprocess, sys, textwrap, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback, CancelStepException
from fastai.callback.progress import ProgressCallback
from fastai.callback.training import GradientAccumulation
from fastai.test_utils import synth_learner
from fastai.torch_core import set_seed

ROOT = Path(__file__).resolve().parents[1]


def run_py(code, cwd):
    "Run `code` in a fresh Python (ozcycle importable, not imported); return its stdout"
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'PYTHONWARNINGS': 'ignore'}
    r = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


PRELUDE = """
    import sys, numpy as np
    import fastai.callback.schedule   # fit_one_cycle
    from fastai.test_utils import synth_learner
    from fastai.callback.progress import ProgressCallback
    from fastai.torch_core import set_seed
    def synth(path):
        set_seed(0)
        learn = synth_learner(path=path); learn.remove_cb(ProgressCallback); learn.logger = lambda *a: None
        return learn
"""


def synth(path='.'):
    set_seed(0)
    learn = synth_learner(path=path)
    learn.remove_cb(ProgressCallback); learn.logger = lambda *a: None
    return learn


def test_trained_before_importing_ozcycle(tmp_path):
    "fit_one_cycle(2, 1e-2), then import ozcycle, then fit_refit(1): a refit peaking at 1e-2 / 3, rebuilt from learn.recorder"
    out = run_py(PRELUDE + """
    learn = synth('.')
    learn.fit_one_cycle(2, 1e-2)
    assert 'ozcycle' not in sys.modules
    from ozcycle.all import *
    learn.fit_refit(1)
    fs = learn.fit_state
    learn.fit_one_cycle(2, 1e-2); base = learn.fit_state   # what fit_refit read, as it reads it
    print(fs.kind, fs.lr_max[0], fs.hps['lr'][0, 0], base.kind, base.inferred)
    """, tmp_path).split(maxsplit=4)
    assert out[0] == 'refit' and float(out[1]) == pytest.approx(1e-2 / 3) and float(out[2]) == pytest.approx(1e-2 / 3 / 25)
    assert out[3] == 'one_cycle' and "learn.recorder" in out[4] and 'fit_one_cycle(lr_max=0.01, div=25, div_final=100000, pct_start=0.25' in out[4]


def test_new_session_with_only_the_weights(tmp_path):
    "Weights saved by plain fastai; a new session says what the fit was in one line, then continues"
    run_py(PRELUDE + """
    learn = synth('.'); learn.fit_one_cycle(2, 1e-2); learn.save('plain')
    """, tmp_path)
    assert not (tmp_path / 'models' / 'plain.fit_state.pkl').exists()
    learn = synth(tmp_path)
    import ozcycle.fit  # noqa: F401
    with pytest.warns(UserWarning, match='plain.pth was saved without'): learn.load('plain')
    assert learn.fit_state is None
    with pytest.raises(ValueError, match=r'plain.pth was saved without .*learn.set_fit_state\(n_epoch, lr_max\)'): learn.fit_refit(1)
    learn.set_fit_state(2, 1e-2)   # the previous fit was fit_one_cycle(2, 1e-2)
    assert learn.fit_state.kind == 'one_cycle' and learn.fit_state.lr_last[0] == pytest.approx(1.0936e-4, rel=1e-4)
    learn.fit_refit(1)
    assert learn.fit_state.lr_max[0] == pytest.approx(1e-2 / 3)


def test_save_load_keep_the_continuation_state(tmp_path):
    "save('s1'); fit_refit(2); load('s1'); fit_constant(1) continues from s1's peak (1e-2 / 10 = 1e-3), not the refit's (1e-2 / 3 / 10)"
    import ozcycle.fit  # noqa: F401
    learn = synth(tmp_path)
    learn.fit_one_cycle(2, 1e-2)
    learn.save('s1')
    learn.fit_refit(2)
    assert learn.fit_state.lr_max[0] == pytest.approx(1e-2 / 3)
    learn.load('s1')
    assert learn.fit_state.kind == 'one_cycle' and learn.fit_state.lr_max[0] == pytest.approx(1e-2)
    learn.fit_constant(1)
    np.testing.assert_allclose(learn.fit_state.hps['lr'][:, 0], 1e-3)
    # the file is fastai's: plain fastai loads it where ozcycle is not imported
    out = run_py(PRELUDE + """
    learn = synth('.'); learn.load('s1'); print('ozcycle' in sys.modules)
    """, tmp_path)
    assert out.strip() == 'False'


def test_load_never_restores_a_stale_state(tmp_path):
    "Weights saved again without ozcycle after ozcycle wrote its side file: fit_state is unknown, with the reason"
    import ozcycle.fit, ozcycle.fastai_compat
    learn = synth(tmp_path)
    learn.fit_cycle(1, 1e-2); learn.save('s')
    learn.fit_refit(1); ozcycle.fastai_compat._fastai_save(learn, 's')   # fastai alone overwrites the weights
    with pytest.warns(UserWarning, match='belongs to other weights'): learn.load('s')
    assert learn.fit_state is None
    with pytest.raises(ValueError, match='belongs to other weights'): learn.fit_decay(1)
    learn.fit_decay(1, lr_start=1e-4)   # an explicit LR needs no previous fit
    (tmp_path / 'models' / 's.fit_state.pkl').write_bytes(b'garbage')
    with pytest.warns(UserWarning, match='could not be read'): learn.load('s')
    assert learn.fit_state is None


def test_export_loads_without_ozcycle(tmp_path):
    "An export after ozcycle fits loads with load_learner in a Python that never imports ozcycle"
    from fastcore.basics import defaults
    from fastai.data.core import Datasets
    from fastai.learner import Learner
    from fastai.losses import MSELossFlat
    from fastai.test_utils import RegModel
    from fastai.data.transforms import ItemGetter
    before = list(defaults.callbacks)
    import ozcycle.all  # noqa: F401
    assert defaults.callbacks == before   # importing ozcycle changes no fastai default
    set_seed(0)
    x = torch.randn(64, 1)
    dls = Datasets([(a, 2 * a + 1) for a in x], tfms=[[ItemGetter(0)], [ItemGetter(1)]], splits=[list(range(48)), list(range(48, 64))]).dataloaders(bs=8)
    learn = Learner(dls, RegModel(), loss_func=MSELossFlat(), path=tmp_path)
    learn.remove_cb(ProgressCallback); learn.logger = lambda *a: None
    learn.fit_cycle(1, 1e-2); learn.fit_refit(1); learn.fit_constant(1)
    assert not any(type(cb).__module__.startswith('ozcycle') for cb in learn.cbs)
    learn.export('export.pkl')
    want = learn.model(torch.linspace(-1, 1, 5)[:, None]).detach().numpy().ravel()
    out = run_py("""
    import sys, torch
    from fastai.learner import load_learner
    learn = load_learner('export.pkl')
    print('ozcycle' in sys.modules, *learn.model(torch.linspace(-1, 1, 5)[:, None]).detach().numpy().ravel())
    """, tmp_path).split()
    assert out[0] == 'False'
    np.testing.assert_allclose([float(v) for v in out[1:]], want, rtol=1e-6)
    assert learn.fit_state.kind == 'constant'   # still there after the export


class StepLog(Callback):
    "Independent witness: the LR of each optimizer step actually applied, read inside the optimizer's step"
    def before_fit(self):
        self.lrs, opt = [], self.learn.opt
        step = opt.step
        def logged(*a, **k): self.lrs.append(opt.hypers[0]['lr']); return step(*a, **k)
        opt.step = logged
    def after_fit(self): del self.learn.opt.step


def test_gradient_accumulation_reports_the_steps_applied():
    "n_acc=48 with 16 samples per batch: a step every 3 batches; lr_last is the last applied step's; the 2 leftover batches are reported"
    import ozcycle.fit  # noqa: F401
    from ozcycle.schedules import one_cycle, sched_values
    learn, log = synth(), StepLog()
    learn.fit_cycle(2, 1e-2)
    with pytest.warns(UserWarning, match='last 2 training batches of this fit applied no optimizer step'):
        learn.fit_refit(2, cbs=[GradientAccumulation(n_acc=48), log])
    fs = learn.fit_state
    np.testing.assert_array_equal(fs.hps['lr'][:, 0], sched_values(one_cycle(1e-2 / 3), 20))   # the schedule counts batches
    assert fs.n_opt_steps == len(log.lrs) == 6 and list(np.flatnonzero(fs.stepped)) == [2, 5, 8, 11, 14, 17]
    np.testing.assert_array_equal(fs.hps['lr'][fs.stepped, 0], log.lrs)
    assert fs.lr_last[0] == log.lrs[-1] and fs.lr_last[0] > 5 * fs.hps['lr'][-1, 0]   # not the leftover micro-batch's LR
    learn.fit_constant(1, lr='last')
    np.testing.assert_allclose(learn.fit_state.hps['lr'][:, 0], log.lrs[-1])


def test_skipped_steps_still_advance_the_schedule():
    "A CPU stand-in for MixedPrecision's scaler (CancelStepException on some steps): the schedule goes on, fit_state says which stepped"
    import ozcycle.fit  # noqa: F401
    from ozcycle.schedules import one_cycle, sched_values

    class SkipSome(Callback):
        order = 10   # MixedPrecision's
        def before_step(self):
            if self.train_iter in (3, 4, 11, 19): raise CancelStepException()
    learn, log = synth(), StepLog()
    learn.fit_cycle(2, 1e-2, cbs=[SkipSome(), log])
    fs = learn.fit_state
    np.testing.assert_array_equal(fs.hps['lr'][:, 0], sched_values(one_cycle(1e-2), 20))
    assert fs.n_opt_steps == 16 and not fs.stepped[[3, 4, 11, 19]].any()
    np.testing.assert_array_equal(fs.hps['lr'][fs.stepped, 0], log.lrs)
    assert fs.lr_last[0] == fs.hps['lr'][18, 0] == log.lrs[-1] and 'n_opt_steps=16' in repr(fs)
