"""Fuzz the verdict helpers of `ozcycle.arms_thread` that take user numbers: `clip_sweep_arms`, `clip_series` and
`clip_variant` accept an input or refuse it with a TypeError/ValueError naming the argument, and what they accept is
consistent (every arm of the sweep in exactly one series, at the LR its multiple says)."""
import math
from hypothesis import given, settings, strategies as st
from ozcycle.arms_thread import clip_sweep_arms, clip_series, clip_variant

num = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 300), st.none(), st.text(max_size=4), st.just('auto'))
seq = st.one_of(st.lists(num, max_size=4), st.tuples(num), num)

@settings(max_examples=300, deadline=None)
@given(num, seq, seq, num)
def test_clip_sweep_arms_fuzz(lr_max, lr_mults, max_norms, n_epoch):
    try: arms = clip_sweep_arms(lr_max, lr_mults, max_norms, n_epoch)
    except (TypeError, ValueError) as e:
        assert any(w in str(e) for w in ('lr_max', 'lr_mults', 'max_norms', 'n_epoch')), str(e)
        return
    series = clip_series(lr_mults, max_norms)
    in_series = [(m, a) for d in series.values() for m, a in d.items()]
    assert sorted(a for _, a in in_series) == sorted(arms)
    for m, a in in_series: assert math.isclose(arms[a]['lr_max'], m * lr_max) and arms[a]['n_epoch'] == n_epoch

@settings(max_examples=200, deadline=None)
@given(num)
def test_clip_variant_fuzz(c):
    try: v = clip_variant(c)
    except (TypeError, ValueError) as e:
        assert 'max_norm' in str(e), str(e)
        return
    assert v in ('none', 'auto') or (v.startswith('clip') and float(v[4:]) > 0)
