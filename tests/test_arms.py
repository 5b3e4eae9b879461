"""Arm options through the runner, against fastai and PyTorch: a per-arm optimizer is that optimizer, clipping is
`GradClip` (PyTorch's `clip_grad_norm_` semantics), the probe's threshold is a percentile of real gradient norms,
statistics survive a resume, and a run whose every step is skipped is recorded as diverged (issue 15's library part)."""
import json, math, warnings
import numpy as np, pandas as pd, pytest, torch
from fastai.learner import Learner
from fastai.optimizer import SGD
from fastai.callback.core import Callback, CancelFitException
from functools import partial
from ozcycle.arms import ARM_KINDS, ArmKind, register_arm, check_arms
from ozcycle.clip import GradClip
from ozcycle.data import get_data, make_model
from ozcycle.runner import run_experiment, run_spec, arm_compute, make_config, QUICK_DATA, DivergenceWarning
from ozcycle.store import seed_everything, run_key
import ozcycle.fit  # noqa: F401

pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py
KW = dict(n_epoch_base=2, n_epoch_cont=1, seeds=[0], lr_max=1e-2, quick=True, quiet=True, dataset='mnist1d', device='cpu', long=False)

def _rec(tmp_path, res, arm, seed=0):
    return json.loads((tmp_path/'_runs'/run_key(run_spec(res.config, arm, seed))/'run.json').read_text())

def _learner(opt_func=None, cbs=()):
    dls = get_data('mnist1d', seed=0, device='cpu', **QUICK_DATA['mnist1d'])
    seed_everything(0)
    learn = Learner(dls, make_model('cnn1d'), opt_func=opt_func or partial(SGD, mom=0.9), cbs=list(cbs))
    learn.remove_cb(learn.progress); learn.logger = lambda *a: None
    return learn

def test_opt_and_clip_are_fastais(tmp_path):
    "An arm with opt='sgd' and max_norm=0.1 trains exactly what a fastai Learner with SGD (momentum 0.9) and GradClip(0.1) trains"
    res = run_experiment({'sgd_clip': {'strategy': 'one_cycle', 'n_epoch': 2, 'opt': 'sgd', 'max_norm': 0.1}}, out=tmp_path, **KW)
    cb = GradClip(0.1)
    learn = _learner(cbs=[cb]); learn.fit_cycle(2, 1e-2)
    ckpt = torch.load(tmp_path/'_runs'/run_key(run_spec(res.config, 'sgd_clip', 0))/'last.pt', weights_only=True)
    for k, v in learn.model.state_dict().items(): assert torch.equal(ckpt['model'][k], v), k
    g = _rec(tmp_path, res, 'sgd_clip')['info']['grad']
    assert g['n_steps'] == len(cb.stats) and g['pct_clipped'] == pytest.approx(cb.stats.clipped.mean())
    assert g['norm_p50'] == pytest.approx(np.percentile(cb.norms, 50))
    assert 'grad' not in _rec(tmp_path, res, 'base')['info']   # nothing recorded where nothing was asked

def test_opt_changes_the_run(tmp_path):
    "The same arm with Adam (the setting's) and with SGD: different runs, different numbers; opt equal to the setting's is the plain arm"
    arms = {'a': {'strategy': 'one_cycle', 'n_epoch': 2}, 'a_adam': {'strategy': 'one_cycle', 'n_epoch': 2, 'opt': 'adam'},
            's': {'strategy': 'one_cycle', 'n_epoch': 2, 'opt': 'sgd'}}
    res = run_experiment(arms, out=tmp_path, **KW)
    k = {a: run_key(run_spec(res.config, a, 0)) for a in arms}
    assert k['a'] == k['a_adam'] != k['s']
    f = res.final.set_index('arm')['valid_loss']
    assert f['a'] == f['a_adam'] != f['s']

