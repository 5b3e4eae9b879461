"""A results folder that cannot be written: read-only (finished work is read, nothing written, an unfinished run named),
or full (the command says so in one line naming the folder, exits 1, and a rerun loses nothing).

Read-only is simulated twice over: the files are made read-only (`chmod`), and, since root ignores that, every Python
call that could write under the folder (`open` for writing, `os.open` with write flags, `os.replace`, `os.unlink`,
`os.mkdir`, ...) raises `OSError(EROFS)` as a read-only mount does; a snapshot of every file's bytes and mtime then
shows that nothing was written by any other route either."""
import builtins, errno, io, os, stat
from pathlib import Path
import pandas as pd, pytest
from ozcycle.cli import main
from ozcycle.runner import run_experiment, load_results
import ozcycle.store as store

ARGS = ['run', '--quick', '--epochs', '2', '2', '--seeds', '1', '--arms', 'refit', '--threads', '1', '--quiet',
        '--device', 'cpu', '--dataset', 'mnist1d', '--workers', '1']   # in this process: the patched writes are this process's
VALUES = ['experiment', 'arm', 'strategy', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'diverged']

def call(capsys, *args):
    try: rc = main(list(args))
    except SystemExit as e: rc = e.code
    o = capsys.readouterr()
    return rc, o.out, o.err

@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp('finished')
    assert main(ARGS + ['--out', str(out)]) == 0
    return out

def _snapshot(folder): return {p: (p.stat().st_mtime_ns, p.is_file() and p.read_bytes()) for p in sorted(Path(folder).rglob('*'))}

def _read_only(folder, monkeypatch):
    "Make `folder` read-only, for root too (see the module docstring)"
    root = os.path.abspath(folder)
    inside = lambda p: isinstance(p, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(p)).startswith(root)
    def refuse(p): raise OSError(errno.EROFS, 'Read-only file system', os.fsdecode(p))
    open0, osopen0 = builtins.open, os.open
    def open_(f, mode='r', *a, **k):
        if inside(f) and set(mode) & set('wax+'): refuse(f)
        return open0(f, mode, *a, **k)
    def osopen(f, flags, *a, **k):
        if inside(f) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC): refuse(f)
        return osopen0(f, flags, *a, **k)
    def guard(f0, n=1):
        def f(*a, **k):
            if any(inside(p) for p in a[:n]): refuse(a[0])
            return f0(*a, **k)
        return f
    for p in [folder, *Path(folder).rglob('*')]: p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    monkeypatch.setattr(builtins, 'open', open_); monkeypatch.setattr(io, 'open', open_); monkeypatch.setattr(os, 'open', osopen)
    for name, n in (('replace', 2), ('rename', 2), ('unlink', 1), ('remove', 1), ('mkdir', 1), ('rmdir', 1), ('truncate', 1)):
        monkeypatch.setattr(os, name, guard(getattr(os, name), n))

@pytest.fixture
def read_only(finished, monkeypatch):
    before = _snapshot(finished)
    _read_only(finished, monkeypatch)
    yield finished
    monkeypatch.undo()
    for p in [finished, *finished.rglob('*')]: p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert _snapshot(finished) == before, 'something was written into the read-only folder'

def test_finished_work_is_read_in_a_read_only_folder(read_only, capsys):
    rc, out, err = call(capsys, 'summary', str(read_only/'experiment'/'mnist1d-adam'))
    assert rc == 0 and 'Best mean final accuracy' in out, err
    rc, out2, err = call(capsys, *ARGS, '--out', str(read_only))
    assert rc == 0 and 'Best mean final accuracy' in out2, err
    res = run_experiment(['refit'], out=read_only, n_epoch_base=2, n_epoch_cont=2, seeds=1, quick=True, quiet=True, dataset='mnist1d', device='cpu')
    pd.testing.assert_frame_equal(res.df, load_results(read_only/'experiment'/'mnist1d-adam').df)

def test_a_run_to_train_in_a_read_only_folder_is_named(read_only, capsys):
    rc, out, err = call(capsys, *[a if a != 'refit' else 'constant' for a in ARGS], '--out', str(read_only))
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f'ozcycle run: error: {read_only}/_runs/') and 'is read-only: cannot write spec.json' in err, err

def test_a_new_experiment_in_a_read_only_folder_reads_shared_runs(read_only, capsys):
    "Another experiment name whose runs are all finished in the shared store: read, though its own folder cannot be made"
    rc, out, err = call(capsys, *ARGS, '--name', 'again', '--out', str(read_only))
    assert rc == 0 and 'Best mean final accuracy' in out, err
    assert not (read_only/'again').exists()

@pytest.fixture(scope='module')
def ref(finished): return pd.read_csv(finished/'experiment'/'mnist1d-adam'/'results.csv')[VALUES]

@pytest.mark.parametrize('target,n', [('last.pt', 3), ('run.json', 2), ('results.csv', 1), ('config.json', 1), ('config.json', 2)])
def test_full_disk_is_one_line_naming_the_folder_and_loses_nothing(tmp_path, ref, monkeypatch, capsys, target, n):
    "The n-th write of `target` finds the disk full (`OSError(ENOSPC)` from the writer, as `torch.save` or `to_csv` raise it)"
    write0, seen = store.atomic_write, []
    def full(path, write):
        if Path(path).name == target:
            seen.append(path)
            if len(seen) == n:
                def write(tmp): Path(tmp).write_bytes(b'half'); raise OSError(errno.ENOSPC, 'No space left on device')
        return write0(path, write)
    monkeypatch.setattr(store, 'atomic_write', full)
    rc, out, err = call(capsys, *ARGS, '--out', str(tmp_path))
    folder = Path(seen[-1]).parent
    assert rc == 1 and err.count('\n') == 1, err
    assert err.startswith(f'ozcycle run: error: no space left on the device holding {folder} while writing {target}'), err
    assert not list(tmp_path.rglob('*.tmp'))
    for f in tmp_path.rglob('run.json'): store.load_record(f)          # what was written before is whole
    for f in tmp_path.rglob('last.pt'): store.load_checkpoint(f)
    monkeypatch.undo()
    assert call(capsys, *ARGS, '--out', str(tmp_path))[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path/'experiment'/'mnist1d-adam'/'results.csv')[VALUES], ref, check_exact=True)
