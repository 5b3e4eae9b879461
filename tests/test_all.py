"""`from ozcycle.all import *` after fastai's star-imports changes no fastai name, and exports no plumbing."""
import subprocess, sys
import pytest

FASTAI_ALLS = ['fastai.vision.all', 'fastai.tabular.all', 'fastai.text.all', 'fastai.callback.all']

@pytest.mark.parametrize('mod', FASTAI_ALLS)
def test_star_import_shadows_no_fastai_name(mod):
    code = (f"import warnings; warnings.simplefilter('ignore')\n"
            f"from {mod} import *\n"
            "before = dict(globals())\n"
            "from ozcycle.all import *\n"
            "import ozcycle.all\n"
            "changed = sorted(k for k, v in before.items() if not k.startswith('__') and globals()[k] is not v)\n"
            "print(changed); print(len(ozcycle.all.__all__))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split('\n')
    assert out[0] == '[]', f"from ozcycle.all import * after {mod} rebinds {out[0]}"
    assert int(out[1]) > 50   # and it exports the API (schedules, fit methods, GradClip, runner, stats)

def test_the_check_would_catch_a_shadowed_name():
    "Not vacuous: a name both fastai.vision.all and a module export (like the old `get_model`) is reported"
    code = ("import warnings; warnings.simplefilter('ignore')\n"
            "from fastai.vision.all import *\nbefore = dict(globals())\n"
            "from ozcycle.data import get_model\n"
            "print(sorted(k for k, v in before.items() if not k.startswith('__') and globals()[k] is not v))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "['get_model']"

def test_plumbing_stays_in_its_module():
    import ozcycle.all as a
    for name in ('save_json', 'save_checkpoint', 'rng_state', 'run_key', 'code_version', 'cache_dir'):
        assert name not in a.__all__, name
    for name in ('one_cycle', 'decay_only', 'GradClip', 'run_experiment', 'verdict', 'claim', 'get_data', 'TensorDataLoaders'):
        assert name in a.__all__, name
