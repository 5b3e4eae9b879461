"""A whole `ozcycle run` against a bare PyTorch script doing the same training (`bench/bare_run.py`), each a fresh process.

Both train, in one process, on the CPU with 1 torch thread, MNIST-1D (4,000 / 4,000) with the MNIST-1D paper's CNN,
batch size 128 (validation 256), peak LR 3e-2 (`ozcycle run --workers 1 --lr-max 3e-2`: without them it would train in several worker
processes on a multi-core machine, and first run LR range tests to choose lr_max, work the bare script does not do):
for each of `--seeds` seeds a base one-cycle of E0 epochs, E1 more epochs for each of the three default arms (refit,
constant, decay), and the control `long` (E0+E1 epochs from scratch). `ozcycle run` also writes what it always writes
(a checkpoint after every epoch, run records, results.csv, config.json) into a fresh folder each time; the bare script
keeps its rows in memory. Timed as a user sees it: the wall time of the whole process, start-up and exit included,
and its CPU time (user + system, from `resource.getrusage(RUSAGE_CHILDREN)`), which on a shared, busy machine does not
count the time other processes hold the cores and is the headline. Three contenders, interleaved over `--reps` rounds:
  ozcycle     the command as installed (`python -m ozcycle.cli run ...`: `main()` reads `sys.argv`, so it ends with
              `gc.freeze()`);
  no-freeze   the same job through `main(list)`, which leaves the collector alone: the exit as before issue 18;
  bare        `python bench/bare_run.py`.
Ratios per round, summarized by their median. Target (issue 18): ozcycle / bare <= 1.05.
To show where the difference goes, each round also times the imports alone, in two more processes:
`python -c "import gc, ozcycle.cli, ozcycle.runner; gc.freeze()"` (torch, fastai and what `ozcycle run` imports
before training; frozen, as `ozcycle run` exits) and `python -c "import gc, torch; gc.freeze()"` (what the bare
script imports). Their difference is what importing fastai (and ozcycle) adds, once per process whatever the job's
size; the rest of each process is its job (training, files, exit).
Run: .venv/bin/python bench/bench_run.py [--reps 3] [--epochs 4 4] [--seeds 2]
"""
import argparse, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import torch
from ozcycle.data import load_mnist1d, make_model

HERE = Path(__file__).resolve().parent
LR_MAX = '3e-2'   # the peak LR both train at
NO_FREEZE = "import sys; from ozcycle.cli import main; sys.exit(main(sys.argv[1:]))"

def timed(cmd):
    r0, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode: raise RuntimeError(f"{cmd} failed:\n{p.stderr[-2000:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p.stdout

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=3, help='interleaved rounds (default 3)')
    p.add_argument('--epochs', type=int, nargs=2, default=(4, 4), metavar=('E0', 'E1'), help='base and continuation epochs (default 4 4)')
    p.add_argument('--seeds', type=int, default=2, help='paired seeds (default 2)')
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = tmp/'mnist1d.pt'; torch.save({k: v for k, v in load_mnist1d().items() if k != 'vocab'}, data)
    e0, e1 = map(str, a.epochs)
    run = ['run', '--lr-max', LR_MAX, '--dataset', 'mnist1d', '--epochs', e0, e1, '--seeds', str(a.seeds), '--arms', 'refit', 'constant', 'decay',
           '--threads', '1', '--workers', '1', '--device', 'cpu', '--quiet', '--name', 'bench']
    cmds = {'ozcycle': lambda r: [sys.executable, '-m', 'ozcycle.cli', *run, '--out', str(tmp/f'ozcycle{r}')],
            'no-freeze': lambda r: [sys.executable, '-c', NO_FREEZE, *run, '--out', str(tmp/f'nofreeze{r}')],
            'bare': lambda r: [sys.executable, str(HERE/'bare_run.py'), str(data), e0, e1, str(a.seeds), '3', LR_MAX],
            'imports': lambda r: [sys.executable, '-c', 'import gc, ozcycle.cli, ozcycle.runner; gc.freeze()'],
            'torch': lambda r: [sys.executable, '-c', 'import gc, torch; gc.freeze()']}
    wall, cpu = {k: [] for k in cmds}, {k: [] for k in cmds}
    for r in range(a.reps):
        for k, f in (list(cmds.items()) if r % 2 == 0 else list(cmds.items())[::-1]):
            w, c, out = timed(f(r)); wall[k].append(w); cpu[k].append(c)
            if k == 'bare':
                n_par, n_ep = int(out.split()[1]), int(out.split()[3])
                assert n_par == sum(q.numel() for q in make_model('cnn1d').parameters()), out   # the same model
                assert n_ep == a.seeds * (a.epochs[0] + 3 * a.epochs[1] + sum(a.epochs)), out   # the same epochs
    n_ep = a.seeds * (a.epochs[0] + 3 * a.epochs[1] + sum(a.epochs))
    print(f"ozcycle run vs a bare script: MNIST-1D, cnn1d, --epochs {e0} {e1} --seeds {a.seeds}, arms refit constant decay + long "
          f"({n_ep} epochs per job), lr_max {LR_MAX}; one process each (--workers 1), torch {torch.__version__}, 1 thread, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"{a.reps} interleaved rounds")
    for k in cmds: print(f"  { {'imports': 'import ozcycle', 'torch': 'import torch'}.get(k, k):14s} CPU median {statistics.median(cpu[k]):6.2f} s [{min(cpu[k]):.2f}, {max(cpu[k]):.2f}]; "
                         f"wall median {statistics.median(wall[k]):6.2f} s [{min(wall[k]):.2f}, {max(wall[k]):.2f}]")
    rc = {k: statistics.median([x / b for x, b in zip(cpu[k], cpu['bare'])]) for k in ('ozcycle', 'no-freeze')}
    rw = {k: statistics.median([x / b for x, b in zip(wall[k], wall['bare'])]) for k in ('ozcycle', 'no-freeze')}
    for k in rc: print(f"  {k:10s} / bare: CPU {rc[k]:.3f}x, wall {rw[k]:.3f}x (medians of per-round ratios)")
    print(f"RATIO whole run ozcycle / bare = {rc['ozcycle']:.3f}x CPU, {rw['ozcycle']:.3f}x wall (target <= 1.05: "
          f"{'met' if rc['ozcycle'] <= 1.05 else 'NOT met'}); without gc.freeze {rc['no-freeze']:.3f}x CPU")
    med = {k: statistics.median(v) for k, v in cpu.items()}
    extra = med['imports'] - med['torch']
    print(f"  where the difference goes (CPU medians): ozcycle's imports (torch, fastai, ...) take {extra:.2f} s more than torch's alone, "
          f"{extra / med['bare']:.0%} of the bare run; after its imports, ozcycle's job takes {med['ozcycle'] - med['imports']:.2f} s and the "
          f"bare script's {med['bare'] - med['torch']:.2f} s")

if __name__ == '__main__': main()
