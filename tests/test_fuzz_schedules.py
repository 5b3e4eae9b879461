"""Fuzz every public entry point of ozcycle.schedules with hypothesis: each call either raises a TypeError/ValueError
whose message names one of the arguments it was given, or returns a schedule whose values are finite at many pct in
[0, 1], at pct exactly 0 and 1, and at every batch of `sched_values` (issue 12: no OverflowError, no -inf/NaN for
finite inputs, no numeric strings or bool arrays taken as numbers, messages that name the argument)."""
import re, warnings
import numpy as np
import pytest
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from hypothesis import given, settings, strategies as st, HealthCheck

from ozcycle.schedules import *
from ozcycle.schedules import Sched

N = 300   # examples per entry point
FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck))
PCTS = [0., 1., *np.linspace(0, 1, 41).tolist(), 0.25 - 1e-12, 0.25 + 1e-12, 1 - 1e-15]

finite = st.floats(allow_nan=False, allow_infinity=False)
edges = st.sampled_from([0, 1, 0., 1., 0.5, 0.95, 1e-3, 25., 1e5, 1e308, 1.7976931348623157e308, 5e-324, -1e308, 2**64, -1])
number = st.one_of(finite, edges, st.integers(-10**30, 10**30), st.floats(1e-8, 1.), st.floats(0., 0.999))
junk = st.one_of(st.none(), st.booleans(), st.sampled_from(['1', '0.5', '1e-3', 'cos', '', b'1', 'nan']),
                 st.sampled_from([float('nan'), float('inf'), -float('inf')]),
                 st.sampled_from([np.array([True, False]), np.array(True), np.array([np.nan]), np.array(['1']), np.zeros((2, 2)),
                                  np.array([], dtype=float), np.float32(0.1), np.int64(3), np.bool_(True)]),
                 st.dictionaries(st.text(max_size=2), finite, max_size=2), st.just(object()), st.just(slice(1e-3)))
arrays = st.lists(number, min_size=1, max_size=3).map(lambda v: np.array(v, dtype=float))
value = st.one_of(number, number, number, junk, arrays, st.lists(st.one_of(number, junk), max_size=3))
pos = st.floats(min_value=0., exclude_min=True, allow_infinity=False)       # any finite LR, 5e-324 .. 1.8e308
nonneg = st.floats(min_value=0., allow_infinity=False)
divs = st.floats(min_value=1., allow_infinity=False)
fracs = st.floats(0., 1.)
moms_ = st.floats(0., 1., exclude_max=True)
def arg(valid): return st.integers(0, 4).flatmap(lambda i: value if i == 4 else valid)   # mostly valid for the argument, else anything
kinds = st.one_of(st.sampled_from(['cos', 'linear', '1-sqrt', 'exp', 'no', 'COS', '']), st.sampled_from(['cos', 'linear']), junk)
counts = st.one_of(st.integers(-3, 40), st.integers(1, 40), st.integers(1, 40), st.integers(-10**12, 10**12), st.sampled_from([10**9, 2**63]), junk)
mom_tuples = st.one_of(st.tuples(moms_, moms_, moms_), st.tuples(moms_, moms_), st.tuples(moms_, moms_, moms_), st.tuples(value, value, value), st.tuples(number, number), st.lists(st.floats(0., 0.999), max_size=4).map(tuple),
                       st.tuples(st.floats(0., 0.999), st.floats(0., 0.999), st.floats(0., 0.999)), junk)
SCHEDS = [one_cycle(1e-2), constant(3.), decay_only(1e308), anneal([1., 2.], [3., 4.]), lambda p: 1.,
          lambda p: float('nan'), lambda p: '1', lambda p: None, lambda p: [1., 2.] if p < 0.5 else 1., None, 3, 'cos']
sched_lists = st.one_of(st.lists(st.sampled_from(SCHEDS), max_size=4), junk)


