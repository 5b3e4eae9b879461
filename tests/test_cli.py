"""The `ozcycle` command: the console script as a user runs it (help, a bad flag, a quick run via `python -m ozcycle.cli`),
and `main(argv)` in-process for the other bad flags (argparse message, exit status 2) and `summary`.
Every subprocess pays the torch/fastai import (seconds), so only three are started."""
import subprocess, sys, tomllib
from pathlib import Path
import pytest
from ozcycle.cli import main

ROOT = Path(__file__).resolve().parent.parent
OZCYCLE = Path(sys.executable).parent/'ozcycle'

def run(*args, cmd=None):
    return subprocess.run([*(cmd or [str(OZCYCLE)]), *args], capture_output=True, text=True, timeout=600)

def call(capsys, *args):
    "`main(args)`: exit status, stdout, stderr"
    try: rc = main(list(args))
    except SystemExit as e: rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err

def test_console_script_declared():
    scripts = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['scripts']
    assert scripts == {'ozcycle': 'ozcycle.cli:main'}
    assert OZCYCLE.exists(), f"{OZCYCLE} missing: install the package (pip install -e .)"

def test_help_for_a_newcomer(capsys):
    r = run('run', '--help')
    assert r.returncode == 0, r.stderr
    for phrase in ['usage: ozcycle run', 'fit_one_cycle(E0+E1)', 'paired seeds', 'results.csv', 'config.json',
                   'Run the same command again', '--quick', '--arms', 'NAME=STRATEGY:KEY=VALUE', 'lr_div (10)', 'examples:']:
        assert phrase in r.stdout, phrase
    rc, out, _ = call(capsys, '--help')
    assert rc == 0 and 'run' in out and 'summary' in out

def test_bad_flag_exits_2_from_the_shell():
    r = run('run', '--epochs', '3')
    assert (r.returncode, r.stdout) == (2, '')
    assert 'usage: ozcycle run' in r.stderr and 'ozcycle run: error: argument --epochs: expected 2 arguments' in r.stderr

@pytest.mark.parametrize('args,message', [
    (['run', '--seeds', 'five'], "argument --seeds: invalid int value: 'five'"),
    (['run', '--dataset', 'mnist'], "argument --dataset: invalid choice: 'mnist'"),
    (['run', '--frobnicate'], 'unrecognized arguments: --frobnicate'),
    (['run', '--arms', 'r=refit:lr_dv=3'], "unexpected argument(s) lr_dv"),
    (['run', '--arms', 'r=refit:lr_div'], "must look like KEY=VALUE"),
    (['run', '--arms', 'refit', 'refit'], "'refit' more than once"),
    (['run', '--seeds', '0'], '--seeds 0: give a count in [1, 10000]'),
    (['run', '--epochs', '5', '0'], '--epochs E1 0 leaves no epochs'),
    (['run', '--lr-max', '0'], '--lr-max 0.0 must be a finite learning rate > 0'),
    (['run', '--threads', '0'], '--threads=0'),
    (['run', '--quick', '--bs', '5000'], '--bs 5000 is more than the 1000 training examples'),
    (['run', '--device', 'meta'], '--device meta: ozcycle trains on cpu, cuda or mps'),
    (['run', '--out', ''], "--out '': give a folder name"),
    (['run', '--arms', 'r=refit:lr_div=3,lr_div=10'], "parameter 'lr_div' is given twice"),
    (['summary'], 'the following arguments are required: DIR'),
    ([], 'the following arguments are required: COMMAND'),
])
def test_bad_flags_exit_2(capsys, args, message):
    rc, out, err = call(capsys, *args)
    assert (rc, out) == (2, ''), (rc, out, err)
    assert 'usage: ozcycle' in err and 'error:' in err and message in err, err

def test_quick_run_and_summary(tmp_path, capsys):
    "`python -m ozcycle.cli run --quick` trains, prints the summary and verdict; `ozcycle summary` prints them again"
    r = run('run', '--quick', '--epochs', '1', '1', '--seeds', '2', '--arms', 'refit', 'low=constant:lr=last', '--out', str(tmp_path),
            '--quiet', '--device', 'cpu', '--dataset', 'mnist1d', cmd=[sys.executable, '-m', 'ozcycle.cli'])
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'torch.jit.script' not in r.stderr and 'FutureWarning' not in r.stderr, r.stderr[-3000:]  # hidden by the command
    for arm in ('base', 'refit', 'low', 'long'): assert f'\n{arm} ' in r.stdout, arm
    assert 'Best mean final accuracy' in r.stdout and '2 paired seeds' in r.stdout and 'results.csv' in r.stdout
    assert (tmp_path/'experiment'/'mnist1d-adam'/'results.csv').exists() and (tmp_path/'experiment'/'mnist1d-adam'/'config.json').exists()
    rc, out, err = call(capsys, 'summary', str(tmp_path/'experiment'/'mnist1d-adam'))
    assert rc == 0 and out.strip() == r.stdout.strip(), err
    rc, out, err = call(capsys, 'summary', str(tmp_path/'nope'))
    assert rc == 2 and 'config.json' in err

def test_device_without_cuda_is_a_usage_error(capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    rc, out, err = call(capsys, 'run', '--quick', '--device', 'cuda')
    assert (rc, out) == (2, ''), (rc, out, err)
    assert 'ozcycle run: error: --device cuda: CUDA is not available on this machine; use --device cpu' in err, err

@pytest.mark.parametrize('device', ['gpu', 'cuda0', ''])
def test_device_not_a_torch_device_is_a_usage_error(capsys, device):
    rc, out, err = call(capsys, 'run', '--quick', '--device', device)
    assert (rc, out) == (2, ''), (rc, out, err)
    assert f'ozcycle run: error: --device {device}: not a torch device; use e.g. cpu, cuda' in err, err

def test_out_not_writable_is_a_usage_error(capsys, tmp_path):
    (tmp_path/'a_file').write_text('x')
    for bad in ['/proc/nope', str(tmp_path/'a_file'), str(tmp_path/'a_file'/'sub'/'deeper')]:
        rc, out, err = call(capsys, 'run', '--quick', '--device', 'cpu', '--out', bad)
        assert (rc, out) == (2, ''), (bad, rc, out, err)
        assert f'ozcycle run: error: --out {bad}: cannot create or write this folder' in err, err
    assert not Path('/proc/nope').exists() and [p.name for p in tmp_path.iterdir()] == ['a_file']

def test_out_check_leaves_nothing_behind(tmp_path):
    from ozcycle.cli import _check_out
    _check_out(str(tmp_path/'new'/'deep'))  # creatable and writable: no error, and the folders it made are gone
    assert list(tmp_path.iterdir()) == []
    (tmp_path/'kept').mkdir(); (tmp_path/'kept'/'old.txt').write_text('x')
    _check_out(str(tmp_path/'kept'))  # an existing folder stays, with only what it had
    assert [p.name for p in (tmp_path/'kept').iterdir()] == ['old.txt']

def test_main_leaves_warning_filters_alone(capsys):
    import warnings
    before = list(warnings.filters)
    call(capsys, 'run', '--device', 'gpu')
    assert warnings.filters == before
