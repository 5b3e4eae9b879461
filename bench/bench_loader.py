"""Our in-memory loader against fastai's default loader, both inside a fastai `Learner`, on MNIST-1D.

What is compared (everything pinned, printed in the header of the output):
  data    the same tensors: MNIST-1D, `--n-train` / `--n-valid` examples (default 4,000 / 4,000), on the CPU
  model   the same: the MNIST-1D paper's CNN (`make_model('cnn1d')`), same initial weights, Adam at 1e-3
  batches the same size for training and validation (`--bs`, default 128); training shuffled, last partial batch dropped
  ours    `ozcycle.data.get_data('mnist1d', bs=bs, val_bs=bs)`: one indexing operation per batch, no worker processes
  fastai  `DataLoaders.from_dsets(TensorDataset(...), TensorDataset(...), bs=bs, num_workers=N)`: a `TfmdDL` that
          fetches items one by one and collates them. N = `--num-workers`, pinned to 0 by default: the batches are
          made in the main process, like ours, so the ratio compares the two loaders' own work on one core.
          Left to itself a `TfmdDL` starts `min(16, defaults.cpus)` worker processes (2 on a 2-core machine), and
          the ratio then also measures process start-up per epoch and the contention for the cores: give
          `--num-workers` explicitly to measure that (the header prints the workers each loader really uses, read
          from the loaders, and the run stops if they are not the ones asked for).
  threads torch's intra-op threads pinned with `--threads` (default 1) and inter-op threads to 1.
Timing: one `learn.fit(1)` (train + validation, no progress bar, no logging) per side per round, the two sides
interleaved (who goes first alternates), `--warmup` rounds discarded, then `--reps` rounds. Each is timed by the
wall clock and by CPU time: user + system time of this process and of the worker processes it reaped
(`resource.getrusage`), which does not count the time other processes hold the cores, so its ratio stays put on a
shared, busy machine (the wall-clock ratio swung from 0.4 to 3.2 under load); the CPU ratio is the headline.
Reported: the median over rounds of the per-round ratio fastai/ours, with its range; the medians of each side; and
the same for iterating the two loaders alone (no model). A ratio above 1 means ours is faster.
Run: .venv/bin/python bench/bench_loader.py [--reps 9] [--warmup 2] [--bs 128] [--num-workers 0] [--threads 1]
"""
import argparse, os, platform, resource, statistics, time
import torch
from torch.utils.data import TensorDataset
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastcore.basics import defaults
import fastai.callback.progress  # Learner.no_bar
from ozcycle.data import get_data, make_model

def cpu_s():
    "User + system seconds of this process and of its reaped children (the loader's worker processes)"
    return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ('ru_utime', 'ru_stime'))

def timed(f):
    "(wall seconds, CPU seconds) of `f()`"
    t, c = time.perf_counter(), cpu_s(); f()
    return time.perf_counter() - t, cpu_s() - c

def epoch_time(learn):
    def fit():
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return timed(fit)

def loader_time(dls):
    def iterate():
        for dl in (dls.train, dls.valid):
            for _ in dl: pass
    return timed(iterate)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=9, help='measured rounds (default 9)')
    p.add_argument('--warmup', type=int, default=2, help='discarded rounds first (default 2)')
    p.add_argument('--bs', type=int, default=128, help='batch size, training and validation, both sides (default 128)')
    p.add_argument('--num-workers', type=int, default=0, help="fastai loader's worker processes (default 0)")
    p.add_argument('--n-train', type=int, default=4000, help='MNIST-1D training examples (default 4000)')
    p.add_argument('--n-valid', type=int, default=4000, help='MNIST-1D validation examples (default 4000)')
    p.add_argument('--threads', type=int, default=1, help='torch.set_num_threads (default 1)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    try: torch.set_num_interop_threads(1)
    except RuntimeError: pass   # already set in this process

    ours = get_data('mnist1d', bs=a.bs, val_bs=a.bs, seed=0, device='cpu', n_train=a.n_train, n_valid=a.n_valid)
    (xt, yt), (xv, yv) = ours.train.dataset.tensors, ours.valid.dataset.tensors
    theirs = DataLoaders.from_dsets(TensorDataset(xt, yt), TensorDataset(xv, yv), bs=a.bs, device='cpu', num_workers=a.num_workers)
    assert (len(ours.train), len(ours.valid)) == (len(theirs.train), len(theirs.valid))
    # the worker processes fastai's TfmdDL really starts are its torch loader's (`fake_l`); `dl.num_workers` reads 1 for 0
    assert (theirs.train.bs, theirs.valid.bs, theirs.train.fake_l.num_workers, theirs.valid.fake_l.num_workers) == (a.bs, a.bs, a.num_workers, a.num_workers)
    learners = {}
    for name, dls in (('ours', ours), ('fastai', theirs)):
        torch.manual_seed(0)
        learners[name] = Learner(dls, make_model('cnn1d'), loss_func=CrossEntropyLossFlat(), metrics=accuracy)

    fit, it = {k: [] for k in learners}, {k: [] for k in learners}
    for r in range(a.warmup + a.reps):
        for name, learn in (list(learners.items()) if r % 2 else list(learners.items())[::-1]):
            t, ti = epoch_time(learn), loader_time(learn.dls)
            if r >= a.warmup: fit[name].append(t); it[name].append(ti)

    def ratio(d, j): return [f[j]/o[j] for f, o in zip(d['fastai'], d['ours'])]
    def ratio_line(what, d):
        out = []
        for j, clock in ((1, 'CPU'), (0, 'wall')):
            rs = ratio(d, j)
            out.append(f"{clock} fastai/ours = {statistics.median(rs):.2f}x [{min(rs):.2f}, {max(rs):.2f}] (medians ours "
                       f"{statistics.median(v[j] for v in d['ours'])*1e3:.1f} ms, fastai {statistics.median(v[j] for v in d['fastai'])*1e3:.1f} ms)")
        return f"{what}:\n    " + '\n    '.join(out)
    print(f"MNIST-1D {a.n_train}/{a.n_valid}, cnn1d, bs={a.bs} (train and valid, both sides; training shuffled, last partial batch dropped), "
          f"{len(ours.train)}+{len(ours.valid)} batches/epoch, CPU; torch {torch.__version__}, {torch.get_num_threads()} intra-op / "
          f"{torch.get_num_interop_threads()} inter-op thread(s), {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"{a.warmup} warm-up + {a.reps} interleaved rounds")
    print(f"  worker processes: fastai TfmdDL {theirs.train.fake_l.num_workers} (its default here would be min(16, defaults.cpus) = {min(16, defaults.cpus)}), "
          f"ours 0 (batches indexed in the main process)")
    print('  ' + ratio_line('loader alone (iterate train+valid)', it))
    print('  ' + ratio_line('epoch (fit 1: train+valid)', fit))
    rs = ratio(fit, 1)
    print(f"RATIO epoch CPU time fastai(num_workers={a.num_workers})/ours = {statistics.median(rs):.2f}x (median per-round ratio; "
          f"wall {statistics.median(ratio(fit, 0)):.2f}x)")

if __name__ == '__main__': main()
