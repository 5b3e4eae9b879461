"""GPU check, prepared for when a GPU is lent: in at most 5 minutes on one GPU, one summary table.

  (1) the `#| cuda` cells of the library notebooks (nbs/02_clip: GradClip under fastai's MixedPrecision, fp16 and bf16,
      and non-finite gradients on the GPU; nbs/04_data: the loaders on the GPU), each notebook run by `nbdev-test
      --flags cuda` (its other cells too: the cuda cells use what they define);
  (2) throughput of the GPU default setting's model, ResNet-9 (`ozcycle.data.make_model('resnet9')`), on CIFAR-shaped
      random data made on the spot (3x32x32 normal inputs, 10 random labels), channels-last, bf16 autocast, batch size
      `--bs` (CIFAR-10's 512 on CUDA), for a fixed `--steps` training steps after `--warmup` steps: images per second
      of ozcycle's runner path (`lean_learner` + `RunLog` with a checkpoint per epoch + fastai's
      `MixedPrecision('bf16')`, `fit_cycle`) and of a hand-written PyTorch loop (`torch.autocast` bf16, AdamW with
      fastai's hyper-parameters, the one-cycle LR and momentum per step), both reading the same in-memory batches, in
      the same process; training steps only, timed between CUDA synchronizations;
  (3) one full resume round trip: `ozcycle run --quick` (MNIST-1D, 1 seed, refit) on the device, killed with SIGKILL
      once a run has a checkpoint but has not finished, run again to the end, and its results.csv compared with an
      uninterrupted run's (every value column; CIFAR-10 itself needs a download, which the GPU machine cannot make).
On the CPU (`--device cpu --steps 5`: what `tests/test_gpu_check.py` runs) (1) is skipped, (2) runs in float32 with batch
size 8 and (3) as on the GPU: the script stays working without a GPU.
Run: python bench/gpu_check.py [--device cuda] [--steps 200] [--warmup 20] [--bs 512]
"""
import argparse, os, signal, subprocess, sys, tempfile, time
from pathlib import Path
import torch, torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
CUDA_NOTEBOOKS = ('02_clip', '04_data')
VALUES = ['arm', 'strategy', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'diverged']
LR_MAX, WD, MOMS = 1e-2, 0.01, (0.95, 0.85, 0.95)

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)

def check_cuda_cells(dev):
    "(1): each notebook with `#| cuda` cells under `nbdev-test --flags cuda`"
    if dev.type != 'cuda': return [('cuda cells', 'skipped', 'needs CUDA')]
    rows = []
    for nb in CUDA_NOTEBOOKS:
        t = time.perf_counter()
        r = subprocess.run([str(Path(sys.executable).parent/'nbdev-test'), '--flags', 'cuda', str(ROOT/'nbs'/f'{nb}.ipynb')],
                           capture_output=True, text=True, cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)})
        ok = r.returncode == 0
        rows.append((f'cuda cells: {nb}', 'pass' if ok else 'FAIL', f'{time.perf_counter() - t:.0f} s' + ('' if ok else ': ' + (r.stderr or r.stdout).strip().splitlines()[-1][:100])))
    return rows

def random_dls(n, bs, dev):
    "CIFAR-shaped random data on `dev`, as ozcycle's in-memory loaders"
    from ozcycle.loaders import TensorDataLoaders
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n + bs, 3, 32, 32, generator=g), torch.randint(0, 10, (n + bs,), generator=g)
    return TensorDataLoaders.from_tensors(x[:n].to(dev), y[:n].to(dev), x[n:].to(dev), y[n:].to(dev), bs=bs, val_bs=bs, device=dev)

def model(dev):
    from ozcycle.data import make_model
    torch.manual_seed(0)
    return make_model('resnet9').to(dev, memory_format=torch.channels_last)

def hand_loop(dls, dev, amp):
    "The hand-written loop: training seconds (synchronized), per training step"
    from ozcycle.schedules import one_cycle, one_cycle_moms, sched_values
    m = model(dev)
    decay = [p for p in m.parameters() if p.ndim > 1]; no_decay = [p for p in m.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{'params': decay}, {'params': no_decay, 'weight_decay': 0.}], lr=LR_MAX, betas=(MOMS[0], 0.99), eps=1e-5, weight_decay=WD)
    n = len(dls.train)
    lrs, moms = sched_values(one_cycle(LR_MAX), n), sched_values(one_cycle_moms(MOMS), n)
    m.train(); sync(dev); t = time.perf_counter()
    for i, (xb, yb) in enumerate(dls.train):
        for pg in opt.param_groups: pg['lr'], pg['betas'] = lrs[i], (moms[i], 0.99)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(m(xb), yb)
        loss.backward(); opt.step(); opt.zero_grad()
    sync(dev)
    return time.perf_counter() - t

def runner_path(dls, dev, amp, tmp):
    "What the runner trains (`lean_learner`, `RunLog`), with fastai's `MixedPrecision('bf16')`: training seconds (synchronized)"
    from fastai.callback.core import Callback
    from fastai.callback.fp16 import MixedPrecision
    from ozcycle.runner import RunLog, lean_learner
    import ozcycle.fit  # noqa: F401  (Learner.fit_cycle)
    class Clock(Callback):
        order = -1000
        def before_train(self): sync(dev); self.t = time.perf_counter()
        def after_train(self): sync(dev); self.s = time.perf_counter() - self.t
    clock = Clock()
    learn = lean_learner(dls, model(dev), wd=WD, moms=MOMS)
    learn.fit_cycle(1, LR_MAX, cbs=[RunLog(Path(tmp)/'last.pt'), clock] + ([MixedPrecision('bf16')] if amp else []))
    return clock.s

