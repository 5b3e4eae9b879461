"""Fuzz `fit_schedule_free` and `ScheduleFree` (issue 16): TypeError / ValueError naming an argument, or a fit that starts."""
import re, warnings
import numpy as np
import torch
from torch import nn
from fastai.callback.core import Callback
from fastai.torch_core import set_seed
from hypothesis import HealthCheck, given, settings, strategies as st

from ozcycle.data import get_data
from ozcycle.fastai_compat import lean_learner
from ozcycle.schedule_free import ScheduleFree


class Reached(Exception): "The fit passed every check"


class Sentinel(Callback):
    order = 1000   # after ScheduleFree's own before_fit checks
    def before_fit(self): raise Reached('the fit starts')


set_seed(0)
LEARN = lean_learner(get_data('mnist1d', n_train=300, n_valid=100), nn.Sequential(nn.Flatten(), nn.Linear(40, 10)))
LEARN.add_cb(Sentinel())
anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 6), st.floats(allow_nan=True, allow_infinity=True), st.floats(-0.5, 1.5),
                     st.text(max_size=3), st.sampled_from(['adamw', 'sgd', 'adam', slice(1e-3), object()]), st.lists(st.floats(-0.1, 1.2), max_size=3))
GOOD = dict(n_epoch=st.integers(1, 3), lr=st.one_of(st.none(), st.floats(1e-6, 1)), opt=st.sampled_from([None, 'adamw', 'sgd']),
            warmup_steps=st.integers(0, 10), bn_batches=st.one_of(st.none(), st.integers(1, 5)), wd=st.one_of(st.none(), st.floats(0, 1)),
            cbs=st.sampled_from([None, []]))
cfg = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@st.composite
def args(draw):
    kw = draw(st.fixed_dictionaries(GOOD))
    for k in draw(st.lists(st.sampled_from(list(GOOD)), max_size=2)): kw[k] = draw(anything)
    return kw


@cfg
@given(args())
def test_fuzz_fit_schedule_free(kw):
    a = dict(kw); n = a.pop('n_epoch')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); LEARN.fit_schedule_free(n, **a)
        raise AssertionError('returned without reaching the fit')
    except Reached: pass
    except (TypeError, ValueError) as e:
        assert any(re.search(rf"(?<![A-Za-z_]){k}(?![A-Za-z_])", str(e)) for k in kw), str(e)


@cfg
@given(anything)
def test_fuzz_callback(bn_batches):
    try: ScheduleFree(bn_batches)
    except (TypeError, ValueError) as e: assert 'bn_batches' in str(e)
