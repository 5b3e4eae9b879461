"""Start-up of the `ozcycle` command: help and the usage errors argparse and the cheap checks find import neither torch,
fastai, scipy nor matplotlib (each costs seconds). Checked through `sys.modules` in a fresh interpreter, never by timing
(the time is measured by `bench/bench_startup.py`)."""
import json, subprocess, sys
import pytest

HEAVY = ('torch', 'fastai', 'scipy', 'matplotlib', 'pandas', 'sklearn')
PROBE = """
import json, sys, contextlib, io
from ozcycle.cli import main
err = io.StringIO()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
    try: rc = main(json.loads(sys.argv[1]))
    except SystemExit as e: rc = e.code
print(json.dumps({'rc': rc, 'err': err.getvalue(), 'heavy': sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)

def probe(argv):
    out = subprocess.run([sys.executable, '-c', PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

@pytest.mark.parametrize('argv,rc,msg', [
    (['--help'], 0, ''),
    (['summary', '--help'], 0, ''),
    ([], 2, 'the following arguments are required: COMMAND'),
    (['run', '--bogus'], 2, 'unrecognized arguments: --bogus'),
    (['run', '--seeds', 'five'], 2, "argument --seeds: invalid int value: 'five'"),
    (['run', '--epochs', '3'], 2, 'expected 2 arguments'),
    (['run', '--seeds', '0'], 2, '--seeds 0: give a count in [1, 10000]'),
    (['run', '--threads', '0'], 2, '--threads=0'),
    (['run', '--arms', 'refit', 'refit'], 2, "'refit' more than once"),
    (['run', '--arms', 'r=refit:lr_div'], 2, 'must look like KEY=VALUE'),
])
def test_help_and_usage_errors_import_nothing_heavy(argv, rc, msg):
    r = probe(argv)
    assert r['rc'] == rc and msg in r['err'], r
    assert r['heavy'] == [], f"ozcycle {' '.join(argv)} imported {r['heavy']}"

def test_a_bad_dataset_name_is_still_checked_against_the_library():
    r = probe(['run', '--dataset', 'mnist'])   # the names live in ozcycle.data: this one error pays its import
    assert r['rc'] == 2 and "argument --dataset: invalid choice: 'mnist' (choose from 'mnist1d'" in r['err'], r

FREEZE = """
import gc, sys, contextlib, io
from ozcycle.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        if sys.argv[1] == 'list': main(['summary', sys.argv[2]])
        else: sys.argv = ['ozcycle', 'summary', sys.argv[2]]; main()
    except SystemExit: pass
print(gc.get_freeze_count() > 0)
"""

@pytest.mark.parametrize('how,frozen', [('command', 'True'), ('list', 'False')])
def test_gc_frozen_only_when_run_as_the_command(tmp_path, how, frozen):
    "Run as the command (argv None) `main` freezes the collector before exit; called from Python with a list, it leaves it alone"
    folder = tmp_path/'none'   # `summary` of a missing folder: a usage error from the library, after its import
    r = subprocess.run([sys.executable, '-c', FREEZE, how, str(folder)], capture_output=True, text=True, timeout=300)
    assert r.stdout.strip().splitlines()[-1:] == [frozen], (r.stdout, r.stderr)
