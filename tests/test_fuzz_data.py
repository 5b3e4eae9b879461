"""Fuzz the public entry points of ozcycle.data and ozcycle.loaders: anything may be passed, and the only errors
allowed are a TypeError or ValueError whose message names the argument at fault; what is accepted must work."""
import atexit, re, shutil, tempfile
import numpy as np, pytest, torch
from hypothesis import HealthCheck, given, settings, strategies as st
from ozcycle.data import ByteNormalize, check_model_fits, get_data, make_model, random_crop_flip
from ozcycle.loaders import TensorDataLoaders, TensorLoader, epoch_generator

CACHE = tempfile.mkdtemp(prefix='ozcycle-fuzz-')  # one cache for every example: tiny datasets, made once each
atexit.register(shutil.rmtree, CACHE, True)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

def anything(*valid):
    "The valid values, plus what users get wrong: bools, floats, strings, None, negatives, numpy ints, huge numbers"
    return st.one_of(st.sampled_from(valid), st.integers(-3, 70), st.sampled_from([True, 1.5, '8', None, np.int64(8), 2**32, 2**70]))

def check_named(call, **named):
    "Run `call()`; a TypeError/ValueError must name one of `named`; any other exception fails the test"
    try: return call()
    except (TypeError, ValueError) as e:
        msg = str(e)
        assert any(re.search(rf'\b{k}\b', msg) for k in named), f"{type(e).__name__} names none of {sorted(named)}: {msg}"
        assert '\n' not in msg, f"not one line: {msg}"
        return None


@FAST
@given(name=st.sampled_from(['mnist1d', 'digits', 'mnist', 3]), bs=anything(None, 4, 16), val_bs=anything(None, 5),
       seed=anything(0, 2**32 - 1), device=st.sampled_from([None, 'cpu', 'meta', 'gpu', 7]),
       n_train=anything(10, 40), n_valid=anything(10, 25))
def test_get_data(name, bs, val_bs, seed, device, n_train, n_valid):
    kw = dict(n_train=n_train, n_valid=n_valid) if name == 'mnist1d' else dict(n_valid=n_valid) if name == 'digits' else {}
    if name == 'digits' and isinstance(n_valid, int) and n_valid > 1700: return  # nothing new to learn there
    dls = check_named(lambda: get_data(name, bs=bs, val_bs=val_bs, seed=seed, device=device, cache=CACHE, **kw),
                      name=1, bs=1, val_bs=1, seed=1, device=1, n_train=1, n_valid=1)
    if dls is None: return
    n = dls.train.n
    assert len(dls.train) == n//dls.train.bs >= 1                       # never an empty epoch
    xb, yb = dls.one_batch()
    assert len(xb) == len(yb) == dls.train.bs and yb.dtype == torch.int64
    assert torch.cat([y for _, y in dls.valid]).shape == (dls.valid.n,)  # validation sees every example once


@FAST
@given(name=st.sampled_from(['cnn1d', 'mlp', 'resnet9', 'resnet50', None]),
       key=st.sampled_from(['n_out', 'n_in', 'n_hidden', 'n_layers', 'channels', 'seq_len', 'width', 'c_in', 'scale', 'depth']),
       value=anything(1, 2, 3))
def test_make_model(name, key, value):
    if key == 'width' and isinstance(value, int) and value > 8: value = 8   # keep valid models small
    m = check_named(lambda: make_model(name, **{key: value}), name=1, **{key: 1})
    if m is not None: assert isinstance(m, torch.nn.Module) and sum(p.numel() for p in m.parameters()) > 0


@FAST
@given(n=st.integers(0, 12), bs=anything(1, 4), shuffle=anything(True, False), drop_last=anything(True, False),
       seed=anything(0, 5), vocab=st.sampled_from([None, list('abcdefghijkl'), ['a'], 'abc', 5]),
       y_kind=st.sampled_from(['int', 'float', 'negative', 'short', 'list']))
