"""Fault injection: damaged run files are named, set aside and their runs trained again, with the same numbers."""
import warnings
import pandas as pd, pytest
from ozcycle.runner import run_experiment, DamagedFileWarning

VALUES = ['arm', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'diverged']
KW = dict(n_epoch_base=1, n_epoch_cont=1, seeds=1, lr_max=1e-2, quick=True, quiet=True, dataset='mnist1d', device='cpu', poll_s=0.01)

def _run(out):
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        res = run_experiment(['refit'], out=out, **KW)
    return res, [str(w.message) for w in ws if issubclass(w.category, DamagedFileWarning)]

@pytest.fixture(scope='module')
def ref(tmp_path_factory):
    return _run(tmp_path_factory.mktemp('ref'))[0].df[VALUES]

def _damage(kind, f):
    if kind == 'truncated': f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    elif kind == 'garbage': f.write_bytes(bytes(range(256)) * 4)
    elif kind == 'edited' and f.suffix == '.json': f.write_text(f.read_text().replace('0.', '0.9', 1))   # valid JSON, another number
    elif kind == 'edited': b = bytearray(f.read_bytes()); b[len(b) // 2] ^= 0xFF; f.write_bytes(bytes(b))   # one byte changed
    elif kind == 'reweighted':   # edited and still loadable: other weights, same format
        import torch
        st = torch.load(f, weights_only=True); st['model'] = {k: v + 1 for k, v in st['model'].items()}; torch.save(st, f)

CASES = [(w, k) for k in ('truncated', 'garbage', 'edited') for w in ('run.json', 'last.pt', 'base last.pt')] + [
         ('last.pt', 'reweighted'), ('base last.pt', 'reweighted')]

@pytest.mark.parametrize('what,kind', CASES)
def test_damaged_file_is_set_aside_and_retrained(tmp_path, ref, what, kind):
    res, _ = _run(tmp_path)
    runs = tmp_path/'_runs'
    key = res.config['runs']['base' if what.startswith('base') else 'refit']['0']
    f = runs/key/what.split()[-1]
    if what == 'last.pt': (runs/key/'run.json').unlink()   # an unfinished run: its checkpoint is all there is
    _damage(kind, f)
    rows0 = len(pd.read_csv(tmp_path/'experiment'/'mnist1d-adam-lr0.01'/'results.csv'))
    res2, msgs = _run(tmp_path)
    assert msgs and str(f) in msgs[0] and 'is damaged' in msgs[0] and 'set aside as' in msgs[0], msgs
    assert list((runs/key).glob(f'{f.name}.damaged-*')), 'the damaged file is kept, renamed'
    pd.testing.assert_frame_equal(res2.df[VALUES], ref, check_exact=True)   # retrained: the same numbers
    assert len(pd.read_csv(tmp_path/'experiment'/'mnist1d-adam-lr0.01'/'results.csv')) >= rows0

def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    res, _ = _run(tmp_path)
    d = tmp_path/'_runs'/res.config['runs']['refit']['0']
    (d/'run.json').unlink()
    (d/'.last.pt.999999999.tmp').write_bytes(b'half a checkpoint')   # pid 999999999: no such process
    _run(tmp_path)
    assert not (d/'.last.pt.999999999.tmp').exists()
