"""Fuzz the public entry points of ozcycle.average (issue 16): TypeError / ValueError naming an argument, or a valid object."""
import re
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from ozcycle.average import EMA, SWA, swa_sched

anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 6), st.floats(allow_nan=True, allow_infinity=True), st.floats(-0.5, 1.5),
                     st.text(max_size=3), st.sampled_from(['cos', 'linear', 'averaged', 'live', 'exp']), st.lists(st.floats(-0.1, 1.2), max_size=3))
cfg = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def check(call, names):
    try: call()
    except (TypeError, ValueError) as e:
        assert any(re.search(rf"(?<![A-Za-z_]){n}(?![A-Za-z_])", str(e)) for n in names), str(e)


@cfg
@given(anything, anything, anything)
def test_fuzz_callbacks(decay, keep, bn_batches):
    check(lambda: EMA(decay, keep, bn_batches), ['decay', 'keep', 'bn_batches'])
    check(lambda: SWA(keep, bn_batches), ['keep', 'bn_batches'])


@cfg
@given(st.one_of(st.floats(1e-6, 1), anything), st.one_of(st.floats(1e-6, 1), anything), st.floats(0, 1), st.one_of(st.just('cos'), anything), st.floats(0, 1))
def test_fuzz_swa_sched(lr_start, swa_lr, pct, strategy, at):
    def call():
        v = swa_sched(lr_start, swa_lr, pct, strategy)(at)
        assert np.all(np.isfinite(v))
    check(call, ['lr_start', 'swa_lr', 'pct_anneal', 'pcts', 'anneal_strategy'])
