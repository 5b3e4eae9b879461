"""`bench/gpu_check.py` keeps working without a GPU: `--device cpu --steps 5` prints its summary table and passes."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_gpu_check_runs_on_cpu():
    r = subprocess.run([sys.executable, '-W', 'ignore', str(ROOT/'bench'/'gpu_check.py'), '--device', 'cpu', '--steps', '5'],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    table = [l for l in r.stdout.splitlines() if l.startswith('| ')]
    rows = {l.split('|')[1].strip().split(' (')[0]: l.split('|')[2].strip() for l in table[1:]}
    assert rows['cuda cells'] == 'skipped'
    assert rows['hand-written loop'].endswith('img/s') and rows['ozcycle runner path'].endswith('img/s'), rows
    assert float(rows['runner / hand-written images per second'].rstrip('x')) > 0, rows
    assert rows['resume round trip'] == 'pass', table   # same numbers after SIGKILL and rerun as without
