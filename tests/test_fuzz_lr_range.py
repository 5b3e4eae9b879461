"""Fuzz tests of every public entry point of `ozcycle.lr_range`: whatever it is given, it either works or raises a
`TypeError`/`ValueError` whose message names the argument; a range test that works leaves the learner as it was."""
import json, math
import numpy as np
import torch
from hypothesis import given, settings, HealthCheck, strategies as st
from ozcycle.data import make_model
from ozcycle.fastai_compat import lean_learner
from ozcycle.loaders import TensorDataLoaders
from ozcycle.lr_range import RangeTest, lr_range_test, first_divergence, Divergence

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(1e-8, 1e3), st.integers(-10, 10),
                     st.integers(-2**70, 2**70), st.sampled_from([np.float64(0.5), np.float32(2.), np.int64(3), np.bool_(True), -0.]))
_junk = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.lists(st.floats(), max_size=3), st.just(object()),
                  st.just(np.array([1., 2.])), st.builds(torch.tensor, st.floats(-1e3, 1e3)), st.just(slice(1)))
_value = st.one_of(_numbers, _junk)


def _names_an_argument(e, names):
    return isinstance(e, (TypeError, ValueError)) and any(n in str(e) for n in names)


def _learner():
    g = torch.Generator().manual_seed(0)
    dls = TensorDataLoaders.from_tensors(torch.randn(24, 4, generator=g), torch.randint(0, 3, (24,), generator=g),
                                         torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g), bs=8, device='cpu')
    torch.manual_seed(0)
    return lean_learner(dls, make_model('mlp', n_in=4, n_out=3, n_hidden=8, n_layers=1))

LEARN = _learner()
W0 = {k: v.clone() for k, v in LEARN.model.state_dict().items()}

_run_args = dict(start_lr=st.one_of(_value, st.floats(1e-6, 1.)), end_lr=st.one_of(_value, st.floats(1e-3, 1e4)),
                 num_it=st.one_of(_junk, st.floats(allow_nan=True), st.integers(-2, 5), st.just(10**7)),   # no long runs
                 beta=st.one_of(_value, st.floats(0, 1)),
                 div_thresh=st.one_of(_value, st.floats(0.5, 10)), seed=st.one_of(_value, st.integers(-1, 2**32)),
                 mom=st.one_of(_value, st.floats(0, 1)))


_ARGS = [f'{k}=' for k in _run_args]   # start_lr alone can be refused by naming end_lr (its default below start_lr)


@settings(FUZZ, max_examples=100)   # each valid example trains a few steps
@given(kw=st.fixed_dictionaries({}, optional=_run_args))
def test_fuzz_lr_range_test(kw):
    try: rt = LEARN.lr_range_test(**kw)
    except Exception as e:
        assert _names_an_argument(e, _ARGS), repr(e)
    else:
        assert 1 <= len(rt.lrs) <= rt.num_it and rt.lrs[0] == rt.start_lr and all(l > 0 for l in rt.lrs)
        assert rt.edge is None or rt.edge == rt.lrs[-1]
        assert RangeTest.from_dict(json.loads(json.dumps(rt.to_dict(), allow_nan=False))).to_dict() == rt.to_dict()
    assert all(torch.equal(v, LEARN.model.state_dict()[k]) for k, v in W0.items()) and LEARN.opt is None
    assert LEARN.dls.train.epoch == 0


_loss_lists = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 10)), min_size=0, max_size=6)


@FUZZ
@given(lrs=st.one_of(_loss_lists, _value), losses=st.one_of(_loss_lists, _value), smoothed=st.one_of(_loss_lists, _value),
       kw=st.fixed_dictionaries({}, optional=_run_args))
def test_fuzz_rangetest(lrs, losses, smoothed, kw):
    try: r = RangeTest(lrs, losses, smoothed, **kw)
    except Exception as e:
        assert _names_an_argument(e, ['lrs', 'losses', 'smoothed'] + _ARGS), repr(e)
        return
    assert r.edge_step == first_divergence(r.smoothed, r.div_thresh) and r.diverged == (r.edge is not None)
    assert len(r.curve) == len(r.lrs) and repr(r).startswith('RangeTest(')
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert json.dumps(RangeTest.from_dict(d).to_dict()) == json.dumps(r.to_dict())


_R = RangeTest([1e-3, 1e-2, 1e-1], [2., 1., 9.], [2., 1., 5.], 1e-3, 1., 3)


@FUZZ
@given(fraction=st.one_of(_value, st.floats(0, 1)))
def test_fuzz_lr_max(fraction):
    try: v = _R.lr_max(fraction)
    except Exception as e:
        assert _names_an_argument(e, ['fraction=']), repr(e)
        return
    assert 0 < v <= _R.edge and math.isclose(v, float(fraction) * _R.edge)


_keys = st.sampled_from(['lrs', 'losses', 'smoothed', 'edge', 'diverged', 'start_lr', 'end_lr', 'num_it', 'beta',
                         'div_thresh', 'seed', 'mom', 'lr', 'x'])


@FUZZ
@given(d=st.one_of(_value, st.dictionaries(_keys, st.one_of(_value, _loss_lists), max_size=8),
                   st.builds(lambda k, v: {**_R.to_dict(), k: v}, _keys, st.one_of(_value, _loss_lists))))
def test_fuzz_from_dict(d):
    try: r = RangeTest.from_dict(d)
    except Exception as e:
        names = ['d=', 'd[', 'd lacks', 'RangeTest.from_dict', 'lrs', 'losses', 'smoothed'] + [f'{k}=' for k in (d if isinstance(d, dict) else {})]
        assert _names_an_argument(e, names), repr(e)
        return
    assert r.edge == d.get('edge', r.edge) and r.diverged == d.get('diverged', r.diverged)


@FUZZ
@given(s=_loss_lists, div_thresh=st.one_of(_value, st.floats(1, 10)))
def test_fuzz_divergence(s, div_thresh):
    try: i = first_divergence(s, div_thresh)
    except Exception as e:
        assert _names_an_argument(e, ['div_thresh=']), repr(e)
        return
    if i is not None:
        best = min([x for x in s[:i + 1] if math.isfinite(x)], default=math.inf)
        assert not math.isfinite(s[i]) or s[i] > float(div_thresh) * best
