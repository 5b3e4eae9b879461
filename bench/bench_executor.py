"""Runs in worker processes against runs in one process: wall time of the same job, side by side.

Two jobs, each from scratch in a fresh temporary folder (nothing reused), the configurations interleaved and repeated
(`--reps`) so that a busy shared machine slows each about alike:
  report  `ozcycle.report.run_reports(quick=True)`: the four experiment notebooks in quick mode (what `make run` does, small),
          with J notebooks at once and W worker processes per notebook (`--report` J:W pairs; 2:1 is the old `make run`);
  run     `run_experiment` of `ozcycle run --quick` with more seeds and epochs (`--seeds`, `--epochs`), W workers (`--workers`).
Prints one line per job with its wall time, then per configuration the median, and the ratio to the first configuration.
Run: .venv/bin/python bench/bench_executor.py [--reps 2] [--report 2:1 1:2 2:2] [--workers 1 2] [--seeds 4] [--epochs 4 4] [--skip-report]
"""
import argparse, os, platform, shutil, statistics, sys, tempfile, time
from pathlib import Path

def report_job(jobs, workers):
    from ozcycle.report import run_reports
    d = Path(tempfile.mkdtemp(prefix='ozbench-'))
    try:
        t = time.perf_counter()
        res = run_reports(d/'out', d/'results', quick=True, jobs=jobs, workers=workers)
        wall = time.perf_counter() - t
        assert not any(r['error'] for r in res['runs']), [r['error'] for r in res['runs']]
        return wall
    finally: shutil.rmtree(d, ignore_errors=True)

def run_job(workers, seeds, epochs):
    from ozcycle.runner import run_experiment
    d = Path(tempfile.mkdtemp(prefix='ozbench-'))
    try:
        t = time.perf_counter()
        run_experiment(['refit', 'constant', 'decay'], out=d, quick=True, quiet=True, seeds=seeds, n_epoch_base=epochs[0],
                       n_epoch_cont=epochs[1], dataset='mnist1d', device='cpu', workers=workers)
        return time.perf_counter() - t
    finally: shutil.rmtree(d, ignore_errors=True)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=2)
    p.add_argument('--report', nargs='+', default=['2:1', '1:2', '2:2'], metavar='J:W')
    p.add_argument('--workers', nargs='+', type=int, default=[1, 2])
    p.add_argument('--seeds', type=int, default=4)
    p.add_argument('--epochs', nargs=2, type=int, default=[4, 4])
    p.add_argument('--skip-report', action='store_true')
    p.add_argument('--skip-run', action='store_true')
    a = p.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    times = {}
    for rep in range(a.reps):
        if not a.skip_run:
            for w in a.workers:
                t = run_job(w, a.seeds, a.epochs); times.setdefault(f'run   workers={w}', []).append(t)
                print(f"rep {rep}: run (quick, {a.seeds} seeds, {a.epochs[0]}+{a.epochs[1]} epochs) workers={w}: {t:.1f} s  (load {os.getloadavg()[0]:.1f})", flush=True)
        if not a.skip_report:
            for jw in a.report:
                j, w = map(int, jw.split(':'))
                t = report_job(j, w); times.setdefault(f'report jobs={j} workers={w}', []).append(t)
                print(f"rep {rep}: report (quick) jobs={j} workers={w}: {t:.1f} s  (load {os.getloadavg()[0]:.1f})", flush=True)
    print('\nmedian wall time, and ratio to the first configuration of its job:')
    for kind in ('run', 'report'):
        ks = [k for k in times if k.startswith(kind)]
        for k in ks:
            m, m0 = statistics.median(times[k]), statistics.median(times[ks[0]])
            print(f"  {k:<28} {m:7.1f} s   {m/m0:.2f}x   ({', '.join(f'{t:.1f}' for t in times[k])})")

if __name__ == '__main__': main()
