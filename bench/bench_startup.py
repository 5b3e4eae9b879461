"""Start-up of the `ozcycle` command: wall time of `ozcycle --help`, usage errors and `ozcycle run --help`, each in a
fresh interpreter, against a bare `python -c pass` and a bare `import torch` / `import fastai.learner`.

Each command is run `--reps` times (after one warm-up run each, so the files are in the page cache), interleaved; the
median wall time is reported. Target (issue 18): help and usage errors under 0.5 s. Help and the usage errors that
argparse and the cheap checks find (unknown flag, missing argument, bad int, bad --arms/--seeds/--threads) import
neither torch nor fastai; `ozcycle run --help` (it shows the defaults the runner defines) and a bad `--dataset`/`--model`
name (checked against `ozcycle.data`) still import them, so they are listed for comparison.
Run: .venv/bin/python bench/bench_startup.py [--reps 5]
"""
import argparse, os, platform, statistics, subprocess, sys, time

PY = sys.executable
CMDS = {
    'python -c pass': [PY, '-c', 'pass'],
    'python -c "import torch"': [PY, '-c', 'import torch'],
    'python -c "import fastai.learner"': [PY, '-c', 'import fastai.learner'],
    'ozcycle --help': [PY, '-m', 'ozcycle.cli', '--help'],
    'ozcycle (no command)': [PY, '-m', 'ozcycle.cli'],
    'ozcycle run --bogus': [PY, '-m', 'ozcycle.cli', 'run', '--bogus'],
    'ozcycle run --seeds five': [PY, '-m', 'ozcycle.cli', 'run', '--seeds', 'five'],
    'ozcycle run --threads 0': [PY, '-m', 'ozcycle.cli', 'run', '--threads', '0'],
    'ozcycle summary --help': [PY, '-m', 'ozcycle.cli', 'summary', '--help'],
    'ozcycle run --help': [PY, '-m', 'ozcycle.cli', 'run', '--help'],
    'ozcycle run --dataset mnist': [PY, '-m', 'ozcycle.cli', 'run', '--dataset', 'mnist'],
}
FAST = ('ozcycle --help', 'ozcycle (no command)', 'ozcycle run --bogus', 'ozcycle run --seeds five', 'ozcycle run --threads 0', 'ozcycle summary --help')

def wall(cmd):
    t = time.perf_counter(); subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); return time.perf_counter() - t

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--reps', type=int, default=5, help='timed runs of each command after one warm-up (default 5)')
    a = p.parse_args()
    times = {k: [] for k in CMDS}
    for r in range(a.reps + 1):
        for k, cmd in CMDS.items():
            t = wall(cmd)
            if r: times[k].append(t)
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"median of {a.reps} runs after one warm-up, interleaved")
    for k, v in times.items(): print(f"  {k:36s} {statistics.median(v):6.2f} s   [min {min(v):.2f}, max {max(v):.2f}]")
    worst = max(statistics.median(times[k]) for k in FAST)
    print(f"RESULT slowest help/usage error: {worst:.2f} s (target < 0.5 s: {'met' if worst < 0.5 else 'NOT met'})")

if __name__ == '__main__': main()
