"""The bare script `bench/bench_run.py` compares `ozcycle run` with: the same training in plain PyTorch, nothing else.

Imports torch only. Reads MNIST-1D's tensors from DATA (the file bench_run.py writes from `ozcycle.data.load_mnist1d`),
builds the MNIST-1D paper's CNN (the layers of `ozcycle.data.ConvNet1d`), and for each seed trains what `ozcycle run`
trains: a base one-cycle of E0 epochs, then E1 epochs continuing it for each of ARMS arms (a copy of the base's model
and optimizer each), and the control `long`, a one-cycle of E0+E1 epochs from scratch. AdamW (betas (mom, 0.99), eps
1e-5, weight decay 0.01 off for biases, as fastai's Adam), batch size 128, training shuffled with the last partial
batch dropped, validation loss and accuracy after every epoch in batches of 256 (as ozcycle's loaders: twice the
training batch size), one row per epoch kept in memory. The LR and momentum
follow a cosine one-cycle (continuations: a cosine decay): the same arithmetic per step as ozcycle's schedules, whose
exact values do not change the time. No checkpoints, no results files: what a user would write to get the numbers.
Run: python bench/bare_run.py DATA E0 E1 SEEDS N_ARMS [LR_MAX (default 3e-2)]
"""
import copy, math, sys
import torch, torch.nn.functional as F
from torch import nn

def cnn1d(n_out=10, channels=25):
    convs = nn.Sequential(nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(), nn.Conv1d(channels, channels, 3, stride=2, padding=1),
                          nn.ReLU(), nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
    return nn.Sequential(convs, nn.Linear(125, n_out))

def cos(a, b, p): return b + (a - b) * (1 + math.cos(math.pi * p)) / 2

def one_cycle(p, lr_max, pct=0.25):
    if p < pct: return cos(lr_max / 25, lr_max, p / pct), cos(0.95, 0.85, p / pct)
    return cos(lr_max, lr_max / 1e5, (p - pct) / (1 - pct)), cos(0.85, 0.95, (p - pct) / (1 - pct))

def fit(model, opt, d, n_epoch, sched, g, rows):
    n_b = len(d['x_train']) // 128; n = n_epoch * n_b; i = 0
    for _ in range(n_epoch):
        model.train()
        perm = torch.randperm(len(d['x_train']), generator=g)
        for b in range(n_b):
            idx = perm[b*128:(b+1)*128]
            lr, mom = sched(i / n); i += 1
            for pg in opt.param_groups: pg['lr'], pg['betas'] = lr, (mom, 0.99)
            loss = F.cross_entropy(model(d['x_train'][idx]), d['y_train'][idx])
            loss.backward(); opt.step(); opt.zero_grad()
        model.eval(); tot = correct = 0.
        with torch.no_grad():
            for b in range(0, len(d['x_valid']), 256):
                out = model(d['x_valid'][b:b+256]); y = d['y_valid'][b:b+256]
                tot += float(F.cross_entropy(out, y, reduction='sum')); correct += float((out.argmax(1) == y).sum())
        rows.append((float(loss), tot / len(d['x_valid']), correct / len(d['x_valid'])))

def new(seed):
    torch.manual_seed(seed); m = cnn1d()
    decay = [p for p in m.parameters() if p.ndim > 1]; no_decay = [p for p in m.parameters() if p.ndim <= 1]
    return m, torch.optim.AdamW([{'params': decay}, {'params': no_decay, 'weight_decay': 0.}], lr=1e-3, betas=(0.95, 0.99), eps=1e-5, weight_decay=0.01)

def main(data, e0, e1, seeds, n_arms, lr_max=3e-2):
    torch.set_num_threads(1)
    d = torch.load(data, weights_only=True); rows = []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        m, o = new(seed); fit(m, o, d, e0, lambda p: one_cycle(p, lr_max), g, rows)
        for _ in range(n_arms):
            m2 = copy.deepcopy(m)
            o2 = new(seed)[1].__class__([{'params': [p for p in m2.parameters() if p.ndim > 1]},
                                         {'params': [p for p in m2.parameters() if p.ndim <= 1], 'weight_decay': 0.}],
                                        lr=1e-3, betas=(0.95, 0.99), eps=1e-5, weight_decay=0.01)
            o2.load_state_dict(o.state_dict())   # the base's optimizer state, continued
            fit(m2, o2, d, e1, lambda p: (cos(lr_max / 10, lr_max / 1e5, p), 0.95), g, rows)
        m, o = new(seed); fit(m, o, d, e0 + e1, lambda p: one_cycle(p, lr_max), g, rows)
    print('params', sum(p.numel() for p in cnn1d().parameters()), 'epochs', len(rows))

if __name__ == '__main__': main(sys.argv[1], *map(int, sys.argv[2:6]), *map(float, sys.argv[6:7]))
