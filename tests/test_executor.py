"""Runs as tasks of executors: the same results.csv from one process, two local worker processes and a dask cluster;
a worker killed mid-run (SIGKILL, at a chosen epoch); several processes with one experiment name and different arms.

Small on purpose (quick data, 2+1 epochs, 2 seeds, 1 torch thread): the cost is process and cluster start-up."""
import json, os, signal, subprocess, sys, warnings
from functools import partial
from pathlib import Path
import pandas as pd, pytest, torch
import ozcycle.executor as ex_mod
from ozcycle.executor import WorkerLostWarning, default_workers, run_tasks
from ozcycle.runner import run_experiment, load_results, make_config, run_spec, DivergenceWarning
from ozcycle.store import run_key

VALUES = ['experiment', 'arm', 'strategy', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'diverged']  # all but time_s
KW = dict(arms=['refit', 'constant'], n_epoch_base=2, n_epoch_cont=1, seeds=2, quick=True, quiet=True, dataset='mnist1d', device='cpu')
OZCYCLE = Path(sys.executable).parent/'ozcycle'

pytestmark = pytest.mark.usefixtures('one_thread')   # tests/conftest.py

def _csv(path): return pd.read_csv(path)[VALUES]

def test_results_do_not_depend_on_the_executor(tmp_path):
    "results.csv from 1 process, 2 local worker processes and a dask LocalCluster of 2 worker processes: equal in every value column"
    from distributed import Client, LocalCluster
    run_experiment(out=tmp_path/'one', **KW)
    run_experiment(out=tmp_path/'two', workers=2, **KW)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        run_experiment(out=tmp_path/'dask', executor=client.get_executor(), **KW)
    one = _csv(tmp_path/'one'/'experiment'/'mnist1d-adam'/'results.csv')
    assert len(one) == 2 * (2 + 1 + 1 + 3) and not one['diverged'].any()
    for k in ('two', 'dask'):
        pd.testing.assert_frame_equal(_csv(tmp_path/k/'experiment'/'mnist1d-adam'/'results.csv'), one, check_exact=True)
        assert len(list((tmp_path/k/'_runs').glob('*/run.json'))) == 2 * 4   # every run trained once
        assert all(json.loads(f.read_text())['starts'] == [0] for f in (tmp_path/k/'_runs').glob('*/run.json'))

class _Job:
    "Like a submitit job: not a `concurrent.futures.Future`, only done() and result()"
    def __init__(self, fn, args): self.value = fn(*args)
    def done(self): return True
    def result(self): return self.value

class _InlineExecutor:
    "An executor that runs each task at once, in this process, and counts them"
    def __init__(self): self.calls = []
    def submit(self, fn, *args): self.calls.append(args[1:3]); return _Job(fn, args)

def test_any_executor_one_task_per_run_continuations_after_their_base(tmp_path):
    "Each run is one task; a continuation is submitted after its seed's base ended; warnings raised in a task reach the caller"
    ex = _InlineExecutor()
    arms = {'hot': {'strategy': 'constant', 'lr': 1e5}, 'refit': {'strategy': 'refit'}}
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        res = run_experiment(**{**KW, 'arms': arms}, out=tmp_path/'inline', executor=ex)
    assert sorted(ex.calls) == sorted((a, s) for a in ('base', 'hot', 'refit', 'long') for s in (0, 1))
    for s in (0, 1): assert ex.calls.index(('base', s)) < min(ex.calls.index(('hot', s)), ex.calls.index(('refit', s)))
    msgs = sorted(str(w.message) for w in ws if issubclass(w.category, DivergenceWarning))
    assert len(msgs) == 2 and "arm 'hot' seed 0 diverged" in msgs[0]
    ref = run_experiment(**{**KW, 'arms': arms}, out=tmp_path/'ref')
    pd.testing.assert_frame_equal(res.df[VALUES], ref.df[VALUES], check_exact=True)

def test_one_bar_over_the_runs(tmp_path, monkeypatch):
    "One progress bar for the whole job, fed by finished tasks"
    bars = []
    class Bar:
        def __init__(self, it): self.total, self.done, self.comment = len(it), [], ''; bars.append(self)
        def update(self, n): self.done.append(n)
    monkeypatch.setattr(ex_mod, 'progress_bar', Bar)
    run_experiment(**{**KW, 'quiet': False}, out=tmp_path, executor=_InlineExecutor())
    assert len(bars) == 1 and bars[0].total == 8 and bars[0].done == list(range(9))
    monkeypatch.undo(); bars.clear()
    run_experiment(**KW, out=tmp_path/'q', executor=_InlineExecutor())
    assert bars == []   # quiet

