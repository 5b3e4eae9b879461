"""Your own data and model in the runner: paired seeds, resume after a kill, branching, the run key, bad factories.

Small on purpose: a fastai `DataLoaders` of fastai tensor types (TensorImageBW inputs, TensorCategory targets), 1 thread."""
import importlib, sys, textwrap
import pandas as pd, pytest, torch
from torch import nn
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.torch_core import TensorImageBW, TensorCategory
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.optimizer import SGD
from ozcycle.runner import run_experiment, make_config, run_spec, RunLog, _Runner
from ozcycle.setting import Setting
from ozcycle.store import run_key

VALUES = ['experiment', 'arm', 'strategy', 'seed', 'epoch', 'train_loss', 'valid_loss', 'accuracy', 'lr', 'mom', 'diverged']

@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def toy_dls(seed):
    "160 noisy 4x4 images of 3 classes: shuffled by fastai's DataLoader (its own RNG), fastai tensor types"
    g = torch.Generator().manual_seed(1234)  # the data is fixed; only the order depends on the run's seed
    y = torch.randint(0, 3, (160,), generator=g)
    x = torch.randn(160, 1, 4, 4, generator=g) + y.view(-1, 1, 1, 1).float()
    ds = [(TensorImageBW(a), TensorCategory(b)) for a, b in zip(x, y)]
    return DataLoaders(DataLoader(ds[:120], bs=16, shuffle=True, drop_last=True), DataLoader(ds[120:], bs=20))

def toy_model(dls): return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))

def _run(out, **kw):
    return run_experiment(['refit', 'decay'], name='own', dataset=toy_dls, model=toy_model, n_epoch_base=2, n_epoch_cont=2, seeds=[0, 1],
                          lr_max=1e-2, out=out, quiet=True, device='cpu', **kw)

def test_same_seed_same_numbers(tmp_path):
    "Two calls (fresh stores) give identical numbers; the two seeds differ (the seed reaches weights and data order)"
    a, b = _run(tmp_path/'a'), _run(tmp_path/'b')
    pd.testing.assert_frame_equal(a.df[VALUES], b.df[VALUES])
    assert len(a.df) == 2 * (2 + 2 + 2 + 4)
    f = a.final.set_index(['arm', 'seed'])['valid_loss']
    assert f[('base', 0)] != f[('base', 1)]
    assert a.df['accuracy'].between(0, 1).all() and a.df['accuracy'].max() > 0.5  # argmax == y works on fastai's tensor types
    st = a.config['setting_spec']
    assert st['name'] == 'toy_dls' and st['dls']['name'].endswith('toy_dls') and st['model']['name'].endswith('toy_model')

def test_resume_after_kill_equals_uninterrupted(tmp_path, monkeypatch):
    "Runs killed after an epoch's checkpoint (base at epoch 1, a continuation at epoch 3, long at epoch 3) resume to the uninterrupted numbers"
    full = _run(tmp_path/'full')
    after_epoch, killed = RunLog.after_epoch, []
    def dying(self):
        after_epoch(self)
        e = self.epoch0 + self.epoch + 1
        k = (self.learn.n_epoch, e)  # (2, 1): base; (2, 3): the first continuation of seed 0; (4, 3): long
        if k in ((2, 1), (2, 3), (4, 3)) and k not in killed: killed.append(k); raise KeyboardInterrupt
    monkeypatch.setattr(RunLog, 'after_epoch', dying)
    for _ in range(4):
        try: res = _run(tmp_path/'killed'); break
        except KeyboardInterrupt: pass
    assert killed == [(2, 1), (2, 3), (4, 3)]
    pd.testing.assert_frame_equal(res.df[VALUES], full.df[VALUES])
    assert res.df.query("arm == 'long' and seed == 0")['epoch'].tolist() == [1, 2, 3, 4]
    assert res.df.query("arm == 'refit' and seed == 0")['train_loss'].tolist() == full.df.query("arm == 'refit' and seed == 0")['train_loss'].tolist()

def test_branching_from_base_checkpoint(tmp_path):
    "Continuations name the base run of their seed and train n_epoch_cont epochs after n_epoch_base; 'long' trains n_epoch_base + n_epoch_cont from scratch"
    res = _run(tmp_path)
    cfg = res.config
    for s in (0, 1):
        for arm in ('refit', 'decay'):
            assert run_spec(cfg, arm, s)['from'] == run_key(run_spec(cfg, 'base', s))
            assert res.df.query("arm == @arm and seed == @s")['epoch'].tolist() == [3, 4]
        assert 'from' not in run_spec(cfg, 'long', s)

