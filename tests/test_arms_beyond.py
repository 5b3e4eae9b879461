"""The arm kinds of `ozcycle.arms_beyond` through the runner: each resumes exactly (a run stopped after a chosen epoch,
then started again, gives the table of one trained in one go), counts its compute honestly, checks its parameters with
errors naming arms[arm][key]; `rewind` repeats its base up to the rewind epoch; `swa`/`ema` checkpoints hold the average
that validation saw; `schedule_free` checkpoints hold the evaluation weights. Quick data, 3 + 2 epochs, one seed."""
import math
import pandas as pd, pytest, torch
from fastcore.test import test_fail as _fails
import ozcycle.arms_beyond as ab
from ozcycle.arms import check_arms
from ozcycle.runner import run_experiment, make_config, arm_compute, run_spec, RunLog
from ozcycle.store import load_checkpoint, load_record, run_key

E0, E1 = 3, 2
ARMS = {'rewind': {'strategy': 'rewind'}, 'wsd': {'strategy': 'extend'}, 'swa': {'strategy': 'swa'},
        'ema': {'strategy': 'ema', 'ema_epochs': 1}, 'sf': {'strategy': 'schedule_free'}, 'sf_sgd': {'strategy': 'schedule_free', 'opt': 'sgd'}}
KW = dict(dataset='mnist1d', lr_max=1e-2, n_epoch_base=E0, n_epoch_cont=E1, seeds=1, quick=True, device='cpu', n_threads=1,
          quiet=True, long=False)
VALUES = ['arm', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'diverged']

@pytest.fixture(scope='module')
def ref(tmp_path_factory):
    "Every arm trained in one go"
    return run_experiment(ARMS, out=tmp_path_factory.mktemp('ref'), **KW)

class _Stop(BaseException): "A kill, right after a checkpoint"

def _table(r, arm): return r.df[r.df.arm == arm][VALUES].reset_index(drop=True)

@pytest.mark.parametrize('arm,stop_after', [('rewind', 1), ('rewind', 3), ('wsd', 2), ('wsd', 4), ('swa', 1), ('ema', 1),
                                            ('sf', 2), ('sf_sgd', 1)])
def test_resume_is_exact(tmp_path, ref, monkeypatch, arm, stop_after):
    "Stopped right after the checkpoint of epoch `stop_after` of the arm's fit, then run again: the one-go table"
    after_epoch, hit = RunLog.after_epoch, []
    def stop(self):
        after_epoch(self)
        base = self.epoch0 == 0 and self.learn.n_epoch == E0
        if not base and not hit and self.epoch + 1 == stop_after: hit.append(self.epoch); raise _Stop()
    monkeypatch.setattr(RunLog, 'after_epoch', stop)
    with pytest.raises(_Stop): run_experiment({arm: ARMS[arm]}, out=tmp_path, **KW)
    monkeypatch.setattr(RunLog, 'after_epoch', after_epoch)
    r = run_experiment({arm: ARMS[arm]}, out=tmp_path, **KW)
    got, want = _table(r, arm), _table(ref, arm)
    assert hit and len(want) == run_spec(r.config, arm, 0)['n_epoch']
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    rec = load_record(tmp_path/'_runs'/run_key(run_spec(r.config, arm, 0))/'run.json')
    assert rec['starts'] == [0, stop_after]   # resumed from the checkpoint, not trained again

def test_rewind_repeats_its_base(ref):
    "The first k epochs of `rewind` are its base's, number for number; then it anneals over the rest"
    k = run_spec(ref.config, 'rewind', 0)['rewind_epoch']
    assert k == ab.rewind_epoch(E0) == 1
    cols = ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom']
    b, rw = _table(ref, 'base')[cols], _table(ref, 'rewind')[cols]
    pd.testing.assert_frame_equal(rw.iloc[:k], b.iloc[:k], check_exact=True)
    assert not rw.iloc[k:E0].equals(b.iloc[k:E0])
    assert (rw.lr.iloc[k:].diff().dropna() < 0).all()   # annealing from epoch k to the end

def test_compute_is_counted_honestly():
    cfg = make_config('t', {**ARMS, 'r2': {'strategy': 'rewind', 'rewind_epoch': 2}, 'w3': {'strategy': 'extend', 'pct_decay': 0.3}},
                      dataset='mnist1d', lr_max=1e-2, n_epoch_base=10, n_epoch_cont=10)
    got = {a: arm_compute(cfg, a) for a in ['base', 'long', *cfg['arms']]}
    assert got == {'base': 10, 'long': 20,
                   'rewind': 10 + (10 - 6) + 10,   # the base paid, thrown away after epoch 6, then 4 + 10 more
                   'r2': 10 + 8 + 10,
                   'wsd': 20 + 2, 'w3': 20 + 3,    # the first fit's cooldown (2 or 3 epochs), trained and thrown away
                   'swa': 20, 'ema': 20, 'sf': 20, 'sf_sgd': 20}