def call(f, also=(), **kw):
    "`f(**kw)`, or None when it refused with a TypeError/ValueError that names one of the arguments"
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)   # numpy overflow/invalid warnings would be a silent inf or NaN
        try: return f(**kw)
        except (TypeError, ValueError) as e:
            msg = str(e)
            names = [*kw, *also]   # `also`: arguments passed positionally (plot_schedule's *scheds)
            assert any(re.search(rf'(?<![\w]){re.escape(k)}(?![\w])', msg) for k in names), \
                f"{getattr(f, '__name__', f)}(**{kw!r}) raised {type(e).__name__}: {msg!r}, naming none of {names}"
            return None

def finite_everywhere(s, n_steps=37):
    "A schedule: callable, finite at PCTS and at each of `n_steps` batches"
    assert isinstance(s, Sched), s
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        for p in PCTS:
            v = np.asarray(s(p), dtype=float)
            assert np.all(np.isfinite(v)), (s, p, v)
        assert np.all(np.isfinite(sched_values(s, n_steps))), s


@FUZZ
@given(lr_max=arg(pos), div=arg(divs), div_final=arg(divs), pct_start=arg(fracs))
def test_one_cycle(lr_max, div, div_final, pct_start):
    s = call(one_cycle, lr_max=lr_max, div=div, div_final=div_final, pct_start=pct_start)
    if s is not None: finite_everywhere(s)


@FUZZ
@given(moms=mom_tuples, pct_start=arg(fracs))
def test_one_cycle_moms(moms, pct_start):
    s = call(one_cycle_moms, moms=moms, pct_start=pct_start)
    if s is not None:
        finite_everywhere(s)
        assert all(0 <= s(p) < 1 for p in PCTS)


@FUZZ
@given(v=arg(nonneg))
def test_constant(v):
    s = call(constant, value=v)
    if s is not None: finite_everywhere(s); assert repr(s).startswith('constant(')


@FUZZ
@given(lr_start=arg(pos), div_final=arg(divs), kind=kinds)
def test_decay_only(lr_start, div_final, kind):
    s = call(decay_only, lr_start=lr_start, div_final=div_final, kind=kind)
    if s is not None:
        finite_everywhere(s)
        v = sched_values(s, 50).reshape(50, -1)
        assert np.all(np.diff(v, axis=0) <= 0)           # never rises


@FUZZ
@given(moms=mom_tuples, kind=kinds)
def test_decay_only_moms(moms, kind):
    s = call(decay_only_moms, moms=moms, kind=kind)
    if s is not None: finite_everywhere(s)


@FUZZ
@given(lr=arg(pos), pct_start=arg(fracs), div_final=arg(divs))
def test_flat_cos(lr, pct_start, div_final):
    s = call(flat_cos, lr=lr, pct_start=pct_start, div_final=div_final)
    if s is not None: finite_everywhere(s)


@FUZZ
@given(lr_max=arg(pos), n_cycles=counts, cycle_mult=arg(divs), lr_min=arg(nonneg))
def test_sgdr(lr_max, n_cycles, cycle_mult, lr_min):
    s = call(sgdr, lr_max=lr_max, n_cycles=n_cycles, cycle_mult=cycle_mult, lr_min=lr_min)
    if s is not None: finite_everywhere(s)


@FUZZ
@given(cycle_len=arg(pos), n_cycles=counts, cycle_mult=arg(divs))
def test_sgdr_n_epoch(cycle_len, n_cycles, cycle_mult):
    n = call(sgdr_n_epoch, cycle_len=cycle_len, n_cycles=n_cycles, cycle_mult=cycle_mult)
    if n is not None: assert np.isfinite(float(n)) and n > 0