def _module(tmp_path, name, body):
    (tmp_path/f'{name}.py').write_text(textwrap.dedent(body))
    sys.path.insert(0, str(tmp_path))
    try:
        if name in sys.modules: del sys.modules[name]
        return importlib.import_module(name)
    finally: sys.path.remove(str(tmp_path))

def test_key_changes_with_factory_code(tmp_path):
    "The run key holds the factories' code: a changed body trains afresh, a comment does not; the name counts too"
    def key(mod, **kw): return run_key(run_spec(make_config(dataset=Setting(mod.dls, toy_model, lr_max=1e-2, **kw), n_epoch_base=1, n_epoch_cont=1, seeds=1), 'base', 0))
    v1 = _module(tmp_path, 'own_v1', "def dls(seed): return seed + 1\n")
    k1 = key(v1)
    assert key(_module(tmp_path, 'own_v1', "def dls(seed):\n    # a comment\n    return seed + 1\n")) == k1
    assert key(_module(tmp_path, 'own_v1', "def dls(seed): return seed + 2\n")) != k1
    assert key(v1, name='other') != k1
    cfg = make_config(dataset='mnist1d', lr_max=1e-2, n_epoch_base=1, n_epoch_cont=1, seeds=1)
    st = run_spec(cfg, 'base', 0)['setting']   # a built-in setting is keyed by what it is, not by its name
    assert 'name' not in st and (st['dataset'], st['model'], st['opt']) == ('mnist1d', 'cnn1d', 'adam')

def test_bad_factories(tmp_path):
    "A factory that returns the wrong thing, or a missing model, raises a TypeError naming the argument"
    kw = dict(n_epoch_base=1, n_epoch_cont=1, seeds=1, out=tmp_path, quiet=True, device='cpu')
    with pytest.raises(TypeError, match=r"dls=.*returned list .*must return fastai DataLoaders"):
        run_experiment(['refit'], dataset=lambda seed: [1], model=toy_model, **kw)
    with pytest.raises(TypeError, match=r"model=.*returned str.*nn.Module or a fastai Learner"):
        run_experiment(['refit'], dataset=toy_dls, model=lambda dls: 'cnn', **kw)
    with pytest.raises(TypeError, match=r"model=None"):
        run_experiment(['refit'], dataset=toy_dls, **kw)
    with pytest.raises(TypeError, match=r"model=3 must be a callable"):
        run_experiment(['refit'], dataset=toy_dls, model=3, **kw)
    with pytest.raises(ValueError, match=r"dataset='nope' must be a setting"):
        run_experiment(['refit'], dataset='nope', **kw)

def test_model_factory_may_return_a_learner():
    "A model factory returning a Learner gives its model, loss and optimizer; explicit ones win; weights follow the seed"
    loss = CrossEntropyLossFlat()
    def learner_fn(dls): return Learner(dls, toy_model(dls), loss_func=loss, opt_func=SGD)
    learn = Setting(toy_dls, learner_fn).learner(0)
    assert learn.loss_func is loss and learn.opt_func is SGD and isinstance(learn.model, nn.Sequential)
    learn = Setting(toy_dls, toy_model).learner(0)
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)  # the default for a classifier of fastai's tensor types
    other = nn.MSELoss()
    assert Setting(toy_dls, learner_fn, loss_func=other).learner(0).loss_func is other
    w = [Setting(toy_dls, toy_model).learner(s).model[1].weight for s in (0, 0, 1)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])

from hypothesis import given, settings, strategies as st
_things = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                    st.sampled_from(['mnist1d', 'digits', 'mlp', toy_dls, toy_model, len, lambda s: None]))

@settings(max_examples=300, deadline=None)
@given(dataset=_things, model=_things, name=st.one_of(st.none(), st.text(max_size=4), st.integers()))
def test_fuzz_setting_arguments(dataset, model, name):
    "Any dataset/model/name: a config, or a TypeError/ValueError that names the argument; never another error"
    try:
        s = Setting(dataset, model, name=name) if name is not None else None
        make_config(dataset=s if s is not None else dataset, model=None if s is not None else model, n_epoch_base=1, n_epoch_cont=1, seeds=1)
    except (TypeError, ValueError) as e:
        assert any(a in str(e) for a in ('dataset=', 'model=', 'dls=', 'name=')), str(e)