def test_averages_validated_and_kept(ref):
    "The last checkpoint of swa/ema holds the average; the last row's accuracy is the average's, not the live weights'"
    cfg = ref.config
    for arm in ('swa', 'ema'):
        ck = load_checkpoint(ref.path.parent.parent/'_runs'/run_key(run_spec(cfg, arm, 0))/'last.pt')
        avg = ck['extra']['average']
        n_avg = int(avg['n_averaged'])
        assert n_avg == E1 if arm == 'swa' else n_avg > E1   # swa: one per epoch; ema: one per step
        from ozcycle.setting import Setting
        learn = Setting.from_dict(cfg['setting_dict']).learner(0, 'cpu', cfg['moms'], E0, cfg['data_kw'])
        accs = {}
        for which in ('live', 'average'):
            sd = ck['model'] if which == 'live' else {k[len('module.'):]: v for k, v in avg.items() if k.startswith('module.')}
            learn.model.load_state_dict(sd)
            preds, targs = learn.get_preds(dl=learn.dls.valid)
            accs[which] = float((preds.argmax(-1) == targs).float().mean())
        last = _table(ref, arm).accuracy.iloc[-1]
        assert math.isclose(accs['average'], last, abs_tol=1e-6), (arm, accs, last)
        assert any(not torch.equal(v, avg['module.' + k]) for k, v in ck['model'].items())   # the checkpoint's model is the live one

def test_schedule_free_checkpoint_is_in_eval_mode(ref):
    ck = load_checkpoint(ref.path.parent.parent/'_runs'/run_key(run_spec(ref.config, 'sf', 0))/'last.pt')
    assert ck['opt']['hypers'][0]['train_mode'] is False
    assert sorted(ck['opt']['state'][0]) == ['exp_avg_sq', 'z']
    assert run_spec(ref.config, 'sf', 0)['sf_opt'] == 'adamw' and run_spec(ref.config, 'sf_sgd', 0)['opt'] == 'sgd'
    ck_sgd = load_checkpoint(ref.path.parent.parent/'_runs'/run_key(run_spec(ref.config, 'sf_sgd', 0))/'last.pt')
    assert math.isclose(ck['opt']['hypers'][0]['lr'], 1e-2) and math.isclose(ck_sgd['opt']['hypers'][0]['lr'], 1e-1)   # SF_LR_MULT: 1x, 10x
    assert 'momentum' in ck_sgd['opt']['hypers'][0] and 'betas' in ck['opt']['hypers'][0]

@pytest.mark.parametrize('arm,key,bad', [
    ('rewind', 'rewind_epoch', 0), ('rewind', 'rewind_lr_mult', 0), ('rewind', 'rewind_lr_mult', 1.5),
    ('extend', 'shape', 'cos'), ('extend', 'decay', 'step'), ('extend', 'pct_warmup', -0.1), ('extend', 'div', 0.5),
    ('swa', 'lr_div', 0.1), ('swa', 'anneal_epochs', -1), ('ema', 'ema_epochs', 0), ('ema', 'anneal_epochs', 1.5),
    ('schedule_free', 'lr_mult', -1), ('schedule_free', 'pct_warmup', 2)])
def test_errors_name_the_arm_and_key(arm, key, bad):
    with pytest.raises((TypeError, ValueError), match=rf"arms\['a'\]\['{key}'\]"): check_arms({'a': {'strategy': arm, key: bad}})

def test_unknown_keys_and_spec_errors():
    _fails(lambda: check_arms({'a': {'strategy': 'swa', 'ema_epochs': 1}}), contains="arms['a']")
    _fails(lambda: check_arms({'a': {'strategy': 'rewind', 'n_epoch': 4}}), contains="arms['a']")
    cfg = make_config('t', {'r': {'strategy': 'rewind', 'rewind_epoch': 3}}, dataset='mnist1d', lr_max=1e-2, n_epoch_base=3, n_epoch_cont=2)
    _fails(lambda: run_spec(cfg, 'r', 0), contains='rewind_epoch=3')
    cfg = make_config('t', {'s': {'strategy': 'swa', 'anneal_epochs': 3}}, dataset='mnist1d', lr_max=1e-2, n_epoch_base=3, n_epoch_cont=2)
    _fails(lambda: run_spec(cfg, 's', 0), contains='anneal_epochs=3')
