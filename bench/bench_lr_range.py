"""The LR range test's edge on the built-in settings, per seed, and the time one range test takes.

Settings: MNIST-1D (n_train=1000, n_valid=500) with `cnn1d`, and scikit-learn's digits with `mlp(n_in=64)`, each with
fastai's Adam (`lean_learner` as the runner builds it) and with fastai's SGD with momentum 0.9
(`opt_func=partial(SGD, mom=0.9)`: fastai's plain `SGD` is built without a momentum step, so a `mom`/`moms` given
later would change nothing). Per seed: `seed_everything(seed)`, a fresh model, then `lr_range_test(seed=seed, ...)`.
Prints one row per (setting, seed): the edge, where it fired, the smallest smoothed loss, and the wall time of the
test; then per setting the edges' spread and whether seed 0's edge is within a factor 2 of every other seed's.
Run: nice -n 10 .venv/bin/python bench/bench_lr_range.py [--seeds 5] [--start-lr 1e-7] [--end-lr 10] [--num-it 100]
     [--div-thresh 4] [--json out.json]
"""
import argparse, json, platform, time
from functools import partial
import numpy as np
import torch
from fastai.optimizer import SGD
from ozcycle.data import get_data, make_model
from ozcycle.fastai_compat import lean_learner
from ozcycle.store import seed_everything
from ozcycle.lr_range import lr_range_test

SETTINGS = {  # name: (dataset and its arguments, model and its arguments, optimizer)
    'mnist1d-cnn1d-adam': (('mnist1d', dict(n_train=1000, n_valid=500)), ('cnn1d', {}), 'adam'),
    'mnist1d-cnn1d-sgd': (('mnist1d', dict(n_train=1000, n_valid=500)), ('cnn1d', {}), 'sgd'),
    'digits-mlp-adam': (('digits', {}), ('mlp', dict(n_in=64)), 'adam'),
    'digits-mlp-sgd': (('digits', {}), ('mlp', dict(n_in=64)), 'sgd'),
}

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--seeds', type=int, default=5)
    p.add_argument('--start-lr', type=float, default=1e-7)
    p.add_argument('--end-lr', type=float, default=10.)
    p.add_argument('--num-it', type=int, default=100)
    p.add_argument('--div-thresh', type=float, default=4.)
    p.add_argument('--settings', default=','.join(SETTINGS))
    p.add_argument('--json', default=None)
    a = p.parse_args()
    kw = dict(start_lr=a.start_lr, end_lr=a.end_lr, num_it=a.num_it, div_thresh=a.div_thresh)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {kw}")
    out = {}
    for name in a.settings.split(','):
        (ds, dkw), (model, mkw), opt = SETTINGS[name]
        rows = []
        for seed in range(a.seeds):
            dls = get_data(ds, seed=seed, **dkw)
            seed_everything(seed)
            learn = lean_learner(dls, make_model(model, **mkw))
            if opt == 'sgd': learn.opt_func = partial(SGD, mom=0.9)
            t = time.perf_counter(); rt = lr_range_test(learn, seed=seed, **kw); dt = time.perf_counter() - t
            rows.append(dict(seed=seed, edge=rt.edge, step=rt.edge_step, n_steps=len(rt.lrs), min_smoothed=min(rt.smoothed),
                             seconds=dt, record=rt.to_dict()))
            e = 'None' if rt.edge is None else f'{rt.edge:.4g}'
            print(f"{name:20s} seed {seed}: edge {e:>8s} (step {rt.edge_step}, {len(rt.lrs)} steps), "
                  f"min smoothed {min(rt.smoothed):.3f}, {dt:.2f} s", flush=True)
        edges = [r['edge'] for r in rows]
        if all(e is not None for e in edges):
            e0, ratio = edges[0], max(edges) / min(edges)
            within = all(0.5 <= e / e0 <= 2 for e in edges[1:])
            print(f"{name:20s} edges {[round(e, 4) for e in edges]}: max/min {ratio:.2f}; seed 0 within x2 of the others: {within}; "
                  f"median {np.median(edges):.4g}; time/test median {np.median([r['seconds'] for r in rows]):.2f} s")
        else: print(f"{name:20s} no edge for seeds {[r['seed'] for r in rows if r['edge'] is None]}")
        out[name] = rows
    if a.json: json.dump(dict(args=kw, settings=out), open(a.json, 'w'))

if __name__ == '__main__': main()
