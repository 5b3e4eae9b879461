"""The training step of `ozcycle run` against a hand-written PyTorch loop with the same model, data and schedule.

Both train the MNIST-1D paper's CNN (`ozcycle.data.make_model('cnn1d')`) on the same in-memory batches
(`ozcycle.data.get_data('mnist1d')`: 4,000 train / 4,000 valid, bs 128) with fastai's Adam hyper-parameters
(betas (mom, 0.99), eps 1e-5, decoupled weight decay 0.01) under fastai's one-cycle LR and momentum schedules, and
validate after every epoch (loss and accuracy). Contenders, each timed over a fit of `--epochs` epochs:
  torch    a plain loop: set LR and beta1 from the schedule arrays (`ozcycle.schedules.sched_values`), forward,
           backward, `torch.optim.AdamW.step` (weight decay off for biases, as fastai), then a validation pass;
  runner   `lean_learner(...).fit_cycle(...)` with `RunLog`, the runner's recorder (per-epoch row, per-batch LR and
           momentum, an atomic checkpoint after every epoch): exactly what `ozcycle run` trains;
  before   the runner's learner with its dispatch as before issue 18: callbacks sorted at every event and every
           callback called on every event, the model's and the data's device looked up and the batch rebuilt at every
           batch, fastai's `Optimizer.step` for Adam (a dict merge per parameter and step callback) instead of
           `_LeanAdam` (the same operations, bit for bit); side by side (its callbacks are today's, so it leaves out
           what they gained: `RunLog`'s losses summed once per epoch, schedules evaluated once per epoch, and
           `LeanCallback`'s direct `training` and attribute writes);
  ozcycle  `lean_learner(...).fit_cycle(...)` without `RunLog` (ozcycle's fit alone);
  fastai   for reference, a default fastai `Learner` (Recorder; ProgressCallback removed) with `fit_cycle`.
They are interleaved over `--reps` rounds after one warm-up round, and each fit is timed twice: by the wall clock
and by the CPU time of the training thread (`time.thread_time`; with 1 torch thread every op runs on it). On a
shared, busy CPU the wall clock counts the time other processes hold the core; the thread's CPU time does not, so it
is the headline. Ratios are taken per round and summarized by their median. Target (issue 18): runner / torch <= 1.10.
Run: .venv/bin/python bench/bench_step.py [--reps 15] [--epochs 3] [--threads 1] [--no-fastai]
"""
import argparse, platform, statistics, tempfile, time
from pathlib import Path
import torch, torch.nn.functional as F
from fastai.learner import Learner
from fastai.callback.core import event
import fastai.callback.progress  # noqa: F401
from fastai.optimizer import Adam
from ozcycle.data import get_data, make_model
from ozcycle.schedules import one_cycle, one_cycle_moms, sched_values
from ozcycle.runner import RunLog, lean_learner
from ozcycle.fastai_compat import _LeanLearner, _order
import ozcycle.fit  # noqa: F401  (Learner.fit_cycle)

LR_MAX, WD, MOMS = 1e-2, 0.01, (0.95, 0.85, 0.95)

def torch_fit(dls, n_epoch):
    "The hand-written loop"
    torch.manual_seed(0)
    model = make_model('cnn1d')
    decay = [p for p in model.parameters() if p.ndim > 1]; no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{'params': decay}, {'params': no_decay, 'weight_decay': 0.}], lr=LR_MAX,
                            betas=(MOMS[0], 0.99), eps=1e-5, weight_decay=WD)
    n = n_epoch * len(dls.train)
    lrs, moms = sched_values(one_cycle(LR_MAX), n), sched_values(one_cycle_moms(MOMS), n)
    i = 0
    for _ in range(n_epoch):
        model.train()
        for xb, yb in dls.train:
            for g in opt.param_groups: g['lr'], g['betas'] = lrs[i], (moms[i], 0.99)
            i += 1
            loss = F.cross_entropy(model(xb), yb)
            loss.backward(); opt.step(); opt.zero_grad()
        model.eval(); tot = correct = 0.
        with torch.no_grad():
            for xb, yb in dls.valid:
                out = model(xb); tot += F.cross_entropy(out, yb, reduction='sum'); correct += (out.argmax(1) == yb).sum()
        float(tot), float(correct)

