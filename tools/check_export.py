"""Fail if `nbdev-export` would change `ozcycle/`: the notebooks in nbs/ are the source of truth.

The export runs in a temporary copy of the project, so the check never rewrites the working tree: a stale `ozcycle/`
stays as it is (and fails again) until someone runs `make export` and commits the result.
"""
import filecmp, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
lib = root/'ozcycle'
skip = shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints')
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    shutil.copytree(root/'nbs', tmp/'nbs', ignore=skip)
    shutil.copytree(lib, tmp/'ozcycle', ignore=skip)
    shutil.copy2(root/'pyproject.toml', tmp/'pyproject.toml')
    subprocess.run([str(root/'.venv'/'bin'/'nbdev-export')], cwd=tmp, check=True)
    cmp = filecmp.dircmp(lib, tmp/'ozcycle', ignore=['__pycache__'])
    def changed(c, pre=''):
        out = [pre+f for f in c.diff_files + c.left_only + c.right_only]
        for name, sub in c.subdirs.items(): out += changed(sub, pre+name+'/')
        return out
    diff = changed(cmp)
    if diff:
        sys.exit(f"nbdev-export would change ozcycle/: {', '.join(sorted(diff))}.\n"
                 "Edit the notebooks in nbs/, run `make export`, and commit both.")
print('export check: ozcycle/ matches nbs/')
