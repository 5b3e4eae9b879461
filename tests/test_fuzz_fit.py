"""Fuzz every public entry point of ozcycle.fit (issue 12): any input gives either a fit that would start, or a TypeError /
ValueError whose message names an argument, and nothing trains before every argument and every schedule value is checked.
A sentinel callback raises in `before_fit` (the first event of a fit), so a valid input costs no training."""
import math, re, warnings

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.test_utils import synth_learner
from fastai.torch_core import set_seed
from hypothesis import HealthCheck, given, settings, strategies as st

from ozcycle.fit import FitState, continuation_scheds, strategies
from ozcycle.schedules import constant, one_cycle, one_cycle_moms

N = 300   # examples per entry point


class Reached(Exception): "The fit passed every check and is about to train"


class Sentinel(Callback):
    order = -1000   # before every other callback's before_fit
    def before_fit(self): raise Reached('the fit starts')


set_seed(0)
LEARN = synth_learner(n_trn=2, n_val=1)   # 2 training batches per epoch, SGD with lr, mom, wd
LEARN.remove_cb(ProgressCallback); LEARN.logger = lambda *a: None
LEARN.add_cb(Sentinel())
LEARN.create_opt()
BASE = FitState.planned({'lr': one_cycle(1e-2), 'mom': one_cycle_moms()}, 2, 2, kind='one_cycle')
W0 = [p.detach().clone() for p in LEARN.model.parameters()]

anything = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 6), st.sampled_from([10**6, -10**9]), st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-0.5, 1.5), st.text(max_size=3), st.sampled_from(['last', 'cos', 'linear', 'refit', 'constant', 'decay']),
    st.lists(st.floats(-0.1, 1.2, allow_nan=False), max_size=3), st.tuples(st.floats(-0.1, 1.2), st.floats(-0.1, 1.2), st.floats(-0.1, 1.2)),
    st.sampled_from([slice(1e-4, 1e-2), slice(1e-3), slice(None), slice(-1, 1), np.array([1e-3]), np.array([True]), {'a': 1}, object()]))
bad_sched = st.sampled_from([lambda p: -1e-3 * p, lambda p: math.nan if p > .5 else 1e-3, lambda p: 1 / 0, lambda p: 'x', lambda p: 2.,
                             lambda p: np.array([1e-3, 1e-3]), lambda p: math.inf, 1e-3, None])
sched = st.one_of(st.sampled_from([constant(1e-3), one_cycle(1e-2), constant(0.9), lambda p: 1e-3 * (1 - p)]), bad_sched)
COMMON = dict(n_epoch=st.integers(1, 3), wd=st.one_of(st.none(), st.floats(0, 1)), cbs=st.sampled_from([None, [], Callback()]),
              reset_opt=st.booleans(), start_epoch=st.integers(0, 1))
GOOD = {
    'fit_refit': dict(lr_max=st.one_of(st.none(), st.floats(1e-6, 1.)), lr_div=st.floats(1, 100), div=st.floats(1, 100),
                      div_final=st.floats(1, 1e6), pct_start=st.floats(0, 1), moms=st.one_of(st.none(), st.tuples(*[st.floats(0, .99)] * 3))),
    'fit_constant': dict(lr=st.one_of(st.none(), st.just('last'), st.floats(1e-6, 1.)), mom=st.one_of(st.none(), st.floats(0, .99)),
                         lr_div=st.floats(1, 100)),
    'fit_decay': dict(lr_start=st.one_of(st.none(), st.just('last'), st.floats(1e-6, 1.)), div_final=st.floats(1, 1e6),
                      kind=st.sampled_from(['cos', 'linear']), moms=st.one_of(st.none(), st.tuples(*[st.floats(0, .99)] * 2)),
                      lr_div=st.floats(1, 100)),
    'fit_cycle': dict(lr_max=st.one_of(st.none(), st.floats(1e-6, 1.)), div=st.floats(1, 100), div_final=st.floats(1, 1e6),
                      pct_start=st.floats(0, 1), moms=st.one_of(st.none(), st.tuples(*[st.floats(0, .99)] * 3))),
    'fit_schedule': dict(scheds=st.dictionaries(st.sampled_from(['lr', 'mom', 'wd', 'sqr_mom', 'foo', 1]), sched, max_size=3)),
}


@st.composite
def args(draw, good, common=True):
    "Valid values for every argument, then none, one or two of them replaced by anything"
    strats = {**(COMMON if common else {}), **good}
    kw = draw(st.fixed_dictionaries(strats))
    for k in draw(st.lists(st.sampled_from(list(strats)), max_size=2)): kw[k] = draw(anything)
    return kw


def names(f, kw):
    return set(kw) | {'n_epoch', 'scheds', 'strategy', 'prev', 'lr', 'mom', 'moms', 'lr_max', 'lr_start', 'lr_div'}


def check(call, kw, trains=True):
    "`call()` reaches the fit (trains=True) or returns, or raises TypeError/ValueError naming an argument; weights unchanged"
    LEARN.fit_state = BASE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); call()
        assert not trains, 'returned without reaching the fit'
    except Reached: assert trains
    except (TypeError, ValueError) as e:
        msg = str(e)
        assert any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", msg) for n in names(call, kw)), f"{type(e).__name__} names no argument: {msg}"
    assert all(torch.equal(a, b) for a, b in zip(W0, LEARN.model.parameters())), 'the model trained'
    assert LEARN.fit_state is BASE, 'fit_state changed'


cfg = settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.mark.parametrize('method', list(GOOD))
def test_fuzz_fit_methods(method):
    @cfg
    @given(args(GOOD[method]))
    def run(kw):
        a = dict(kw); n = a.pop('n_epoch')
        check(lambda: getattr(LEARN, method)(n, **a), kw)
    run()


extra = st.dictionaries(st.sampled_from(['lr_max', 'lr', 'lr_start', 'mom', 'moms', 'lr_div', 'div', 'kind', 'bogus']),
                        st.one_of(st.floats(1e-4, 0.5), anything), max_size=2)


@cfg
@given(args({'strategy': st.sampled_from(strategies), 'prev': st.sampled_from([None, BASE])}), extra)
def test_fuzz_fit_continue(kw, kwargs):
    a = dict(kw); n, strategy = a.pop('n_epoch'), a.pop('strategy')
    check(lambda: LEARN.fit_continue(n, strategy, **a, **kwargs), {**kw, **kwargs})


@cfg
@given(args({'strategy': st.sampled_from(strategies), 'prev': st.sampled_from([None, BASE])}, common=False), extra)
def test_fuzz_continuation_scheds(kw, kwargs):
    strategy, prev = kw['strategy'], kw['prev']
    def call():
        sc = continuation_scheds(strategy, prev, **kwargs)
        for s in sc.values():
            if s is not None: assert np.all(np.isfinite(s(0.5)))
    check(call, kwargs, trains=False)