def throughput(dev, steps, warmup, bs, tmp):
    "(2): images per second of both, warm-up fits first (cuDNN autotuning, allocator)"
    amp = dev.type == 'cuda'
    if amp: torch.backends.cudnn.benchmark = True
    warm, dls = random_dls(warmup * bs, bs, dev), random_dls(steps * bs, bs, dev)
    hand_loop(warm, dev, amp); runner_path(warm, dev, amp, tmp)
    th, tr = hand_loop(dls, dev, amp), runner_path(dls, dev, amp, tmp)
    ih, ir = steps * bs / th, steps * bs / tr
    what = f"ResNet-9, bs {bs}, {steps} steps, channels-last, {'bf16 autocast' if amp else 'float32'}"
    return [(f'hand-written loop ({what})', f'{ih:,.0f} img/s', f'{th:.2f} s'),
            (f'ozcycle runner path ({what})', f'{ir:,.0f} img/s', f'{tr:.2f} s'),
            ('runner / hand-written images per second', f'{ir / ih:.3f}x', 'same process, same batches')]

def _mid_run(store, proc, timeout=240):
    "Poll until a run has a checkpoint but no record yet; False if the process ended first"
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None: return False
        if store.exists() and any((d/'last.pt').exists() and not (d/'run.json').exists() for d in store.iterdir() if d.is_dir()): return True
        time.sleep(0.01)
    return False

def resume_round_trip(dev, tmp):
    "(3): `ozcycle run` killed with SIGKILL mid-run and rerun, against an uninterrupted run"
    import pandas as pd
    args = ['run', '--quick', '--dataset', 'mnist1d', '--epochs', '4', '2', '--seeds', '1', '--arms', 'refit', '--quiet', '--device', str(dev)]
    cmd = [sys.executable, '-m', 'ozcycle.cli', *args]
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    t = time.perf_counter()
    killed, ref = Path(tmp)/'killed', Path(tmp)/'ref'
    proc = subprocess.Popen([*cmd, '--out', str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try: mid = _mid_run(killed/'_runs', proc)
    finally:
        if proc.poll() is None: proc.send_signal(signal.SIGKILL)
        proc.wait()
    for out in (killed, ref):
        r = subprocess.run([*cmd, '--out', str(out)], capture_output=True, text=True, env=env)
        if r.returncode: return [('resume round trip', 'FAIL', r.stderr.strip().splitlines()[-1][:100])]
    a, b = (pd.read_csv(o/'experiment'/'mnist1d-adam'/'results.csv')[VALUES].sort_values(['arm', 'seed', 'epoch']).reset_index(drop=True) for o in (killed, ref))
    num = [c for c in VALUES if a[c].dtype.kind == 'f']
    same_rows = a[['arm', 'seed', 'epoch']].equals(b[['arm', 'seed', 'epoch']])
    diff = float((a[num] - b[num]).abs().max().max()) if same_rows else float('inf')
    ok = same_rows and diff == 0
    how = 'killed mid-run' if mid else 'NOT killed mid-run (it finished first)'
    return [('resume round trip (ozcycle run, SIGKILL, rerun)', 'pass' if ok else ('close' if diff < 1e-4 else 'FAIL'),
             f"{how}; {len(a)} rows, max |difference| {diff:.3g} vs uninterrupted; {time.perf_counter() - t:.0f} s")]

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', help='torch device (default: cuda when available)')
    p.add_argument('--steps', type=int, default=200, help='timed training steps of each loop (default 200)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up steps first (default: 20 on CUDA, 1 on the CPU)')
    p.add_argument('--bs', type=int, default=None, help='batch size (default: 512 on CUDA, as CIFAR-10 in ozcycle.data; 8 on the CPU)')
    a = p.parse_args()
    dev = torch.device(a.device)
    if dev.type == 'cpu': torch.set_num_threads(min(2, os.cpu_count() or 1))
    bs, warmup = a.bs or (512 if dev.type == 'cuda' else 8), a.warmup if a.warmup is not None else (20 if dev.type == 'cuda' else 1)
    t0, tmp = time.perf_counter(), tempfile.mkdtemp()
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'
    rows = check_cuda_cells(dev) + throughput(dev, a.steps, warmup, bs, tmp) + resume_round_trip(dev, tmp)
    w = max(len(r[0]) for r in rows)
    print(f"\nozcycle GPU check on {dev} ({name}), torch {torch.__version__}, {time.perf_counter() - t0:.0f} s")
    print(f"| {'check':{w}} | result | detail |\n|{'-' * (w + 2)}|--------|--------|")
    for r in rows: print(f"| {r[0]:{w}} | {r[1]} | {r[2]} |")
    bad = [r for r in rows if r[1] == 'FAIL']
    return 1 if bad else 0

if __name__ == '__main__': sys.exit(main())
