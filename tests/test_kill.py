"""Deterministic kills: `ozcycle run` is killed with SIGKILL at a chosen point of its work (right after a checkpoint,
half-way through writing one, between a run's record and the results table, in the middle of an epoch, ...), then run
again: the table is the uninterrupted run's, value for value, and no temporary file is left.

The point is chosen, not timed: a small script patches the one writer all run files go through (`atomic_write`, as the
store calls it) or `RunLog.after_batch`, so that its n-th call kills the process. Quick data, 2+2 epochs, one seed."""
import json, os, signal, subprocess, sys, textwrap
from pathlib import Path
import pandas as pd, pytest
from ozcycle.cli import main

ROOT = Path(__file__).resolve().parent.parent
ARGS = ['run', '--quick', '--epochs', '2', '2', '--seeds', '1', '--arms', 'refit', '--threads', '1', '--quiet',
        '--device', 'cpu', '--dataset', 'mnist1d', '--workers', '1']   # in this process: the patched writes are this process's
VALUES = ['experiment', 'arm', 'strategy', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'diverged']

# argv: FILE MODE N OUT. The N-th write of a file named FILE (or the N-th batch, FILE == 'batch') kills the process:
# MODE 'after': once the file is in place; 'half': half its temporary file written, before the rename; 'before': before writing
SCRIPT = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path
    import ozcycle.store as store, ozcycle.runner as runner
    from ozcycle.cli import main
    target, mode, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    seen = [0]
    def hit():
        seen[0] += 1
        return seen[0] == n
    def kill(): os.kill(os.getpid(), signal.SIGKILL)
    write0 = store.atomic_write
    def atomic_write(path, write):
        if Path(path).name != target or not hit(): return write0(path, write)
        if mode == 'before': kill()
        if mode == 'after': write0(path, write); kill()
        def half(tmp):
            write(tmp); b = Path(tmp).read_bytes(); Path(tmp).write_bytes(b[:len(b) // 2]); kill()
        write0(path, half)
    store.atomic_write = atomic_write
    batch0 = runner.RunLog.after_batch
    def after_batch(self):
        batch0(self)
        if target == 'batch' and hit(): kill()
    runner.RunLog.after_batch = after_batch
    main(sys.argv[5:] + ['--out', out])
    sys.exit('the chosen point was never reached')
''')

@pytest.fixture(scope='module')
def ref(tmp_path_factory):
    out = tmp_path_factory.mktemp('ref')
    assert main(ARGS + ['--out', str(out)]) == 0
    return pd.read_csv(out/'experiment'/'mnist1d-adam'/'results.csv')[VALUES]

# Writes, in order: config.json; base: spec.json, last.pt (epochs 1, 2), run.json; results.csv; refit: the same (epochs 3, 4);
# results.csv; long: last.pt (epochs 1-4), run.json; results.csv; config.json
POINTS = {  # id: (file, mode, n, a run resumes from a checkpoint on the rerun)
    'after base epoch 1 checkpoint': ('last.pt', 'after', 1, True),
    'after refit epoch 3 checkpoint': ('last.pt', 'after', 3, True),
    'half-written base epoch 2 checkpoint': ('last.pt', 'half', 2, True),
    'half-written long epoch 3 checkpoint': ('last.pt', 'half', 7, True),
    'after base run.json, before results.csv': ('run.json', 'after', 1, False),
    'half-written refit run.json': ('run.json', 'half', 2, False),
    'half-written results.csv': ('results.csv', 'half', 2, False),
    'before the last config.json': ('config.json', 'before', 2, False),
    'mid-epoch, in long': ('batch', 'after', 60, True),
}

@pytest.mark.parametrize('point', list(POINTS))
def test_kill_at_a_chosen_point_and_rerun(tmp_path, ref, point):
    target, mode, n, resumed = POINTS[point]
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}
    p = subprocess.run([sys.executable, '-c', SCRIPT, target, mode, str(n), str(tmp_path), *ARGS], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    temps = list(tmp_path.rglob('*.tmp'))
    assert bool(temps) == (mode == 'half'), temps   # a half-written file was left behind by the killed writer
    assert main(ARGS + ['--out', str(tmp_path)]) == 0
    got = pd.read_csv(tmp_path/'experiment'/'mnist1d-adam'/'results.csv')
    pd.testing.assert_frame_equal(got[VALUES], ref, check_exact=True)
    assert not list(tmp_path.rglob('*.tmp'))   # the dead writer's temporary files are gone
    starts = [json.loads(f.read_text())['starts'] for f in (tmp_path/'_runs').glob('*/run.json')]
    assert len(starts) == 3 and any(len(s) == 2 for s in starts) == resumed, starts   # resumed from its checkpoint, not retrained
