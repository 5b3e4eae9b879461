"""ozcycle.data: CIFAR-10 on a fake fastai folder, download errors, the MNIST-1D cache, loader order; cross-checks with fastai."""
import numpy as np, pytest, torch
from PIL import Image
from torch.utils.data import TensorDataset
from fastai.data.core import DataLoaders
from fastai.data.external import URLs
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
import fastai.callback.progress  # Learner.no_bar
import mnist1d.data
import ozcycle.data as od
from ozcycle.data import (ByteNormalize, DataUnavailableError, cifar_stats, epoch_generator, get_data, get_model,
                          load_cifar10, load_imagenette, load_mnist1d, random_crop_flip)

CLASSES = ['truck', 'airplane', 'cat']  # not sorted on purpose: labels follow the sorted folder names


def fake_image_folder(root, name='cifar10', valid='test', n=(4, 2), size=(32, 32)):
    "Write fastai's CIFAR layout: root/name/{train,test}/<class>/<i>_<class>.png and labels.txt; return path, pixels."
    rng, path, pixels = np.random.default_rng(0), root/name, {}
    for sub, k in zip(('train', valid), n):
        for c in CLASSES:
            (path/sub/c).mkdir(parents=True)
            for i in range(k):
                a = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(a).save(path/sub/c/f'{i}_{c}.png')
                pixels[(sub, c, i)] = a
    (path/'labels.txt').write_text('\n'.join(CLASSES) + '\n')
    return path, pixels


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    path, pixels = fake_image_folder(tmp_path/'fastai')
    calls = []
    def fake_untar(url, *args, **kwargs): calls.append(url); return path
    monkeypatch.setattr(od, 'untar_data', fake_untar)
    return path, pixels, calls, tmp_path/'cache'


def test_cifar10_decodes_fake_folder(fake_cifar):
    path, pixels, calls, cache = fake_cifar
    d = load_cifar10(cache=cache)
    assert calls == [URLs.CIFAR]
    assert d['vocab'] == ['airplane', 'cat', 'truck']
    assert d['x_train'].shape == (12, 3, 32, 32) and d['x_train'].dtype == torch.uint8
    assert d['x_valid'].shape == (6, 3, 32, 32) and d['y_valid'].dtype == torch.int64
    assert d['y_train'].tolist() == [0]*4 + [1]*4 + [2]*4
    # pixel-exact, in (class, file name) order, channels first
    assert torch.equal(d['x_train'][5], torch.from_numpy(pixels[('train', 'cat', 1)]).permute(2, 0, 1))
    assert torch.equal(d['x_valid'][4], torch.from_numpy(pixels[('test', 'truck', 0)]).permute(2, 0, 1))
    assert (cache/'cifar10-v1.pt').exists()


def test_cifar10_cache_hit_needs_no_download(fake_cifar, monkeypatch):
    _, _, calls, cache = fake_cifar
    first = load_cifar10(cache=cache)
    def offline(url, *a, **k): raise AssertionError('untar_data called although the tensors are cached')
    monkeypatch.setattr(od, 'untar_data', offline)
    again = load_cifar10(cache=cache)
    assert all(torch.equal(first[k], again[k]) for k in ('x_train', 'y_train', 'x_valid', 'y_valid'))


def test_cifar10_loader_augments_on_device_reproducibly(fake_cifar):
    *_, cache = fake_cifar
    d = load_cifar10(cache=cache)
    dls = get_data('cifar10', bs=4, seed=3, device='cpu', cache=cache)
    xb, yb = next(iter(dls.train))
    assert xb.shape == (4, 3, 32, 32) and xb.dtype == torch.float32 and len(dls.train) == 3
    # the same batch built by hand: permutation of (seed, epoch 0), crop+flip from stream 1, then normalize
    perm = torch.randperm(12, generator=epoch_generator(3, 0))[:4]
    want = ByteNormalize(*cifar_stats)(random_crop_flip(d['x_train'][perm], epoch_generator(3, 0, 1), pad=4))
    assert torch.equal(yb, d['y_train'][perm])
    assert torch.equal(xb, want)
    # validation: stored order, normalized, not augmented
    xv, yv = dls.valid.one_batch()
    assert torch.equal(xv, ByteNormalize(*cifar_stats)(d['x_valid'][:8])) and torch.equal(yv, d['y_valid'][:8])
    # the padding is zero before normalization: some augmented pixels are exactly the normalized black
    black = ByteNormalize(*cifar_stats)(torch.zeros(1, 3, 1, 1, dtype=torch.uint8)).flatten()
    batches = torch.cat([x for x, _ in dls.train])
    assert (batches[:, 0] == black[0]).any()


