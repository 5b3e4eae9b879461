"""Fuzz the public entry points of ozcycle.extend (issue 16): any input gives either a fit that would start, or a TypeError /
ValueError whose message names an argument; nothing trains before every argument is checked (a sentinel callback raises in
`before_fit`, so a valid input costs no training)."""
import re, warnings

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.test_utils import synth_learner
from fastai.torch_core import set_seed
from hypothesis import HealthCheck, given, settings, strategies as st

from ozcycle.extend import extendable_plan, kept_state, wsd_steps

N = 300


class Reached(Exception): "The fit passed every check and is about to train"


class Sentinel(Callback):
    order = -1000
    def before_fit(self): raise Reached('the fit starts')


set_seed(0)
LEARN = synth_learner(n_trn=2, n_val=1)
LEARN.remove_cb(ProgressCallback); LEARN.logger = lambda *a: None
LEARN.fit_extendable(2, 1e-2)                    # a kept state for fit_extend
LEARN.model.load_state_dict(kept_state(LEARN)['model'])
LEARN.add_cb(Sentinel())
W0 = [p.detach().clone() for p in LEARN.model.parameters()]

anything = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 6), st.sampled_from([10**6, -10**9]), st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-0.5, 1.5), st.text(max_size=3), st.sampled_from(['wsd', 'flat_cos', 'cos', '1-sqrt', 'linear', 'exp']),
    st.lists(st.floats(-0.1, 1.2, allow_nan=False), max_size=3),
    st.sampled_from([slice(1e-4, 1e-2), slice(1e-3), slice(None), np.array([1e-3]), np.array([True]), {'a': 1}, object()]))
PLAN = dict(n_epoch=st.integers(2, 6), shape=st.sampled_from(['wsd', 'flat_cos']), pct_warmup=st.one_of(st.none(), st.floats(0, 0.5)),
            pct_decay=st.one_of(st.none(), st.floats(0, 1)), decay=st.one_of(st.none(), st.sampled_from(['1-sqrt', 'cos', 'linear'])))
FIT = dict(PLAN, lr_max=st.one_of(st.none(), st.floats(1e-6, 1.)), div=st.floats(1, 100), div_final=st.floats(1, 1e6),
           wd=st.one_of(st.none(), st.floats(0, 1)), cbs=st.sampled_from([None, [], Callback()]), reset_opt=st.booleans())
EXTEND = dict(n_epoch=st.integers(1, 3), wd=st.one_of(st.none(), st.floats(0, 1)), cbs=st.sampled_from([None, []]), path=st.just(None))
STEPS = dict(lr_max=st.floats(1e-6, 1.), n_steps=st.integers(1, 50), n_warmup=st.integers(0, 10), n_decay=st.integers(0, 10),
             decay=st.sampled_from(['1-sqrt', 'cos', 'linear']), div=st.floats(1, 100), div_final=st.floats(1, 1e6))


@st.composite
def args(draw, strats):
    "Valid values for every argument, then none, one or two of them replaced by anything"
    kw = draw(st.fixed_dictionaries(strats))
    for k in draw(st.lists(st.sampled_from(list(strats)), max_size=2)): kw[k] = draw(anything)
    return kw


def named(e, kw):
    msg = str(e)
    assert any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", msg) for n in set(kw) | {'n_epoch', 'n_batches'}), \
        f"{type(e).__name__} names no argument: {msg}"


def check(call, kw, trains=True):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); call()
        assert not trains, 'returned without reaching the fit'
    except Reached: assert trains
    except (TypeError, ValueError) as e: named(e, kw)
    assert all(torch.equal(a, b) for a, b in zip(W0, LEARN.model.parameters())), 'the model trained'


cfg = settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@cfg
@given(args(FIT))
def test_fuzz_fit_extendable(kw):
    a = dict(kw); n = a.pop('n_epoch')
    check(lambda: LEARN.fit_extendable(n, **a), kw)


@cfg
@given(args(EXTEND))
def test_fuzz_fit_extend(kw):
    a = dict(kw); n = a.pop('n_epoch')
    check(lambda: LEARN.fit_extend(n, **a), kw)


@cfg
@given(args(dict(PLAN, n_batches=st.integers(1, 20))))
def test_fuzz_extendable_plan(kw):
    def call():
        p = extendable_plan(**kw)
        assert 1 <= p['n_epoch_decay'] < p['n_epoch'] and 0 <= p['n_warmup'] <= (p['n_epoch'] - p['n_epoch_decay']) * p['n_batches']
    check(call, kw, trains=False)


@cfg
@given(args(STEPS), st.floats(-0.5, 1.5))
def test_fuzz_wsd_steps(kw, pct):
    def call():
        v = np.asarray(wsd_steps(**kw)(pct))
        assert np.all(np.isfinite(v)) and np.all(v > 0) and np.all(v <= np.asarray(kw['lr_max'], float) * (1 + 1e-12))
    check(call, kw, trains=False)