@FUZZ
@given(lr_max=arg(pos), pct_warmup=arg(st.floats(0., 0.5)), pct_decay=arg(st.floats(0., 0.5)), decay=kinds, div_final=arg(divs), div=arg(divs))
def test_wsd(lr_max, pct_warmup, pct_decay, decay, div_final, div):
    s = call(wsd, lr_max=lr_max, pct_warmup=pct_warmup, pct_decay=pct_decay, decay=decay, div_final=div_final, div=div)
    if s is not None: finite_everywhere(s)


@FUZZ
@given(values=st.one_of(st.lists(arg(nonneg), max_size=4), st.lists(arg(nonneg), min_size=2, max_size=2), value), pcts=st.one_of(st.lists(value, max_size=4), value,
       st.integers(1, 4).map(lambda n: [1 / n] * n)))
def test_piecewise(values, pcts):
    s = call(piecewise, values=values, pcts=pcts)
    if s is not None: finite_everywhere(s)


@FUZZ
@given(start=arg(finite), end=arg(finite), kind=kinds)
def test_anneal(start, end, kind):
    s = call(anneal, start=start, end=end, kind=kind)
    if s is not None:
        finite_everywhere(s)
        lo, hi = np.minimum(s.start, s.end), np.maximum(s.start, s.end)
        assert all(np.all((lo <= s(p)) & (s(p) <= hi)) for p in PCTS)   # never beyond its ends


@FUZZ
@given(pcts=st.one_of(st.lists(value, max_size=4), value, st.integers(1, 4).map(lambda n: [1 / n] * n)), scheds=sched_lists)
def test_combine(pcts, scheds):
    s = call(combine, pcts=pcts, scheds=scheds)
    if s is not None:
        try: finite_everywhere(s)
        except ValueError as e: assert re.search(r'scheds\[\d\] returned|different shapes', str(e)), e   # a phase's own bad values


@FUZZ
@given(n_epochs=st.one_of(st.lists(arg(pos), max_size=4), value), scheds=sched_lists)
def test_chain(n_epochs, scheds):
    s = call(chain, n_epochs=n_epochs, scheds=scheds)
    if s is not None:
        try: finite_everywhere(s)
        except ValueError as e: assert re.search(r'scheds\[\d\] returned|different shapes', str(e)), e


@FUZZ
@given(sched=st.one_of(st.sampled_from(SCHEDS), junk), n_steps=counts)
def test_sched_values_and_last_value(sched, n_steps):
    v = call(sched_values, sched=sched, n_steps=n_steps)
    if v is not None: assert np.all(np.isfinite(v)) and len(v) == n_steps
    w = call(last_value, sched=sched, n_steps=n_steps)
    if w is not None: assert np.all(np.isfinite(w))


@FUZZ
@given(s=st.sampled_from([one_cycle(1e-2), constant(1.), decay_only(1e308), wsd(1.), sgdr(1., 3)]), pct=arg(finite))
def test_calling_a_schedule(s, pct):
    v = call(s, pct=pct)
    if v is not None: assert np.all(np.isfinite(v))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(scheds=st.lists(st.sampled_from(SCHEDS), max_size=3), n_steps=counts,
       labels=st.one_of(st.none(), st.lists(st.text(max_size=3), max_size=3), junk), log=st.one_of(st.booleans(), junk),
       ax=st.sampled_from([None, 'ax', 'junk']))
def test_plot_schedule(scheds, n_steps, labels, log, ax):
    plt.close('all')
    own = plt.subplots()[1] if ax == 'ax' else None if ax is None else ax
    if not scheds:
        with pytest.raises(TypeError, match='scheds'): plot_schedule(n_steps=n_steps)
        return
    fig = call(lambda **kw: plot_schedule(*scheds, **kw), n_steps=n_steps, labels=labels, log=log, ax=own, also=('scheds',))
    if ax == 'ax': assert fig is None or fig is own
    elif fig is not None: assert not plt.fignum_exists(fig.number)   # closed: shown once
    assert plt.get_fignums() == ([own.figure.number] if ax == 'ax' else [])
    plt.close('all')
