"""ozcycle's fits under fastai's own distributed path (`learn.distrib_ctx()`, Accelerate), 2 CPU processes, gloo backend.

`tests/ddp_fits.py` trains on 2 ranks and once in a single process with the same global batch; here the records are
compared: every rank's per-step LR and momentum equal the single-process fit's, for the one-cycle, every continuation
and an exact resume with `start_epoch`; `GradClip` sees the same norm at every step on every rank (computed on the
averaged gradient), so the ranks keep equal weights; the resumed fit ends on the uninterrupted fit's weights."""
import subprocess, sys
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parent.parent
FITS = ['cycle', 'refit', 'constant', 'decay', 'continue', 'resumed']

@pytest.fixture(scope='module')
def recs(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    r = subprocess.run([sys.executable, '-W', 'ignore', str(ROOT/'tests'/'ddp_fits.py'), str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-4000:]
    return [torch.load(out/f'{n}.pt', weights_only=False) for n in ('rank0', 'rank1', 'single')]

@pytest.mark.parametrize('fit', FITS)
def test_lr_and_mom_per_step_equal_the_single_process_fit(recs, fit):
    r0, r1, single = (r[fit] for r in recs)
    assert (r0['kind'], r0['n_steps'], r0['start_epoch']) == (single['kind'], single['n_steps'], single['start_epoch'])   # the data really was split
    for k in ('lr', 'mom'):
        assert len(r0['hps'][k]) > 0
        assert torch.equal(r0['hps'][k], single['hps'][k]) and torch.equal(r1['hps'][k], single['hps'][k]), (fit, k)
    assert torch.equal(r0['lr_last'], single['lr_last'])

@pytest.mark.parametrize('fit', FITS)
def test_gradclip_agrees_across_ranks(recs, fit):
    r0, r1, _ = (r[fit] for r in recs)
    assert torch.equal(r0['clip'], r1['clip']), fit   # the same norm, clipped or not, at every step
    assert 0 < r0['clip'][:, 1].sum() < len(r0['clip']), fit   # some steps clipped, some not: the test can tell
    for k, v in r0['weights'].items(): assert torch.equal(v, r1['weights'][k]), (fit, k)   # averaged gradients, clipped alike

def test_resume_with_start_epoch_is_exact(recs):
    for r in recs:
        full, resumed = r['cycle'], r['resumed']
        n = len(resumed['hps']['lr'])
        assert n == len(full['hps']['lr']) // 2
        for k in ('lr', 'mom'): assert torch.equal(resumed['hps'][k], full['hps'][k][-n:])
        for k, v in full['weights'].items(): assert torch.equal(resumed['weights'][k], v), k