class _Before(_LeanLearner):
    "The runner's learner as it dispatched events before issue 18"
    def __call__(self, event_name):
        if not isinstance(event_name, str): return Learner.__call__(self, event_name)
        if not hasattr(event, event_name): raise Exception(f'missing {event_name}')
        for cb in sorted(self.cbs, key=_order): cb(event_name)
    _set_device = Learner._set_device
    create_opt = Learner.create_opt   # fastai's Adam step, not `_LeanAdam`

def ozcycle_fit(dls, n_epoch, cbs=(), before=False):
    torch.manual_seed(0)
    learn = lean_learner(dls, make_model('cnn1d'), wd=WD, moms=MOMS)
    if before: learn.__class__ = _Before
    learn.fit_cycle(n_epoch, LR_MAX, cbs=list(cbs))

def fastai_fit(dls, n_epoch):
    torch.manual_seed(0)
    learn = Learner(dls, make_model('cnn1d'), opt_func=Adam, wd=WD, moms=MOMS)
    learn.remove_cb(learn.progress); learn.logger = lambda *a: None
    learn.fit_cycle(n_epoch, LR_MAX)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=15, help='interleaved rounds after one warm-up round (default 15)')
    p.add_argument('--epochs', type=int, default=3, help='epochs per timed fit (default 3)')
    p.add_argument('--threads', type=int, default=1, help='torch.set_num_threads (default 1, as ozcycle run uses for MNIST-1D on CPU)')
    p.add_argument('--no-fastai', action='store_true', help='leave out the default fastai Learner (reference only)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dls = get_data('mnist1d', seed=0, device='cpu')
    tmp = tempfile.mkdtemp()
    fits = {'torch': lambda: torch_fit(dls, a.epochs),
            'runner': lambda: ozcycle_fit(dls, a.epochs, [RunLog(Path(tmp)/'last.pt')]),
            'before': lambda: ozcycle_fit(dls, a.epochs, [RunLog(Path(tmp)/'last.pt')], before=True),
            'ozcycle': lambda: ozcycle_fit(dls, a.epochs)}
    if not a.no_fastai: fits['fastai'] = lambda: fastai_fit(dls, a.epochs)
    wall, cpu = {k: [] for k in fits}, {k: [] for k in fits}
    for r in range(a.reps + 1):
        for k, f in (list(fits.items()) if r % 2 else list(fits.items())[::-1]):   # who goes first alternates
            t, c = time.perf_counter(), time.thread_time(); f()
            if r: wall[k].append((time.perf_counter() - t) / a.epochs); cpu[k].append((time.thread_time() - c) / a.epochs)
    print(f"MNIST-1D, {len(dls.train)} train batches + {len(dls.valid)} valid batches per epoch, bs {dls.train.bs}; "
          f"{a.reps} rounds of {a.epochs}-epoch fits; torch {torch.__version__}, {a.threads} thread(s), {platform.processor() or platform.machine()}")
    for k in fits: print(f"  {k:8s} per epoch: CPU median {statistics.median(cpu[k])*1e3:7.1f} ms (min {min(cpu[k])*1e3:6.1f}); "
                         f"wall median {statistics.median(wall[k])*1e3:7.1f} ms (min {min(wall[k])*1e3:6.1f})")
    ratio = {}
    for k in [k for k in fits if k != 'torch']:
        per_c = [o / t for o, t in zip(cpu[k], cpu['torch'])]; per_w = [o / t for o, t in zip(wall[k], wall['torch'])]
        ratio[k] = statistics.median(per_c)
        print(f"  {k:8s} / torch: CPU {ratio[k]:.3f}x [{min(per_c):.2f}, {max(per_c):.2f}], wall {statistics.median(per_w):.3f}x "
              f"[{min(per_w):.2f}, {max(per_w):.2f}] (medians of per-round ratios, [range])")
    ba = statistics.median([b / r for b, r in zip(cpu['before'], cpu['runner'])])
    print(f"  before / runner: CPU {ba:.3f}x (median of per-round ratios)")
    print(f"RATIO step runner / torch = {ratio['runner']:.3f}x CPU (target <= 1.10: {'met' if ratio['runner'] <= 1.10 else 'NOT met'}); "
          f"before issue 18: {ratio['before']:.3f}x")

if __name__ == '__main__': main()
