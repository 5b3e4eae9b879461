"""Fuzz the answer map's public entry points: any results table and arguments give a map whose marks agree with its
intervals (never better/worse without pairs), and text and figures built from it; or a TypeError/ValueError that names
the argument. Never another exception."""
import math
import numpy as np, pandas as pd
import matplotlib.pyplot as plt
from hypothesis import given, settings, strategies as st, HealthCheck
from ozcycle.answer import answer_map, answer_table, answer_conclusions, answer_headline, plot_answer_map, ANSWER_COLUMNS

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARMS = {'long': 'one_cycle', 'base': 'one_cycle', 'refit_3': 'refit', 'refit_10': 'refit', 'constant_10': 'constant', 'decay_1': 'decay', 'x_1': 'x'}
COLS = ['experiment', 'setting', 'arm', 'strategy', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'time_s', 'diverged']

@st.composite
def tables(draw):
    rows, paired = [], draw(st.booleans())   # paired: arm effect + seed level + small noise, so that some differences resolve
    for s in draw(st.lists(st.sampled_from(['a', 'b', 'c']), min_size=1, max_size=3, unique=True)):
        for arm in draw(st.lists(st.sampled_from(list(ARMS)), max_size=6, unique=True)):
            effect = draw(st.sampled_from([-0.3, 0., 0.3]))
            for seed in draw(st.lists(st.integers(0, 4), max_size=4, unique=True)):
                div = draw(st.integers(0, 5)) == 0
                acc = math.nan if div else 0.5 + effect + 0.05 * seed + draw(st.floats(0, 0.01)) if paired else draw(st.floats(0, 1))
                for exp in draw(st.sampled_from([['e1'], ['e1', 'e2']])):   # the same run in two experiments
                    rows.append(dict(experiment=exp, setting=s, arm=arm, strategy=ARMS[arm], seed=seed, epoch=2, train_loss=0.1,
                                     valid_loss=math.nan if div else 1 - acc, accuracy=acc, lr=1e-3, mom=0.9, time_s=0.1, diverged=div))
    return pd.DataFrame(rows, columns=COLS).astype({'seed': int, 'epoch': int, 'diverged': bool})

def _named(e, names): return isinstance(e, (TypeError, ValueError)) and any(n in str(e) for n in names)

def _check_map(m):
    assert list(m.columns) == ANSWER_COLUMNS
    assert set(m['mark']) <= {'better', 'worse', 'cannot tell', 'no pairs'}
    nop = m['n_pairs'] == 0
    assert (m.loc[nop, 'mark'] == 'no pairs').all() and m.loc[nop, ['diff_pp', 'lo_pp', 'hi_pp', 'lo_raw_pp', 'hi_raw_pp']].isna().all().all()
    res = m['mark'].isin(['better', 'worse'])
    assert (m.loc[res, 'n_pairs'] >= 2).all()
    assert ((m.loc[res, 'lo_pp'] > 0) | (m.loc[res, 'hi_pp'] < 0)).all()   # the mark is the adjusted interval's
    iv = m[m['lo_pp'].notna()]
    assert (iv['lo_pp'] <= iv['lo_raw_pp'] + 1e-9).all() and (iv['hi_pp'] >= iv['hi_raw_pp'] - 1e-9).all()   # adjusted is wider
    if m.attrs.get('metric') == 'accuracy': assert ((iv['lo_pp'] >= -100) & (iv['hi_pp'] <= 100)).all()

@FUZZ
@given(df=tables(), controls=st.one_of(st.sampled_from(['long', ('long', 'base'), ('base',), 'zz', (), 3, None]), st.lists(st.text(max_size=3), max_size=2)),
       metric=st.sampled_from(['accuracy', 'valid_loss', 'f1']), conf=st.one_of(st.floats(allow_nan=True), st.sampled_from([0.95, 0.5, 1, True])),
       setts=st.sampled_from([None, {}, {'a': {'dataset': 'mnist1d', 'n_classes': 10}}, {'a': 'x'}, ['a']]))
def test_fuzz_answer_map(df, controls, metric, conf, setts):
    try: m = answer_map(df, setts, controls, metric, conf)
    except Exception as e: assert _named(e, ['controls=', 'metric=', 'conf=', 'settings', 'df ']), repr(e); return
    _check_map(m)
    for c in dict.fromkeys(m['control']):
        t = answer_table(m, c)
        assert t.startswith(f'Best arm of each strategy minus `{c}`') and 'Bonferroni-adjusted over' in t
        assert all(isinstance(s, str) and s for s in answer_conclusions(m, c)) and answer_headline(m, c)

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=tables(), control=st.sampled_from(['long', 'base', 'zz', 3]))
def test_fuzz_plot_answer_map(df, control):
    m = answer_map(df)
    try: fig = plot_answer_map(m, control)
    except Exception as e: assert _named(e, ['control=']), repr(e); return
    assert fig.axes and fig.number not in plt.get_fignums()   # returned and closed

@FUZZ
@given(amap=st.one_of(st.none(), st.integers(), st.just(pd.DataFrame({'x': [1]})), st.just(pd.DataFrame(columns=ANSWER_COLUMNS))),
       control=st.sampled_from(['long', None, 3]))
def test_fuzz_bad_maps(amap, control):
    for f in (answer_table, answer_conclusions, answer_headline):
        try: f(amap, control)
        except Exception as e: assert _named(e, ['amap', 'control=']), repr(e)