def test_cifar10_trains_in_fastai_learner(fake_cifar):
    *_, cache = fake_cifar
    dls = get_data('cifar10', bs=4, seed=0, device='cpu', cache=cache)
    torch.manual_seed(0)
    learn = Learner(dls, get_model('resnet9', n_out=len(dls.vocab), width=4), metrics=accuracy)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert len(learn.recorder.values) == 1 and np.isfinite(learn.recorder.values[0][:2]).all()


@pytest.mark.parametrize('name, loader', [('cifar10', load_cifar10), ('imagenette', load_imagenette)])
def test_download_failure_names_dataset_and_alternative(tmp_path, monkeypatch, name, loader):
    def no_network(url, *a, **k): raise ConnectionError('Temporary failure in name resolution')
    monkeypatch.setattr(od, 'untar_data', no_network)
    with pytest.raises(DataUnavailableError) as e: loader(cache=tmp_path)
    msg = str(e.value)
    assert repr(name) in msg and "dataset='mnist1d'" in msg and 'Temporary failure in name resolution' in msg
    assert isinstance(e.value, RuntimeError) and isinstance(e.value.__cause__, ConnectionError)
    assert list(tmp_path.iterdir()) == []  # no fallback data, no partial cache file
    with pytest.raises(DataUnavailableError): get_data(name, cache=tmp_path, device='cpu')


def test_imagenette_resizes_fake_folder(tmp_path, monkeypatch):
    path, _ = fake_image_folder(tmp_path, 'imagenette2-160', valid='val', n=(2, 1), size=(40, 60))
    monkeypatch.setattr(od, 'untar_data', lambda url, *a, **k: path)
    d = load_imagenette(size=16, cache=tmp_path/'cache')
    assert d['x_train'].shape == (6, 3, 16, 16) and d['x_valid'].shape == (3, 3, 16, 16)


@pytest.fixture
def count_make_dataset(monkeypatch):
    calls, real = [], mnist1d.data.make_dataset
    def counting(args, *a, **k): calls.append(dict(vars(args))); return real(args, *a, **k)
    monkeypatch.setattr(mnist1d.data, 'make_dataset', counting)
    return calls


def test_mnist1d_cache_keyed_by_arguments(tmp_path, count_make_dataset):
    calls = count_make_dataset
    a = load_mnist1d(n_train=60, n_valid=40, cache=tmp_path)
    b = load_mnist1d(n_train=60, n_valid=40, cache=tmp_path)
    assert len(calls) == 1 and all(torch.equal(a[k], b[k]) for k in ('x_train', 'y_train', 'x_valid', 'y_valid'))
    load_mnist1d(n_train=50, n_valid=50, cache=tmp_path)   # same total, other split: another entry
    load_mnist1d(n_train=60, n_valid=40, data_seed=0, cache=tmp_path)
    c = load_mnist1d(n_train=60, n_valid=40, shuffle_seq=True, cache=tmp_path)
    assert len(calls) == 4 and len(list(tmp_path.glob('mnist1d-*.pt'))) == 4
    assert calls[-1]['shuffle_seq'] is True and calls[-1]['num_samples'] == 100
    assert not torch.equal(c['x_train'], a['x_train'])
    assert [p for p in tmp_path.iterdir() if p.suffix == '.tmp'] == []


def test_mnist1d_matches_the_package_split(tmp_path):
    "n_train=4000, n_valid=1000 is the package's default split: the same tensors as make_dataset(get_dataset_args())."
    ref = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    d = load_mnist1d(n_train=4000, n_valid=1000, cache=tmp_path)
    assert torch.equal(d['x_train'][:, 0], torch.from_numpy(ref['x']).float())
    assert torch.equal(d['y_valid'], torch.from_numpy(ref['y_test']))


