"""Our in-memory loader against fastai's default loader, both inside a fastai `Learner`, on MNIST-1D.

Same tensors (MNIST-1D, 4,000 train / 4,000 valid), same model (the paper's CNN), same batch size for training and
validation, same loss and metric; the only difference is the `DataLoaders`:
  ours   `ozcycle.data.get_data('mnist1d')`: batches by indexing tensors, no per-item work;
  fastai `DataLoaders.from_dsets(TensorDataset(...), TensorDataset(...))` with its defaults (shuffle and drop_last for
         training, num_workers=0): fetches items one by one and collates them.
Per-epoch wall time of `learn.fit(1)` (train + validation, no progress bar), the two interleaved over `--reps` rounds
after one warm-up epoch each; the ratio is fastai / ours on medians (target: >= 1.5). On a shared machine also read
the ratio of minima and the per-round ratios: a busy CPU inflates single epochs of either side.
Run: .venv/bin/python bench/bench_loader.py [--reps 7] [--bs 128] [--threads N]
"""
import argparse, platform, statistics, time
import torch
from torch.utils.data import TensorDataset
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
import fastai.callback.progress  # Learner.no_bar
from ozcycle.data import get_data, get_model

def epoch_time(learn):
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return time.perf_counter() - t

def loader_time(dl):
    t = time.perf_counter()
    for _ in dl: pass
    return time.perf_counter() - t

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=7, help='interleaved rounds (default 7)')
    p.add_argument('--bs', type=int, default=128, help='batch size, training and validation (default 128)')
    p.add_argument('--n-train', type=int, default=4000, help='MNIST-1D training examples (default 4000)')
    p.add_argument('--n-valid', type=int, default=4000, help='MNIST-1D validation examples (default 4000)')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)

    ours = get_data('mnist1d', bs=a.bs, val_bs=a.bs, seed=0, device='cpu', n_train=a.n_train, n_valid=a.n_valid)
    (xt, yt), (xv, yv) = ours.train.dataset.tensors, ours.valid.dataset.tensors
    theirs = DataLoaders.from_dsets(TensorDataset(xt, yt), TensorDataset(xv, yv), bs=a.bs, device='cpu')
    assert (len(ours.train), len(ours.valid)) == (len(theirs.train), len(theirs.valid))
    learners = {}
    for name, dls in (('ours', ours), ('fastai', theirs)):
        torch.manual_seed(0)
        learners[name] = Learner(dls, get_model('cnn1d'), loss_func=CrossEntropyLossFlat(), metrics=accuracy)

    times = {k: [] for k in learners}
    iters = {k: [] for k in learners}
    for r in range(a.reps + 1):  # round 0 is the warm-up
        for name, learn in learners.items():
            t = epoch_time(learn)
            ti = loader_time(learn.dls.train) + loader_time(learn.dls.valid)
            if r: times[name].append(t); iters[name].append(ti)

    med = {k: statistics.median(v) for k, v in times.items()}
    med_it = {k: statistics.median(v) for k, v in iters.items()}
    print(f"MNIST-1D {a.n_train}/{a.n_valid}, cnn1d, bs={a.bs}, {len(ours.train)}+{len(ours.valid)} batches/epoch, "
          f"CPU {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{a.reps} interleaved rounds")
    for k in learners:
        print(f"  {k:6s} epoch (fit 1, train+valid): median {med[k]*1e3:7.1f} ms  "
              f"[min {min(times[k])*1e3:.1f}, max {max(times[k])*1e3:.1f}]   loader alone: {med_it[k]*1e3:6.1f} ms")
    ratios = [f/o for f, o in zip(times['fastai'], times['ours'])]
    print(f"  per-round ratios fastai/ours: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(f"  ratio of minima (least disturbed epochs): {min(times['fastai'])/min(times['ours']):.2f}x; "
          f"median of per-round ratios: {statistics.median(ratios):.2f}x; loader alone: {med_it['fastai']/med_it['ours']:.0f}x")
    print(f"RATIO epoch time fastai/ours = {med['fastai']/med['ours']:.2f}x on medians (target >= 1.5)")

if __name__ == '__main__': main()
