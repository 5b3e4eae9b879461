"""Fail if `nbdev-export` would change `ozcycle/`: the notebooks in nbs/ are the source of truth."""
import filecmp, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
lib = root/'ozcycle'
with tempfile.TemporaryDirectory() as tmp:
    before = Path(tmp)/'before'
    shutil.copytree(lib, before, ignore=shutil.ignore_patterns('__pycache__'))
    subprocess.run([str(root/'.venv'/'bin'/'nbdev-export')], cwd=root, check=True)
    cmp = filecmp.dircmp(before, lib, ignore=['__pycache__'])
    def changed(c, pre=''):
        out = [pre+f for f in c.diff_files + c.left_only + c.right_only]
        for name, sub in c.subdirs.items(): out += changed(sub, pre+name+'/')
        return out
    diff = changed(cmp)
    if diff:
        sys.exit(f"nbdev-export changed ozcycle/: {', '.join(sorted(diff))}.\n"
                 "Edit the notebooks in nbs/, run `make export`, and commit both.")
print('export check: ozcycle/ matches nbs/')
