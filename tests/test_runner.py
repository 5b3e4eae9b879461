"""The experiment runner against fastai itself, two processes at once, and divergence (kills at chosen points: test_kill.py).

Small on purpose (quick data, 1-4 epochs, 1 torch thread): a few seconds each, apart from process start-up."""
import json, subprocess, sys, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.learner import Learner
from fastai.optimizer import Adam
from ozcycle.data import get_data, make_model
from ozcycle.runner import run_experiment, load_results, DivergenceWarning, COLUMNS, QUICK_DATA, run_spec
from ozcycle.store import seed_everything, run_key
import ozcycle.fit  # noqa: F401  (Learner.fit_cycle, fit_refit, ...)

VALUES = ['experiment', 'arm', 'strategy', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'diverged']
OZCYCLE = Path(sys.executable).parent/'ozcycle'

pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py

def _csv(path): return pd.read_csv(path)

def test_branching_equals_training_on(tmp_path):
    "A continuation that branches from the base's checkpoint is exactly the base fit followed by the continuation in one Learner"
    res = run_experiment({'refit': {'strategy': 'refit', 'lr_div': 3}, 'decay': {'strategy': 'decay'}}, n_epoch_base=2, n_epoch_cont=2, seeds=[3],
                         lr_max=1e-2, out=tmp_path, quick=True, quiet=True, dataset='mnist1d', device='cpu')
    for arm, fit in (('refit', lambda l: l.fit_refit(2, lr_div=3)), ('decay', lambda l: l.fit_decay(2))):
        dls = get_data('mnist1d', seed=3, device='cpu', **QUICK_DATA['mnist1d'])
        seed_everything(3)
        learn = Learner(dls, make_model('cnn1d'), opt_func=Adam)
        learn.remove_cb(learn.progress); learn.logger = lambda *a: None
        learn.fit_cycle(2, 1e-2)
        fit(learn)
        ckpt = torch.load(tmp_path/'_runs'/run_key(run_spec(res.config, arm, 3))/'last.pt', weights_only=True)
        for k, v in learn.model.state_dict().items(): assert torch.equal(ckpt['model'][k], v), (arm, k)  # exactly the same weights
        valid_loss, = learn.validate()[:1]   # fastai's AvgLoss sums in float32, ours in float64: equal to float32 precision
        got = res.df.query("arm == @arm and epoch == 4")['valid_loss'].item()
        assert got == pytest.approx(valid_loss, rel=1e-6), (arm, got, valid_loss)
    # the controls: base of n_epoch_base epochs, long of n_epoch_base+n_epoch_cont from the same initial weights
    assert res.df.groupby('arm')['epoch'].max().to_dict() == {'base': 2, 'refit': 4, 'decay': 4, 'long': 4}

def test_paired_seeds(tmp_path):
    "Every arm of a seed starts from the same weights and sees the same data order; seeds differ"
    res = run_experiment(['constant'], n_epoch_base=1, n_epoch_cont=1, seeds=2, out=tmp_path, quick=True, quiet=True, dataset='mnist1d', device='cpu')
    base, long = res.df.query("arm == 'base'"), res.df.query("arm == 'long'")
    # epoch 1 of base and long: same weights and batches, LRs differ (cycle of 1 vs 2 epochs) so losses differ a little
    assert (base['seed'].tolist(), long.query('epoch == 1')['seed'].tolist()) == ([0, 1], [0, 1])
    assert base['train_loss'].iloc[0] != base['train_loss'].iloc[1]  # seeds differ
    rec = [json.loads((tmp_path/'_runs'/run_key(run_spec(res.config, 'base', s))/'run.json').read_text()) for s in (0, 1)]
    assert rec[0]['hps'] == rec[1]['hps']  # same schedule for every seed
    assert set(res.df.columns) == set(COLUMNS) and not res.df.duplicated(['arm', 'seed', 'epoch']).any()

def test_two_processes_share_runs(tmp_path):
    "Two processes on one results folder train every run once and agree with each other"
    args = [str(OZCYCLE), 'run', '--quick', '--epochs', '2', '1', '--seeds', '2', '--arms', 'refit', '--threads', '1',
            '--quiet', '--device', 'cpu', '--dataset', 'mnist1d', '--out', str(tmp_path)]
    procs = [subprocess.Popen(args + ['--name', n], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n in ('a', 'b')]
    for p in procs: assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-3000:]
    a, b = _csv(tmp_path/'a'/'mnist1d-adam'/'results.csv'), _csv(tmp_path/'b'/'mnist1d-adam'/'results.csv')
    pd.testing.assert_frame_equal(a.drop(columns='experiment'), b.drop(columns='experiment'), check_exact=True)
    runs = list((tmp_path/'_runs').glob('*/run.json'))
    assert len(runs) == 2 * 3  # base, refit, long per seed: stored once
    assert all(json.loads(f.read_text())['starts'] == [0] for f in runs)  # each trained once, in one go

