"""Our `GradClip` (statistics on) against fastai's `GradientClip`: time of one training step of a small CNN.

Same model (a 3-conv CNN, ~24k parameters, one parameter group), same random 32x32 RGB images and 10
labels, same SGD, same `max_norm` (0.1 by default: at that threshold both clip every step, so both pay for the
multiply); the only difference is the clipping callback:
  fastai `fastai.callback.training.GradientClip(max_norm)`: `torch.nn.utils.clip_grad_norm_`, nothing recorded;
  ours   `ozcycle.clip.GradClip(max_norm)`: fused norm, one host sync, fused multiply, a row of statistics per step.
A step is timed inside `learn.fit` from the first `before_batch` callback to the last `after_batch` callback (forward,
loss, backward, clipping, optimizer step, zero_grad; on CUDA with a synchronize at both ends). The arms alternate
in short epochs (`--n-batches` steps each; who goes first alternates), after a warm-up round. The headline is
ours / fastai on the median step time (target <= 1.05). On a shared, busy CPU single steps of either side are
inflated at random: also read the median of the paired ratios (step j of round r of each arm, run moments apart) and
the ratio of lower quartiles. A second measurement times the clipping call alone on the same model's gradients.
With `--bn` the CNN has a BatchNorm after each convolution: ours then also copies the model's floating-point buffers
once per step (to undo them on a skipped step); the copy is also timed alone.
Run: .venv/bin/python bench/bench_clip.py [--reps 60] [--bs 32] [--n-batches 4] [--max-norm 0.1] [--threads 1] [--bn]
"""
import argparse, platform, statistics, time
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastai.callback.core import Callback
from fastai.callback.training import GradientClip
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.optimizer import SGD
import fastai.callback.progress  # Learner.no_bar
from ozcycle.clip import GradClip, _clip_


def small_cnn(bn=False):
    def block(ni, nf): return [nn.Conv2d(ni, nf, 3, stride=2, padding=1), *([nn.BatchNorm2d(nf)] if bn else []), nn.ReLU()]
    return nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


class StepStart(Callback):
    order = -1000
    def before_batch(self):
        if self.training: _sync(self.dls.device); self.learn._t0 = time.perf_counter()


class StepStop(Callback):
    order = 1000
    def before_fit(self): self.times = []
    def after_batch(self):
        if self.training: _sync(self.dls.device); self.times.append(time.perf_counter() - self.learn._t0)


def clip_alone(params, fn, n=200):
    "Median seconds of `fn()` on `params`' gradients, restored before each call (the restore is timed alone and subtracted)"
    grads = [p.grad for p in params]
    saved = [g.clone() for g in grads]
    dev = grads[0].device
    def timed(f):
        out = []
        for _ in range(n):
            torch._foreach_copy_(grads, saved); _sync(dev)
            t = time.perf_counter(); f(); _sync(dev); out.append(time.perf_counter() - t)
        return statistics.median(out)
    base = timed(lambda: None)
    return timed(fn) - base


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=60, help='interleaved rounds after the warm-up (default 60)')
    p.add_argument('--bs', type=int, default=32, help='batch size (default 32)')
    p.add_argument('--n-batches', type=int, default=4, help='training batches per epoch, i.e. per arm and round (default 4)')
    p.add_argument('--max-norm', type=float, default=0.1, help='clipping threshold for both (default 0.1)')
    p.add_argument('--threads', type=int, default=1, help='torch.set_num_threads (default 1: steadier on a shared CPU)')
    p.add_argument('--bn', action='store_true', help='BatchNorm after each convolution (ours copies its buffers every step)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    dev = torch.device(a.device)

    torch.manual_seed(0)
    n = a.bs * a.n_batches
    x, y = torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))
    xv, yv = x[:a.bs], y[:a.bs]
    arms = {'fastai': lambda: GradientClip(a.max_norm), 'ours': lambda: GradClip(a.max_norm)}
    learners, stops = {}, {}
    for name, make_cb in arms.items():
        torch.manual_seed(0)
        dls = DataLoaders(DataLoader(TensorDataset(x, y), bs=a.bs, shuffle=True), DataLoader(TensorDataset(xv, yv), bs=a.bs), device=dev)
        stops[name] = StepStop()
        learners[name] = Learner(dls, small_cnn(a.bn), loss_func=nn.CrossEntropyLoss(), opt_func=SGD, lr=1e-2,
                                 cbs=[make_cb(), StepStart(), stops[name]])

    times = {k: [] for k in arms}
    for r in range(a.reps + 1):  # round 0 warms up
        for name in (list(arms) if r % 2 else list(arms)[::-1]):  # alternate who goes first
            learn = learners[name]
            with learn.no_bar(), learn.no_logging(): learn.fit(1)
            if r: times[name] += stops[name].times
    med = {k: statistics.median(v) for k, v in times.items()}
    q1 = {k: statistics.quantiles(v, n=4)[0] for k, v in times.items()}
    paired = [o / f for o, f in zip(times['ours'], times['fastai'])]
    gc = learners['ours'].grad_clip
    pct_clipped = gc.summary()['pct_clipped']

    # the clipping call alone, on random gradients of the same model (norm ~150: both clip at every call)
    params = list(learners['ours'].model.parameters())
    for p in params: p.grad = torch.randn_like(p)
    rows = []
    alone = {'fastai': clip_alone(params, lambda: torch.nn.utils.clip_grad_norm_(params, a.max_norm)),
             'ours': clip_alone(params, lambda: rows.append((0, 0, *_clip_(params, a.max_norm, 2., 'norm', 0.01, 1e-3), False)))}

    bufs = [b for b in learners['ours'].model.buffers() if b.is_floating_point()]
    saved = [b.clone() for b in bufs]
    copy_alone = clip_alone(params, lambda: torch._foreach_copy_(saved, bufs)) if bufs else 0.
    n_params = sum(p.numel() for p in learners['ours'].model.parameters())
    print(f"small CNN{' with BatchNorm' if a.bn else ''} ({n_params} parameters), bs={a.bs}, {a.n_batches} batches/epoch, {a.reps} interleaved rounds, "
          f"device {dev.type} ({torch.cuda.get_device_name() if dev.type == 'cuda' else platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; max_norm={a.max_norm}: ours clipped {pct_clipped:.0%} of steps")
    for k in arms:
        print(f"  {k:6s} training step: median {med[k]*1e3:7.3f} ms  [min {min(times[k])*1e3:.3f}, "
              f"max {max(times[k])*1e3:.3f}, {len(times[k])} steps]   clipping call alone: {alone[k]*1e6:7.1f} us")
    print(f"  median of paired ratios: {statistics.median(paired):.3f}x; ratio of lower quartiles: {q1['ours']/q1['fastai']:.3f}x; "
          f"ratio of minima: {min(times['ours'])/min(times['fastai']):.3f}x; clipping call alone: {alone['ours']/alone['fastai']:.2f}x")
    if bufs: print(f"  buffer snapshot alone ({len(bufs)} buffers, {sum(b.numel() for b in bufs)} values): {copy_alone*1e6:.1f} us "
                   f"= {copy_alone/med['ours']:.2%} of ours' median step")
    print(f"RATIO training step ours/fastai = {med['ours']/med['fastai']:.3f}x on medians (target <= 1.05)")


if __name__ == '__main__': main()
