"""Helper of `tests/test_ddp.py` (not collected by pytest): ozcycle's fits under fastai's distributed path on the CPU.

`python tests/ddp_fits.py OUT` runs, on 2 processes with the gloo backend (`torch.multiprocessing.spawn`, the environment
variables `torchrun` and `accelerate launch` set: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), each rank:
`fit_cycle(4)` inside `learn.distrib_ctx()` with `GradClip`, saved after epoch 2 and resumed from there in a fresh
Learner with `start_epoch=2`, then every continuation (`fit_refit`, `fit_constant`, `fit_decay`, `fit_continue`) after the
uninterrupted cycle; and once in a single process, the same fits with the same global batch (2 x the per-rank batch), so
the same number of steps per epoch. Writes OUT/rank{0,1}.pt and OUT/single.pt: per fit the per-step LR and momentum
(`fit_state.hps`), the `FitState` fields, GradClip's statistics and the final weights.
fastai's `DistributedDL` broadcasts the shuffled order with a CUDA tensor ("nccl only works with cuda tensors"); on
the CPU the broadcast is made with a CPU tensor here, the one change to fastai for this test.
"""
import os, socket, sys
from pathlib import Path
import torch
from torch import nn
from torch.utils.data import TensorDataset

N, BS, EPOCHS = 256, 16, 4   # examples, per-rank batch size, epochs of the cycle

def data(bs):
    from fastai.data.core import DataLoaders
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 8, generator=g); y = (x[:, :2].sum(1) > 0).long()
    return DataLoaders.from_dsets(TensorDataset(x, y), TensorDataset(x[:64], y[:64]), bs=bs, num_workers=0, device='cpu',
                                  shuffle=(False, False))

def learner(bs):
    from fastai.learner import Learner
    from fastai.optimizer import Adam
    from ozcycle.clip import GradClip
    torch.manual_seed(0)
    learn = Learner(data(bs), nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), loss_func=nn.CrossEntropyLoss(),
                    opt_func=Adam, cbs=[GradClip(max_norm=0.35)], default_cbs=True)
    learn.remove_cb(learn.progress); learn.logger = lambda *a: None
    return learn

def record(learn):
    fs = learn.fit_state
    return {'hps': {k: torch.as_tensor(v) for k, v in fs.hps.items()}, 'kind': fs.kind, 'n_epoch': fs.n_epoch, 'n_steps': fs.n_steps,
            'start_epoch': fs.start_epoch, 'lr_last': torch.as_tensor(fs.lr_last), 'lr_max': None if fs.lr_max is None else torch.as_tensor(fs.lr_max),
            'clip': torch.as_tensor(learn.grad_clip.stats[['norm', 'clipped']].to_numpy(dtype=float)),
            'weights': {k: v.detach().clone() for k, v in learn.model.state_dict().items()}}

def fits(bs, ctx, tmp):
    "The fits, each in `ctx(learn)` (fastai's `distrib_ctx`, or nothing); what each left"
    import ozcycle.fit  # noqa: F401  (Learner.fit_cycle, fit_refit, ...; Learner.save keeps fit_state)
    from fastai.torch_core import distrib_barrier
    out = {}
    learn = learner(bs)
    with ctx(learn): learn.fit_cycle(EPOCHS, 1e-2)
    out['cycle'] = record(learn)
    for name, f in (('refit', lambda l: l.fit_refit(2)), ('constant', lambda l: l.fit_constant(2)), ('decay', lambda l: l.fit_decay(2)),
                    ('continue', lambda l: l.fit_continue(2, 'refit'))):
        l2 = learner(bs); l2.model.load_state_dict(learn.model.state_dict()); l2.fit_state = learn.fit_state
        with ctx(l2): f(l2)
        out[name] = record(l2)
    half = learner(bs)   # interrupted after 2 epochs: saved, and resumed in a fresh Learner
    with ctx(half): half.fit_cycle(EPOCHS, 1e-2, cbs=[_StopAfter(2)])
    half.save(Path(tmp)/'half')   # fastai saves on rank 0 only
    distrib_barrier()              # the other ranks wait for the file before they load it
    resumed = learner(bs); resumed.load(Path(tmp)/'half')
    with ctx(resumed): resumed.fit_cycle(EPOCHS, 1e-2, start_epoch=2)
    out['resumed'] = record(resumed)
    return out

from fastai.callback.core import Callback, CancelFitException
class _StopAfter(Callback):
    "Stop the fit after `n` epochs, as a killed process would (the last finished epoch saved)"
    def __init__(self, n): self.n = n
    def after_epoch(self):
        if self.epoch + 1 == self.n: raise CancelFitException()

def _cpu_broadcast(self, t, rank):
    t = torch.tensor(t, dtype=torch.long); torch.distributed.broadcast(t, rank); return t.tolist()

def rank(r, world, port, out):
    os.environ.update(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world), MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import fastai.distributed as fd
    fd.DistributedDL._broadcast = _cpu_broadcast
    torch.save(fits(BS, lambda l: l.distrib_ctx(cpu=True), out), Path(out)/f'rank{r}.pt')
    if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()

def main(out):
    from contextlib import nullcontext
    import torch.multiprocessing as mp
    torch.set_num_threads(1)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    mp.spawn(rank, args=(2, port, out), nprocs=2, join=True)
    torch.save(fits(2 * BS, lambda l: nullcontext(), out), Path(out)/'single.pt')

if __name__ == '__main__': main(sys.argv[1])