def test_divergence_is_recorded(tmp_path):
    "A huge LR diverges: recorded as diverged (NaN, never a number) with arm, seed and epoch named; other arms go on"
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        res = run_experiment({'hot': {'strategy': 'constant', 'lr': 1e5}, 'refit': {'strategy': 'refit'}}, n_epoch_base=1, n_epoch_cont=2, seeds=2,
                             out=tmp_path, quick=True, quiet=True, dataset='mnist1d', device='cpu')
    df = res.df
    hot = df.query("arm == 'hot'")
    assert hot['diverged'].tolist() == [True, True] and hot['epoch'].tolist() == [2, 2]
    assert hot[['train_loss', 'valid_loss', 'accuracy']].isna().all().all()
    ok = df.query("arm != 'hot'")
    assert not ok['diverged'].any() and ok[['train_loss', 'valid_loss', 'accuracy']].notna().all().all()
    assert ok.groupby('arm')['epoch'].max().to_dict() == {'base': 1, 'refit': 3, 'long': 3}
    msgs = sorted(str(w.message) for w in ws if issubclass(w.category, DivergenceWarning))
    assert len(msgs) == 2 and "arm 'hot' seed 0 diverged at epoch 2" in msgs[0] and "seed 1" in msgs[1]
    s = res.summary()
    assert (s.loc['hot', 'n'], s.loc['hot', 'n_diverged']) == (0, 2) and np.isnan(s.loc['hot', 'accuracy_mean'])
    v = res.verdict()
    assert v.winner in ('refit', 'long') and 'Diverged runs' in v.text and '`hot` 2' in v.text
    # the CSV says diverged, with empty cells where the numbers would be
    csv = (tmp_path/'experiment'/'mnist1d-adam'/'results.csv').read_text().splitlines()
    hot_lines = [l for l in csv if ',hot,' in l]
    assert len(hot_lines) == 2 and all(l.endswith(',True') and ',,,' in l for l in hot_lines)
    assert load_results(tmp_path/'experiment'/'mnist1d-adam').df.equals(df)

def test_config_records_versions_and_hardware(tmp_path):
    res = run_experiment([], n_epoch_base=1, n_epoch_cont=1, seeds=1, out=tmp_path, quick=True, quiet=True, dataset='mnist1d', device='cpu', long=False)
    cfg = json.loads((tmp_path/'experiment'/'mnist1d-adam'/'config.json').read_text())
    assert cfg['versions']['torch'] == torch.__version__ and cfg['hardware']['device'] == 'cpu'
    assert cfg['n_epoch_base'] == 1 and cfg['seeds'] == [0] and cfg['data_kw'] == QUICK_DATA['mnist1d'] and cfg['wall_s'] > 0
    assert list(res.df['arm'].unique()) == ['base']

def test_bad_arguments():
    with pytest.raises(ValueError, match='lr_div'): run_experiment({'r': {'strategy': 'refit', 'lr_div': 0.1}}, quick=True)
    with pytest.raises(TypeError, match='lr_dv'): run_experiment({'r': {'strategy': 'refit', 'lr_dv': 3}}, quick=True)
    with pytest.raises(ValueError, match='seeds'): run_experiment(seeds=0)
    with pytest.raises(ValueError, match='dataset'): run_experiment(dataset='mnist')
    with pytest.raises(ValueError, match='n_epoch_cont=0'): run_experiment(n_epoch_cont=0)


def test_run_key_changes_with_the_code(monkeypatch):
    "A run stored by other code (a changed schedule, a new torch) is never reused: the code fingerprint is in the key"
    import ozcycle.runner as ex
    cfg = ex.make_config(arms=['refit'], n_epoch_base=2, n_epoch_cont=2, seeds=1, quick=True, lr_max=1e-2)
    spec = run_spec(cfg, 'refit', 0)
    assert spec['code'] == ex.code_version() and len(spec['code']) == 12
    key = run_key(spec)
    monkeypatch.setattr(ex, 'code_version', lambda: '0123456789ab')
    assert run_key(run_spec(cfg, 'refit', 0)) != key
    assert run_key(run_spec(cfg, 'base', 0)) != run_key({**run_spec(cfg, 'base', 0), 'code': spec['code']})