def test_auto_probe_and_resume(tmp_path):
    "max_norm='auto': the threshold is the 10th percentile of an unclipped probe epoch's norms; compute counts the probe; a resume keeps threshold and statistics"
    arms = {'auto': {'strategy': 'one_cycle', 'n_epoch': 3, 'opt': 'sgd', 'max_norm': 'auto'}}
    res = run_experiment(arms, out=tmp_path, **KW)
    info = _rec(tmp_path, res, 'auto')['info']
    log = GradClip(1e30)   # records every norm, clips none: the probe, by hand
    learn = _learner(cbs=[log])
    learn.fit_cycle(3, 1e-2, cbs=[_Stop1()])
    assert info['probe']['max_norm'] == pytest.approx(np.percentile(log.norms, 10), rel=1e-6)
    assert info['grad']['n_steps'] == 3 * len(learn.dls.train)
    assert arm_compute(res.config, 'auto') == 3 + 1 and arm_compute(res.config, 'base') == 2
    # kill-free resume: the run's checkpoint after epoch 3 rewound to a state after epoch 1 is not available, so train a
    # second store that stops after epoch 1 (n_epoch stays 3: same spec) and resume it
    from ozcycle.runner import RunLog
    one = tmp_path/'one'
    orig = RunLog.after_epoch
    def stop(self):
        orig(self)
        if self.epoch == 0 and self.ckpt.parent.name == run_key(run_spec(res.config, 'auto', 0)): raise KeyboardInterrupt
    RunLog.after_epoch = stop
    try:
        with pytest.raises(KeyboardInterrupt): run_experiment(arms, out=one, **KW)
    finally: RunLog.after_epoch = orig
    res2 = run_experiment(arms, out=one, **KW)
    info2 = _rec(one, res2, 'auto')['info']
    assert _rec(one, res2, 'auto')['starts'] == [0, 1]
    assert info2 == info   # the same threshold and the statistics of the whole run, not of the resumed part
    pd.testing.assert_frame_equal(res2.df.drop(columns='time_s'), res.df.drop(columns='time_s'))

class _Stop1(Callback):
    order = 90
    def after_epoch(self): raise CancelFitException()

def test_all_steps_skipped_is_diverged(tmp_path):
    "An LR far past divergence with clipping: non-finite gradients skipped until GradClip gives up: recorded as diverged, the other runs go on"
    arms = {'hot': {'strategy': 'one_cycle', 'n_epoch': 2, 'lr_max': 1e12, 'max_norm': 1.0}}
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        res = run_experiment(arms, out=tmp_path, **KW)
    hot = res.df.query("arm == 'hot'")
    assert hot['diverged'].iloc[-1] and hot['accuracy'].isna().iloc[-1]
    assert any(issubclass(w.category, DivergenceWarning) and 'hot' in str(w.message) for w in ws)
    assert not res.df.query("arm == 'base'")['diverged'].any()

def test_custom_kind(tmp_path):
    "A kind registered by the user trains through the runner: spec, compute and fit are the kind's"
    class Twice(ArmKind):
        name, keys = 'test_twice', ('n_epoch',)
        def spec(self, cfg, params): return {'lr_max': cfg['lr_max'], 'n_epoch': int(params.get('n_epoch', 1))}
        def compute(self, cfg, spec): return 2 * spec['n_epoch']
        def fit(self, learn, run): learn.fit_cycle(run.n_epoch, run.spec['lr_max'], wd=run.wd, cbs=run.cbs, start_epoch=run.start_epoch)
    register_arm(Twice())
    try:
        res = run_experiment({'t': {'strategy': 'test_twice', 'n_epoch': 2}}, out=tmp_path, **KW)
        assert arm_compute(res.config, 't') == 4
        assert res.df.query("arm == 't'")['epoch'].tolist() == [1, 2]
        with pytest.raises(TypeError, match=r"arms\[.t.\].*n_epochs"): check_arms({'t': {'strategy': 'test_twice', 'n_epochs': 2}})
    finally: ARM_KINDS.pop('test_twice')
