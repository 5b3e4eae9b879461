"""Fuzz the public entry points of `ozcycle.arms_beyond`: arms of its kinds with any parameter values are accepted or
refused with a TypeError/ValueError naming arms[arm] (and the key), `rewind_epoch` and `Rewound` refuse bad input by
naming the argument, and what they accept behaves (an epoch in range, a schedule equal to its base up to the rewind)."""
import math
import numpy as np
from hypothesis import given, settings, strategies as st
from ozcycle.arms import check_arms
from ozcycle.schedules import one_cycle, sched_values
import ozcycle.arms_beyond as ab

KEYS = {'rewind': ('rewind_epoch', 'rewind_lr_mult'), 'extend': ab._EXTEND_KEYS, 'swa': ('lr_div', 'anneal_epochs'),
        'ema': ('lr_div', 'anneal_epochs', 'ema_epochs'), 'schedule_free': ('lr_mult', 'pct_warmup')}
values = st.one_of(st.none(), st.booleans(), st.integers(-5, 50), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=6), st.sampled_from(['wsd', 'flat_cos', 'cos', 'linear', '1-sqrt']), st.lists(st.integers(), max_size=2))

@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(KEYS)), st.data())
def test_check_arms_fuzz(kind, data):
    keys = data.draw(st.lists(st.sampled_from([*KEYS[kind], 'n_epoch', 'lr_max']), unique=True, max_size=3))
    params = {k: data.draw(values) for k in keys}
    try: res = check_arms({'a': {'strategy': kind, **params}})
    except (TypeError, ValueError) as e:
        assert "arms['a']" in str(e), str(e)
        return
    assert res['a']['strategy'] == kind and set(res['a']) - {'strategy'} <= set(KEYS[kind])

@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(-3, 60), st.floats(allow_nan=True), st.none(), st.text(max_size=3)),
       st.one_of(st.floats(-1, 2), st.just(math.nan), st.integers(-1, 2), st.none()))
def test_rewind_epoch_fuzz(n, mult):
    try: k = ab.rewind_epoch(n, mult)
    except (TypeError, ValueError) as e:
        assert any(w in str(e) for w in ('n_epoch_base', 'rewind_lr_mult')), str(e)
        return
    assert 1 <= k < n and one_cycle(1.)(k / n) >= mult

@settings(max_examples=200, deadline=None)
@given(st.integers(-1, 12), st.integers(-1, 12), st.integers(-1, 30), st.integers(0, 5))
def test_rewound_fuzz(n_base, k, n, nb):
    base = one_cycle(1e-2)
    try: s = ab.Rewound(base, base(1.), n_base, k, n, nb)
    except (TypeError, ValueError) as e:
        assert any(w in str(e) for w in ('n_epoch_base', 'rewind_epoch', 'n_epoch', 'n_batches')), str(e)
        return
    r, b = sched_values(s, n * nb), sched_values(base, n_base * nb)
    assert np.array_equal(r[:k * nb], b[:k * nb]) and np.isfinite(r).all() and (np.diff(r[k * nb:]) <= 1e-15).all()
