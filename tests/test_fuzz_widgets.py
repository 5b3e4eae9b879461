"""Fuzz the schedule explorer's settings with hypothesis: `explorer_calls`, `schedule_explorer` and
`ScheduleExplorer.set` either raise a TypeError/ValueError naming one of the settings given, or take every value
as given (never clamped to a slider's range: issue 12) and draw it."""
import math, re, warnings
import numpy as np
import pytest
import matplotlib
matplotlib.use('Agg')
from hypothesis import given, settings, strategies as st, HealthCheck

from ozcycle.widgets import schedule_explorer, explorer_calls, EXPLORER_DEFAULTS, STRATEGIES, LR_FROM

junk = st.one_of(st.none(), st.booleans(), st.sampled_from(['1', '0.5', 'cos', '', 'refit ']),
                 st.sampled_from([float('nan'), float('inf'), -1., 0., -3, 1e308, 2**70]),
                 st.sampled_from([np.array([True]), np.array(0.5), np.array([0.9, 0.8, 0.9]), np.float32(0.5), np.int64(3)]),
                 st.lists(st.floats(0., 1.), max_size=4), st.just(object()))
lr = st.one_of(st.floats(1e-12, 1e3), st.sampled_from([3.0, 1e-8, 5e-324, 1e300]))
div = st.one_of(st.floats(1., 1e8), st.sampled_from([1., 25., 1e12]))
mom = st.floats(0., 0.9999)
VALID = dict(lr_max=lr, lr=lr, lr_start=lr, div=div, div_final=div, lr_div=div, pct_start=st.floats(0., 1.),
             moms=st.one_of(st.tuples(mom, mom, mom), st.lists(mom, min_size=3, max_size=3)),
             n_epoch=st.integers(0, 12), n_batches=st.integers(1, 12), n_epoch_cont=st.integers(0, 12),
             strategy=st.sampled_from(STRATEGIES), lr_from=st.sampled_from(LR_FROM), kind=st.sampled_from(['cos', 'linear']),
             log=st.booleans())
KEYS = list(EXPLORER_DEFAULTS)
assert sorted(VALID) == sorted(KEYS)
setting = lambda k: st.integers(0, 9).flatmap(lambda i: junk if i == 9 else st.integers(-10**13, 10**13) if i == 8 else VALID[k])
unknown = st.integers(0, 7).flatmap(lambda i: st.sampled_from([['E1'], ['mom_start'], ['lr_maxx']]) if i == 7 else st.just([]))
settings_ = st.tuples(st.lists(st.sampled_from(KEYS), max_size=5, unique=True), unknown).map(lambda t: t[0] + t[1]).flatmap(
    lambda ks: st.fixed_dictionaries({k: setting(k) if k in VALID else junk for k in ks}))


def refused_naming_a_setting(f, s):
    "Call `f(**s)`; None if it raised a TypeError/ValueError naming one of the settings given, else its result"
    try: return f(**s)
    except (TypeError, ValueError) as e:
        assert any(re.search(rf'(?<![\w]){re.escape(k)}(?![\w])', str(e)) for k in s), f"{s!r}: {type(e).__name__}: {e}, naming none of {list(s)}"
        return None

def says_why(msg):
    "A message line that says which setting cannot run (e.g. lr_max / lr_div below the smallest float), never a crash"
    return msg.count('cannot draw: ') == 1 and 'please report' not in msg and any(re.search(rf'\b{k}\b', msg) for k in KEYS)

def as_given(v): return tuple(float(x) for x in v) if isinstance(v, (tuple, list, np.ndarray)) and np.ndim(v) == 1 else v


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(s=settings_)
def test_explorer_calls(s):
    c = refused_naming_a_setting(explorer_calls, s)
    if c is None: return
    (name, (n_epoch, lr_max), kw) = c['base']
    assert name == 'fit_one_cycle' and n_epoch == s.get('n_epoch', EXPLORER_DEFAULTS['n_epoch'])
    assert lr_max == s.get('lr_max', EXPLORER_DEFAULTS['lr_max'])                    # as given, never clamped
    assert kw['moms'] == as_given(s.get('moms', EXPLORER_DEFAULTS['moms']))
    assert (c['cont'] is None) == (s.get('strategy', EXPLORER_DEFAULTS['strategy']) == 'none')


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(s=settings_)
def test_schedule_explorer(s):
    ex = refused_naming_a_setting(schedule_explorer, s)
    if ex is None: return
    p = ex.params
    for k, v in s.items():
        if k in ('lr', 'lr_start') and p['lr_from'] != 'value': continue   # read-only: shows the LR the library resolved
        assert p[k] == as_given(v), (k, v, p[k])                           # the slider holds the value: not clamped
    assert ex.message.value == '' or says_why(ex.message.value), ex.message.value
    drawn = ex.message.value == ''
    assert ex.n_draws == drawn and (ex.image.value[:4] == b'\x89PNG') == drawn


EX = schedule_explorer(n_epoch=2, n_batches=5, n_epoch_cont=2)

@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(s=settings_)
def test_set(s):
    before = EX.params
    ok = refused_naming_a_setting(EX.set, s)
    if ok is None:
        assert EX.params == before                                           # refused: nothing changed
        return
    p = EX.params
    for k, v in s.items():
        if k in ('lr', 'lr_start') and p['lr_from'] != 'value': continue
        assert p[k] == as_given(v), (k, v, p[k])
    n0, n1 = p['n_epoch'], p['n_epoch_cont'] if p['strategy'] != 'none' else 1
    if n0 < 1 or n1 < 1: assert not ok and re.search(r'n_epoch(_cont)?=0', EX.message.value), EX.message.value
    assert ok == (EX.message.value == '') and (ok or says_why(EX.message.value)), EX.message.value
