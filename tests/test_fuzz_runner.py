"""Fuzz the runner's entry points that need no training: `check_arms`, `make_config`, `design`, `run_spec` and
`load_results` on garbage raise only `TypeError`/`ValueError` (`load_results`: also `FileNotFoundError`) naming the argument."""
import json, re
from hypothesis import given, settings, HealthCheck, strategies as st
import pytest

from ozcycle.runner import check_arms, make_config, design, run_spec, load_results

anything = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

def _named(e, *names):
    assert isinstance(e, (TypeError, ValueError)), repr(e)
    assert any(n in str(e) for n in names), (names, str(e))

@FAST
@given(st.one_of(anything, st.lists(st.text(max_size=6), max_size=3),
                 st.dictionaries(st.text(max_size=6), st.one_of(anything, st.fixed_dictionaries({'strategy': st.sampled_from(['refit', 'constant', 'decay', 'one_cycle', 'x'])},
                                                                                            optional={'lr_div': anything, 'lr': anything, 'n_epoch': anything})), max_size=3)))
def test_check_arms(arms):
    try: check_arms(arms)
    except Exception as e: _named(e, 'arm')

KW = dict(name=anything, n_epoch_base=anything, n_epoch_cont=anything, seeds=anything, lr_max=anything, bs=anything, wd=anything, moms=anything)

@FAST
@given(st.sampled_from(list(KW)), st.data())
def test_make_config(key, data):
    v = data.draw(KW[key])
    try: make_config(arms=['refit'], dataset='mnist1d', quick=True, **{key: v})
    except Exception as e: _named(e, key, 'n_epoch_cont')

@FAST
@given(anything, anything)
def test_design(quick, cuda):
    try: design(quick, cuda)
    except Exception as e: _named(e, 'quick', 'cuda')

@FAST
@given(anything, anything)
def test_run_spec(arm, seed):
    cfg = make_config(arms=['refit'], dataset='mnist1d', n_epoch_base=1, n_epoch_cont=1, seeds=1, quick=True)
    try: run_spec(cfg, arm, seed)
    except Exception as e: _named(e, 'arm', 'seed')

@FAST
@given(st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode),
                 st.dictionaries(st.sampled_from(['store', 'runs', 'experiment', 'arms', 'seeds']), anything, max_size=5).map(lambda d: json.dumps(d).encode())))
def test_load_results(tmp_path_factory, content):
    d = tmp_path_factory.mktemp('res')
    (d/'config.json').write_bytes(content)
    try: load_results(d)
    except Exception as e:
        assert isinstance(e, (TypeError, ValueError, OSError)) and 'config.json' in str(e), repr(e)

@pytest.mark.parametrize('content,msg', [(b'{"store": "", "runs": {"": 0}}', "'experiment'"), (b'\x80', 'not a JSON file'),
    (b'{"experiment": "e", "store": "../_runs", "runs": {}, "arms": {"a": {"strategy": "sgdr"}}, "seeds": [0]}', 'strategy')])
def test_load_results_foreign(tmp_path, content, msg):
    "Found by the fuzz test (issue 12): a foreign config.json was an AttributeError/KeyError/UnicodeDecodeError; now a ValueError naming the file"
    (tmp_path/'config.json').write_bytes(content)
    with pytest.raises(ValueError) as e: load_results(tmp_path)
    assert 'config.json' in str(e.value) and msg in str(e.value), str(e.value)


@pytest.mark.parametrize('call', [lambda: check_arms(False), lambda: make_config(moms=None)])
def test_small_inputs_found(call):
    "Found by the fuzz tests (issue 12): a bool as arms ('not iterable') and moms=None (a bare float() error)"
    with pytest.raises((TypeError, ValueError)) as e: call()
    assert re.search(r'arms|moms', str(e.value)), str(e.value)

@pytest.mark.parametrize('call,name', [(lambda: design([]), 'quick=[]'), (lambda: design(cuda='yes'), "cuda='yes'"),
    (lambda: run_spec(make_config(arms=['refit'], dataset='mnist1d', quick=True), 'refit', None), 'seed=None'),
    (lambda: run_spec(make_config(arms=['refit'], dataset='mnist1d', quick=True), 'bogus', 0), "arm='bogus'")])
def test_small_inputs_fixed(call, name):
    "Found by the fuzz test: a list as quick, a seed int() could not read, and an unknown arm silently given long's spec"
    with pytest.raises((TypeError, ValueError)) as e: call()
    assert name in str(e.value), str(e.value)
