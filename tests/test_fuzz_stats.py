"""Fuzz the statistics' public entry points: any input gives a result with finite-or-NaN numbers inside their bounds,
or a TypeError/ValueError that names the argument; never another exception, never a verdict that claims an uncompared arm."""
import math
import numpy as np, pandas as pd
from hypothesis import given, settings, strategies as st, HealthCheck
from ozcycle.stats import t_interval, compare, summarize, verdict, claim, final_metrics, holm, collapsed

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARMS = ['a', 'b', 'long']

@st.composite
def tables(draw):
    rows = []
    for arm in ARMS:
        for seed in draw(st.lists(st.integers(0, 4), max_size=5, unique=True)):
            div = draw(st.booleans()) and draw(st.integers(0, 3)) == 0
            acc = math.nan if div else draw(st.floats(0, 1))
            rows.append(dict(experiment='x', arm=arm, strategy='s', seed=seed, epoch=2, train_loss=0.1, valid_loss=math.nan if div else 1 - acc,
                             accuracy=acc, lr=1e-3, mom=0.9, time_s=0.1, diverged=div))
    return pd.DataFrame(rows, columns=['experiment', 'arm', 'strategy', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy',
                                       'lr', 'mom', 'time_s', 'diverged']).astype({'seed': int, 'epoch': int, 'diverged': bool})

def _named(e, names): return isinstance(e, (TypeError, ValueError)) and any(n in str(e) for n in names)

@FUZZ
@given(x=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6)), max_size=8),
       conf=st.one_of(st.floats(allow_nan=True), st.integers(), st.booleans(), st.text(max_size=3)),
       bounded=st.booleans())
def test_fuzz_t_interval(x, conf, bounded):
    try: t = t_interval(x, conf, (0., 1.) if bounded else None)
    except Exception as e: assert _named(e, ['conf=']), repr(e); return
    if t['n'] >= 2 and bounded: assert 0 <= t['lo'] <= t['hi'] <= 1 or math.isnan(t['lo'])
    if t['n'] < 2: assert math.isnan(t['lo']) and math.isnan(t['hi'])

@FUZZ
@given(df=tables(), a=st.sampled_from(ARMS + ['zz']), b=st.sampled_from(ARMS), metric=st.sampled_from(['accuracy', 'valid_loss', 'f1']))
def test_fuzz_compare(df, a, b, metric):
    if df.empty: return
    try: c = compare(df, a, b, metric)
    except Exception as e: assert _named(e, ['arm ', 'metric=']), repr(e); return
    if c['n'] < 2: assert not c['resolved'] and c['better'] is None
    if metric == 'accuracy' and c['n'] >= 2: assert -1 <= c['lo'] <= c['hi'] <= 1

@FUZZ
@given(df=tables(), control=st.sampled_from([None, 'long', 'zz']), metric=st.sampled_from(['accuracy', 'valid_loss', 'acc']))
def test_fuzz_verdict(df, control, metric):
    if df.empty: return
    try: v = verdict(df, {'dataset': 'x', 'n_epoch_base': 1, 'n_epoch_cont': 1, 'lr_max': 1e-2}, metric=metric, control=control)
    except Exception as e: assert _named(e, ['control=', 'metric=']), repr(e); return
    if 'each difference resolved' in v.text:   # then every other arm was compared, on at least two seeds, and resolved
        assert len(v.comparisons) and v.comparisons['resolved'].all() and (v.comparisons['n'] >= 2).all(), v.text

@FUZZ
@given(df=tables(), arms=st.lists(st.sampled_from(ARMS + ['zz']), max_size=3), metric=st.sampled_from(['accuracy', 'valid_loss', 'f1']))
def test_fuzz_claim(df, arms, metric):
    if df.empty: return
    try: c = claim(df, arms, 'long', metric=metric)
    except Exception as e: assert _named(e, ['arms', 'arm ', 'metric=']), repr(e); return
    assert c.outcome in ('held', 'did not hold', 'cannot tell', 'no interval', 'no runs')
    if c.outcome in ('held', 'did not hold'): assert c.comparison['n'] >= 2 and c.comparison['resolved']

@FUZZ
@given(df=tables(), control=st.sampled_from([None, 'long', 'zz']))
def test_fuzz_summarize(df, control):
    if df.empty: return
    s = summarize(df, control=control)
    lo, hi = s['accuracy_lo'].dropna(), s['accuracy_hi'].dropna()
    assert (lo >= 0).all() and (hi <= 1).all()

@FUZZ
@given(p=st.one_of(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2), st.booleans(), st.text(max_size=2)), max_size=6),
                   st.floats(allow_nan=True), st.none(), st.text(max_size=3)),
       alpha=st.one_of(st.floats(allow_nan=True), st.integers(-1, 2), st.booleans()))
def test_fuzz_holm(p, alpha):
    try: r = holm(p, alpha)
    except Exception as e: assert _named(e, ['pvalues', 'alpha=']), repr(e); return
    q = np.atleast_1d(np.asarray(p, dtype=float))
    assert r.dtype == bool and len(r) == len(q)
    assert not r[np.isnan(q)].any()
    assert not len(q) or (r >= (q <= alpha / len(q))).all()   # everything Bonferroni rejects, Holm rejects

@FUZZ
@given(df=tables(), chance=st.one_of(st.floats(allow_nan=True), st.integers(-1, 2), st.booleans()))
def test_fuzz_collapsed(df, chance):
    if df.empty: return
    try: c = collapsed(df, chance)
    except Exception as e: assert _named(e, ['chance=']), repr(e); return
    assert (~c['diverged']).all() and (c['accuracy'] <= chance + 0.05).all()
