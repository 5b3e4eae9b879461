"Import cost: `ozcycle run --help` imports `ozcycle.data`, which must not pull in torchvision (fastai.vision) up front"
import subprocess, sys

def test_data_import_leaves_torchvision_for_xresnet():
    code = ("import sys, ozcycle.cli as c; c._parser(); "
            "print(sorted(m for m in ('torchvision', 'fastai.vision', 'sklearn') if m in sys.modules)); "
            "from ozcycle.data import make_model; m = make_model('xresnet18'); "
            "print(type(m).__name__, 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split('\n')
    assert out[0] == '[]', out   # nothing heavy before a model needs it
    assert out[1] == 'XResNet True', out   # and the model still builds, importing fastai.vision then