def _killing_run(cfg, arm, seed, store, n_threads=None, attempt=0, key=None, at=None, marker=None):
    "`train_run`, in a worker that kills itself with SIGKILL once, right after run `key` saved epoch `at`"
    import ozcycle.runner as r
    if not getattr(r.RunLog, '_killer', False):
        after = r.RunLog.after_epoch
        def after_epoch(self):
            after(self)
            if self.ckpt.parent.name == key and self.rows and self.rows[-1]['epoch'] == at and not os.path.exists(marker):
                Path(marker).touch(); os.kill(os.getpid(), signal.SIGKILL)
        r.RunLog.after_epoch, r.RunLog._killer = after_epoch, True
    return ex_mod.train_run(cfg, arm, seed, store, n_threads, attempt)

def test_worker_killed_mid_run(tmp_path, monkeypatch):
    "A worker killed (SIGKILL) right after epoch 2 of seed 0's base run: the job finishes with the numbers of an uninterrupted run"
    kw = {**KW, 'n_epoch_base': 3, 'lr_max': 1e-2}   # lr_max given: the key is known before the runs start
    key = run_key(run_spec(make_config(**{k: v for k, v in kw.items() if k != 'quiet'}), 'base', 0))
    monkeypatch.setattr(ex_mod, 'train_run', partial(_killing_run, key=key, at=2, marker=str(tmp_path/'marker')))
    with pytest.warns(WorkerLostWarning, match='a worker process died while training .*base seed 0'):
        run_experiment(out=tmp_path/'killed', workers=2, **kw)
    assert (tmp_path/'marker').exists()   # it really was killed
    monkeypatch.undo()
    run_experiment(out=tmp_path/'ref', **kw)
    pd.testing.assert_frame_equal(_csv(tmp_path/'killed'/'experiment'/'mnist1d-adam-lr0.01'/'results.csv'), _csv(tmp_path/'ref'/'experiment'/'mnist1d-adam-lr0.01'/'results.csv'), check_exact=True)
    rec = json.loads((tmp_path/'killed'/'_runs'/key/'run.json').read_text())
    assert rec['starts'] == [0, 2]   # resumed after its second epoch: only the unfinished third was lost
    assert not list((tmp_path/'killed').rglob('*.tmp'))

def test_same_name_different_arms_two_processes(tmp_path):
    "Two processes at once, one --name, different arms: results.csv and config.json hold both arms' runs (issue 12)"
    args = [str(OZCYCLE), 'run', '--quick', '--epochs', '2', '1', '--seeds', '2', '--threads', '1', '--workers', '1', '--quiet',
            '--device', 'cpu', '--dataset', 'mnist1d', '--out', str(tmp_path/'shared'), '--name', 'same', '--arms']
    procs = [subprocess.Popen(args + [a], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for a in ('refit', 'constant')]
    for p in procs: assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-3000:]
    got = _csv(tmp_path/'shared'/'same'/'mnist1d-adam'/'results.csv')
    ref = run_experiment(**{**KW, 'name': 'same'}, out=tmp_path/'ref').df[VALUES]
    order = ['arm', 'seed', 'epoch']
    pd.testing.assert_frame_equal(got.sort_values(order, ignore_index=True), ref.sort_values(order, ignore_index=True), check_exact=True)
    cfg = json.loads((tmp_path/'shared'/'same'/'mnist1d-adam'/'config.json').read_text())
    assert set(cfg['arms']) == {'refit', 'constant'} and set(cfg['runs']) == {'base', 'refit', 'constant', 'long'}
    assert set(load_results(tmp_path/'shared'/'same'/'mnist1d-adam').df['arm']) == {'base', 'refit', 'constant', 'long'}

def test_another_design_replaces(tmp_path):
    "A call of another design (here other seeds) under the same name replaces the folder's table, as before"
    run_experiment(**{**KW, 'arms': ['refit']}, out=tmp_path)
    run_experiment(**{**KW, 'arms': ['constant'], 'seeds': [5]}, out=tmp_path)
    got = pd.read_csv(tmp_path/'experiment'/'mnist1d-adam'/'results.csv')
    assert set(got['arm']) == {'base', 'constant', 'long'} and set(got['seed']) == {5}

def test_default_workers_and_bad_workers():
    cfg = make_config(dataset='mnist1d', device='cpu')
    assert default_workers(cfg) == len(os.sched_getaffinity(0)) and default_workers(cfg, n_threads=1024) == 1
    with pytest.raises(ValueError, match='workers=0'): run_experiment(workers=0, quick=True)
    with pytest.raises(TypeError, match='workers'): run_experiment(workers=1.5, quick=True)
