"""A full ozcycle training epoch against a hand-written PyTorch loop with the same model, data and schedule.

Both train the MNIST-1D paper's CNN (`ozcycle.data.make_model('cnn1d')`) on the same in-memory batches
(`ozcycle.data.get_data('mnist1d')`: 4,000 train / 4,000 valid, bs 128) with fastai's Adam hyper-parameters
(betas (mom, 0.99), eps 1e-5, decoupled weight decay 0.01) under fastai's one-cycle LR and momentum schedules, and
validate after every epoch (loss and accuracy). Four contenders, each timed over a fit of `--epochs` epochs:
  torch    a plain loop: set LR and beta1 from the schedule arrays (`ozcycle.schedules.sched_values`), forward,
           backward, `torch.optim.AdamW.step` (weight decay off for biases, as fastai), then a validation pass;
  ozcycle  `lean_learner(...).fit_cycle(...)` on our loader: the Learner every ozcycle run trains (fastai's Adam,
           TrainEvalCallback, ozcycle.fit's scheduler and FitState recorder);
  runner   the same plus `RunLog`, the runner's recorder (per-epoch row, per-batch LR/momentum, and an atomic
           checkpoint after every epoch): exactly what `ozcycle run` trains with;
  fastai   for reference, a default fastai `Learner` (Recorder, ProgressCallback removed, CastToTensor,
           CrossEntropyLossFlat) with `fit_cycle`.
The four are interleaved over `--reps` rounds after one warm-up round. The ratio to torch is taken per round (both
measured seconds apart, under the same load) and summarized by its median (target for ozcycle / torch: <= 1.25);
the ratio of the minima is printed too. On a shared machine, read both.
Run: .venv/bin/python bench/bench_step.py [--reps 7] [--epochs 3] [--threads 1]
"""
import argparse, platform, statistics, tempfile, time
from pathlib import Path
import torch, torch.nn.functional as F
from fastai.learner import Learner
import fastai.callback.progress  # noqa: F401
from fastai.optimizer import Adam
from ozcycle.data import get_data, make_model
from ozcycle.schedules import one_cycle, one_cycle_moms, sched_values
from ozcycle.runner import RunLog, lean_learner
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

def ozcycle_fit(dls, n_epoch, cbs=()):
    torch.manual_seed(0)
    learn = lean_learner(dls, make_model('cnn1d'), wd=WD, moms=MOMS)
    learn.fit_cycle(n_epoch, LR_MAX, cbs=list(cbs))

def fastai_fit(dls, n_epoch):
    torch.manual_seed(0)
    learn = Learner(dls, make_model('cnn1d'), opt_func=Adam, wd=WD, moms=MOMS)
    learn.remove_cb(learn.progress); learn.logger = lambda *a: None
    learn.fit_cycle(n_epoch, LR_MAX)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=7, help='interleaved rounds after one warm-up round (default 7)')
    p.add_argument('--epochs', type=int, default=3, help='epochs per timed fit (default 3)')
    p.add_argument('--threads', type=int, default=1, help='torch.set_num_threads (default 1, as ozcycle run uses for MNIST-1D on CPU)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dls = get_data('mnist1d', seed=0, device='cpu')
    tmp = tempfile.mkdtemp()
    fits = {'torch': lambda: torch_fit(dls, a.epochs), 'ozcycle': lambda: ozcycle_fit(dls, a.epochs),
            'runner': lambda: ozcycle_fit(dls, a.epochs, [RunLog(Path(tmp)/'last.pt')]),
            'fastai': lambda: fastai_fit(dls, a.epochs)}
    times = {k: [] for k in fits}
    for r in range(a.reps + 1):
        for k, f in fits.items():
            t = time.perf_counter(); f(); dt = time.perf_counter() - t
            if r: times[k].append(dt / a.epochs)
    med = {k: statistics.median(v) for k, v in times.items()}
    mn = {k: min(v) for k, v in times.items()}
    print(f"MNIST-1D, {len(dls.train)} train batches + {len(dls.valid)} valid batches per epoch, bs {dls.train.bs}; "
          f"{a.reps} rounds of {a.epochs}-epoch fits; torch {torch.__version__}, {a.threads} thread(s), {platform.processor() or platform.machine()}")
    for k in fits: print(f"  {k:8s} per epoch: median {med[k]*1e3:7.1f} ms, min {mn[k]*1e3:7.1f} ms")
    ratio = {}
    for k in ('ozcycle', 'runner', 'fastai'):
        per = [o / t for o, t in zip(times[k], times['torch'])]
        ratio[k] = statistics.median(per)
        print(f"  {k:8s} / torch: {ratio[k]:.3f}x (median of per-round ratios), {mn[k]/mn['torch']:.3f}x (ratio of minima); "
              f"per round: " + ' '.join(f"{r:.2f}" for r in per))
    print(f"target ozcycle / torch <= 1.25: {'met' if ratio['ozcycle'] <= 1.25 else 'NOT met'} ({ratio['ozcycle']:.3f}x)")

if __name__ == '__main__': main()