def test_tensor_loader(n, bs, shuffle, drop_last, seed, vocab, y_kind):
    x = torch.randn(n, 2)
    y = {'int': torch.arange(n) % 4, 'float': torch.arange(n)*1., 'negative': torch.arange(n) - 1,
         'short': torch.arange(max(n - 1, 0)), 'list': list(range(n))}[y_kind]
    dl = check_named(lambda: TensorLoader(x, y, bs=bs, shuffle=shuffle, drop_last=drop_last, seed=seed, vocab=vocab),
                     x=1, y=1, bs=1, shuffle=1, drop_last=1, seed=1, vocab=1)
    if dl is None: return
    got = torch.cat([yb for _, yb in dl])
    assert len(got) == (n//dl.bs*dl.bs if dl.drop_last else n) and len(dl) >= 1
    if not dl.drop_last: assert sorted(got.tolist()) == sorted(y.tolist())
    dl2 = check_named(lambda: dl.new(bs=bs, seed=seed), bs=1, seed=1)
    if dl2 is not None: assert (dl2.bs, dl2.seed, dl2.n, dl.bs) == (bs, seed, n, dl.bs)   # a copy; `dl` unchanged


@FAST
@given(bs=anything(2, 8), val_bs=anything(None, 3), seed=anything(0), norm=st.sampled_from([None, 3, ByteNormalize((.5,), (.25,))]))
def test_tensor_dataloaders(bs, val_bs, seed, norm):
    x, y = torch.randint(0, 255, (10, 1, 3, 3), dtype=torch.uint8), torch.arange(10) % 2
    dls = check_named(lambda: TensorDataLoaders.from_tensors(x, y, x, y, bs=bs, val_bs=val_bs, seed=seed, norm=norm, device='cpu'),
                      bs=1, val_bs=1, seed=1, norm=1)
    if dls is None: return
    xt, = dls.test_dl(x[:3]).one_batch()
    assert torch.equal(xt, dls.valid.one_batch()[0][:3])   # test items normalized as the validation batches


@FAST
@given(pad=anything(0, 2), flip=anything(True, False), mean=st.sampled_from([(.5,), (.5, .5), 2., 'a', (), (float('nan'),)]),
       std=st.sampled_from([(.25,), (0.,), -1., None]), seed=anything(0), epoch=anything(0), stream=anything(0, 1))
def test_augmentation_normalization_order(pad, flip, mean, std, seed, epoch, stream):
    x = torch.randint(0, 255, (3, 1, 4, 4), dtype=torch.uint8)
    out = check_named(lambda: random_crop_flip(x, torch.Generator().manual_seed(0), pad=pad, flip=flip), pad=1, flip=1)
    assert out is None or (out.shape == x.shape and out.dtype == x.dtype)
    bn = check_named(lambda: ByteNormalize(mean, std), mean=1, std=1)
    assert bn is None or torch.isfinite(bn(x)).all()
    g = check_named(lambda: epoch_generator(seed, epoch, stream), seed=1, epoch=1, stream=1)
    assert g is None or isinstance(g, torch.Generator)


@settings(max_examples=30, deadline=None)
@given(model=st.sampled_from(['cnn1d', 'mlp', 'resnet9', 'xresnet18', 'x']), dataset=st.sampled_from(['mnist1d', 'digits', 'y']),
       model_kw=st.sampled_from([None, {}, {'n_out': 3}, {'n_in': 64}, {'nope': 1}]))
def test_check_model_fits(model, dataset, model_kw):
    kw = dict(n_train=20, n_valid=10) if dataset == 'mnist1d' else {}
    state = torch.get_rng_state()
    check_named(lambda: check_model_fits(model, dataset, model_kw=model_kw, cache=CACHE, **kw), model=1, dataset=1, **dict.fromkeys(model_kw or {}))
    assert torch.equal(torch.get_rng_state(), state)
