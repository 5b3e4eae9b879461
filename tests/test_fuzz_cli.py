"""Fuzz `ozcycle run`'s flags: random values either exit 2 with one `ozcycle run: error:` line naming the flag, or pass
every check (training is replaced by a stub, so no example trains)."""
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st
import ozcycle.runner
from ozcycle.cli import main

class Valid(Exception): pass
def stub(**kw): raise Valid()

FLAGS = {'--epochs': st.tuples(st.integers(-2, 3), st.integers(-2, 3)).map(lambda t: list(map(str, t))),
         '--seeds': st.integers(-2, 10**10).map(lambda n: [str(n)]),
         '--lr-max': st.sampled_from(['0', '-1', 'nan', 'inf', '1e-3', '1e400', 'x']).map(lambda v: [v]),
         '--wd': st.sampled_from(['-1', 'nan', '0.1', 'inf', '1e12']).map(lambda v: [v]),
         '--bs': st.integers(-1, 10**5).map(lambda n: [str(n)]),
         '--threads': st.integers(-1, 4).map(lambda n: [str(n)]),
         '--name': st.sampled_from(['a b', '', '-x', 'ok', '../up', 'é']).map(lambda v: [v]),
         '--device': st.sampled_from(['cpu', 'meta', 'cuda:7', 'xyz', '']).map(lambda v: [v]),
         '--arms': st.lists(st.sampled_from(['refit', 'x', 'refit:lr_div=0.1', 'a=refit', 'a=decay', 'base', 'refit:lr_dv=3', '=', ':']), min_size=1, max_size=3)}

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(list(FLAGS)), st.data())
def test_run_flags(monkeypatch, capsys, tmp_path, flag, data):
    monkeypatch.setattr(ozcycle.runner, 'run_experiment', stub)
    args = ['run', '--quick', '--dataset', 'mnist1d', '--out', str(tmp_path/'o'), flag, *data.draw(FLAGS[flag])]
    try: rc = main(args)
    except SystemExit as e: rc = e.code
    except Valid: return
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith('ozcycle run: error:'), (args, rc, err)
    assert flag in err[-1] or (flag == '--arms' and 'arm' in err[-1]), (args, err[-1])

def test_bad_name_names_the_flag(capsys):
    "Found by the fuzz test: the name check said `name 'a b'`, not the flag"
    with pytest.raises(SystemExit) as e: main(['run', '--quick', '--name', 'a b'])
    assert e.value.code == 2 and "ozcycle run: error: --name 'a b' must start with a letter" in capsys.readouterr().err