def test_mnist1d_default_valid_set_is_large():
    import inspect
    assert inspect.signature(load_mnist1d).parameters['n_valid'].default >= 4000
    args = od.mnist1d_args()
    assert args['num_samples'] == 8000 and args['seed'] == 42 and 'url' not in args


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    real_save = torch.save
    def dies_midway(obj, f, *a, **k):
        f.write(b'half a file'); raise KeyboardInterrupt
    monkeypatch.setattr(torch, 'save', dies_midway)
    with pytest.raises(KeyboardInterrupt): load_mnist1d(n_train=10, n_valid=10, cache=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(torch, 'save', real_save)
    assert load_mnist1d(n_train=10, n_valid=10, cache=tmp_path)['x_train'].shape == (10, 1, 40)


def order(dl, n_epochs):
    return [torch.cat([y for _, y in dl]) for _ in range(n_epochs)]


def test_loader_order_is_a_function_of_seed_and_epoch(tmp_path):
    kw = dict(name='mnist1d', bs=16, device='cpu', n_train=100, n_valid=20, cache=tmp_path)
    a, b, c = (get_data(seed=s, **kw) for s in (7, 7, 8))
    oa, ob, oc = order(a.train, 3), order(b.train, 3), order(c.train, 3)
    assert all(torch.equal(x, y) for x, y in zip(oa, ob))
    assert not any(torch.equal(x, y) for x, y in zip(oa, oc))
    assert not torch.equal(oa[0], oa[1])
    assert all(len(o) == 96 for o in oa)  # drop_last: 6 full batches of 16
    # resume: a fresh DataLoaders with the saved state continues exactly where the first one was
    state = a.state_dict()
    d = get_data(seed=0, **kw); d.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(order(a.train, 2), order(d.train, 2)))
    with pytest.raises(ValueError, match='loader'): d.load_state_dict({'loaders': []})


def test_same_seed_same_training(tmp_path):
    "Two fastai fits with the same seed and initial weights give identical histories on CPU."
    def run():
        dls = get_data('mnist1d', bs=32, seed=1, device='cpu', n_train=200, n_valid=100, cache=tmp_path)
        torch.manual_seed(0)
        learn = Learner(dls, get_model('cnn1d'), metrics=accuracy)
        with learn.no_bar(), learn.no_logging(): learn.fit(2, 3e-3)
        return learn.recorder.values
    assert run() == run()


def test_valid_loss_matches_fastai_default_loader(tmp_path):
    "Cross-check: the same model validated on our loader and on fastai's DataLoaders.from_dsets gives the same loss."
    ours = get_data('mnist1d', bs=32, device='cpu', n_train=200, n_valid=150, cache=tmp_path)
    (xt, yt), (xv, yv) = ours.train.dataset.tensors, ours.valid.dataset.tensors
    theirs = DataLoaders.from_dsets(TensorDataset(xt, yt), TensorDataset(xv, yv), bs=64, device='cpu')
    torch.manual_seed(0); model = get_model('cnn1d')
    res = []
    for dls in (ours, theirs):
        learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)
        with learn.no_bar(): res.append(learn.validate())
    assert res[0][0] == pytest.approx(res[1][0], rel=1e-5) and res[0][1] == pytest.approx(res[1][1])


def test_bad_names_list_the_valid_ones():
    with pytest.raises(ValueError, match='cifar10, digits, imagenette, mnist1d'): get_data('mnist')
    with pytest.raises(ValueError, match='cnn1d, mlp, resnet9, xresnet18'): get_model('resnet')
    with pytest.raises(ValueError, match='n_valid'): load_mnist1d(n_valid=0)


def test_fastai_interpretation_sees_every_class(tmp_path):
    "dls.vocab is a CategoryMap as in fastai's loaders, so ClassificationInterpretation gives a full confusion matrix"
    from fastai.learner import Learner
    from fastai.interpret import ClassificationInterpretation
    from fastai.data.transforms import CategoryMap
    from ozcycle.data import get_data, get_model
    dls = get_data('mnist1d', n_train=400, n_valid=200, cache=tmp_path, device='cpu')
    assert isinstance(dls.vocab, CategoryMap) and list(dls.vocab) == [str(i) for i in range(10)]
    learn = Learner(dls, get_model('cnn1d'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    interp = ClassificationInterpretation.from_learner(learn)
    cm = interp.confusion_matrix()
    assert cm.shape == (10, 10) and cm.sum() == 200
