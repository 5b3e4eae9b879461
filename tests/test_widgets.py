"""The schedule explorer (ozcycle.widgets): one figure however often a slider moves, plotted arrays equal to what the
fits record, the readout's DOM contract, one-line messages for settings that cannot run, and ipywidgets kept out of
ozcycle.all."""
import gc, math, os, re, subprocess, sys, textwrap, warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from fastai.test_utils import synth_learner
from fastai.torch_core import set_seed
from fastai.callback.progress import ProgressCallback
from fastcore.basics import noop

from ozcycle.schedules import one_cycle, one_cycle_moms, decay_only, sched_values, last_value
from ozcycle.fit import FitState, continuation_scheds
from ozcycle.widgets import (schedule_explorer, explore_learner, explorer_phases, explorer_calls, readout_values,
                             readout_html, EXPLORER_DEFAULTS, STRATEGIES)

ROOT = Path(__file__).resolve().parent.parent


def _run_py(code, timeout=240):
    "Run `code` in a fresh interpreter from the repo root; return stdout (fail on a non-zero exit)"
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    r = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def _n_figures():
    gc.collect()
    with warnings.catch_warnings():   # isinstance on every live object pokes deprecated module attributes
        warnings.simplefilter('ignore')
        return sum(isinstance(o, Figure) for o in gc.get_objects())


def test_twenty_moves_one_figure_and_exact_arrays():
    plt.close('all')
    nums0, figs0 = plt.get_fignums(), _n_figures()
    ex = schedule_explorer(strategy='refit')
    rng = np.random.default_rng(7)
    moves = []
    for i in range(20):
        k = ['pct_start', 'lr_max', 'div', 'div_final', 'moms[0]', 'moms[1]', 'n_epoch', 'n_batches', 'n_epoch_cont', 'lr_div'][i % 10]
        v = {'pct_start': round(float(rng.uniform(0, 1)), 2), 'lr_max': float(10 ** rng.uniform(-4, -1)),
             'div': float(10 ** rng.uniform(0, 2)), 'div_final': float(10 ** rng.uniform(1, 6)),
             'moms[0]': round(float(rng.uniform(0.85, 0.99)), 2), 'moms[1]': round(float(rng.uniform(0.7, 0.9)), 2),
             'n_epoch': int(rng.integers(1, 8)), 'n_batches': int(rng.integers(1, 30)), 'n_epoch_cont': int(rng.integers(1, 8)),
             'lr_div': float(10 ** rng.uniform(0, 2))}[k]
        moves.append((k, v))
        ex.sliders[k].value = v
    assert plt.get_fignums() == nums0                   # never a pyplot figure
    assert _n_figures() == figs0 + 1                    # the explorer's own figure, and only it
    assert ex.n_draws == 21 and ex.message.value == ''
    assert ex.image.value[:8] == b'\x89PNG\r\n\x1a\n'
    p = ex.params
    controls = {k: w.value for k, w in ex.sliders.items()}
    assert {k: controls[k] for k in dict(moves)} == dict(moves)
    n0, n1 = p['n_epoch'] * p['n_batches'], p['n_epoch_cont'] * p['n_batches']
    moms = p['moms']
    assert moms == (controls['moms[0]'], controls['moms[1]'], controls['moms[2]'])
    bs = {'lr': one_cycle(p['lr_max'], p['div'], p['div_final'], p['pct_start']), 'mom': one_cycle_moms(moms, p['pct_start'])}
    np.testing.assert_array_equal(ex.lines['base_lr'].get_ydata(), sched_values(bs['lr'], n0))
    np.testing.assert_array_equal(ex.lines['base_mom'].get_ydata(), sched_values(bs['mom'], n0))
    prev = FitState.planned(bs, p['n_epoch'], p['n_batches'], kind='one_cycle')
    cs = continuation_scheds('refit', prev, lr_div=p['lr_div'], div=p['div'], div_final=p['div_final'],
                             pct_start=p['pct_start'], moms=moms)
    np.testing.assert_array_equal(ex.lines['cont_lr'].get_xdata(), np.arange(n0, n0 + n1))
    np.testing.assert_array_equal(ex.lines['cont_lr'].get_ydata(), sched_values(cs['lr'], n1))
    np.testing.assert_array_equal(ex.lines['cont_mom'].get_ydata(), sched_values(cs['mom'], n1))


@pytest.mark.parametrize('settings', [dict(strategy='constant'), dict(strategy='constant', lr_from='last'),
                                      dict(strategy='constant', lr_from='value', lr=2e-4),
                                      dict(strategy='decay', kind='linear'), dict(strategy='decay', lr_from='last'),
                                      dict(strategy='long'), dict(strategy='none')])
def test_each_strategy_draws_its_schedules(settings):
    s = dict(EXPLORER_DEFAULTS, n_epoch=3, n_batches=7, n_epoch_cont=2, pct_start=0.3, **settings)
    ex = schedule_explorer(**{k: v for k, v in s.items() if k != 'lr' or s['lr_from'] == 'value'})
    n0, n1 = 21, 14
    bs = {'lr': one_cycle(1e-2, pct_start=0.3), 'mom': one_cycle_moms(pct_start=0.3)}
    last = last_value(bs['lr'], n0)
    st = s['strategy']
    if st == 'none': want = None
    elif st == 'long': want = sched_values(one_cycle(1e-2, pct_start=0.3), n0 + n1)
    else:
        lr = {'lr_max/lr_div': 1e-2 / s['lr_div'], 'last': last, 'value': s['lr']}[s['lr_from']]
        want = np.full(n1, lr) if st == 'constant' else sched_values(decay_only(lr, 1e5, s['kind']), n1)
    got = ex.lines['cont_lr'].get_ydata()
    if want is None: assert len(got) == 0
    else: np.testing.assert_allclose(got, want, rtol=1e-12)
    r = readout_values(**ex.params)
    assert (r['cont'] is None) == (st == 'none')
    if st == 'constant': assert r['cont']['start'] == r['cont']['peak'] == r['cont']['last'] == r['cont']['end']


class _Cells(HTMLParser):
    "Text of every element with a class attribute, keyed by class"
    def __init__(self):
        super().__init__(); self.cells, self._cls = {}, None
    def handle_starttag(self, tag, attrs): self._cls = dict(attrs).get('class')
    def handle_data(self, data):
        if self._cls: self.cells.setdefault(self._cls, []).append(data)
    def handle_endtag(self, tag): self._cls = None


def _cells(h):
    p = _Cells(); p.feed(h)
    return p.cells


def test_readout_dom_contract():
    ex = schedule_explorer()
    ex.set(pct_start=0.37, lr_max=3e-3)
    cells = _cells(ex.readout.value)
    r = readout_values(**ex.params)
    for ph in ('base', 'cont'):
        for k in ('start', 'peak', 'last', 'end'):
            assert cells[f'oz-{ph}-{k}'] == ['%.3e' % r[ph][k]], (ph, k, cells)
    s = one_cycle(3e-3, pct_start=0.37)
    assert cells['oz-base-peak'] == ['%.3e' % sched_values(s, 100).max()]
    assert cells['oz-base-last'] == ['%.3e' % last_value(s, 100)]
    assert 'oz-readout' in ex.readout._dom_classes and 'oz-plot' in ex.image._dom_classes
    assert 'oz-message' in ex.message._dom_classes
    assert all(w.description == k for k, w in ex.sliders.items())
    ex.set(strategy='none')
    cells = _cells(ex.readout.value)
    assert [cells[f'oz-cont-{k}'] for k in ('start', 'peak', 'last', 'end')] == [['—']] * 4


def test_controls_shown_per_strategy():
    ex = schedule_explorer()
    shown = lambda: [k for k in ('n_epoch_cont', 'lr_div', 'lr_from', 'lr', 'lr_start', 'kind') if ex.sliders[k].layout.display != 'none']
    want = {'none': [], 'refit': ['n_epoch_cont', 'lr_div'], 'constant': ['n_epoch_cont', 'lr_div', 'lr_from', 'lr'],
            'decay': ['n_epoch_cont', 'lr_div', 'lr_from', 'lr_start', 'kind'], 'long': ['n_epoch_cont']}
    for st in STRATEGIES:
        ex.set(strategy=st); assert shown() == want[st], st
    ex.set(strategy='constant', lr_from='last')
    assert shown() == ['n_epoch_cont', 'lr_from', 'lr'] and ex.sliders['lr'].disabled
    assert ex.sliders['lr'].value == pytest.approx(last_value(one_cycle(1e-2), 100))   # the LR the library resolved
    ex.set(lr_from='value', lr=5e-4)
    assert not ex.sliders['lr'].disabled and ex.lines['cont_lr'].get_ydata()[0] == 5e-4


@pytest.mark.parametrize('settings,words', [(dict(n_epoch=0), 'n_epoch=0'), (dict(n_epoch_cont=0), 'n_epoch_cont=0'),
                                            (dict(n_epoch=0, strategy='long'), 'n_epoch=0')])
def test_impossible_settings_give_one_line(settings, words):
    ex = schedule_explorer()
    before = (ex.image.value, ex.readout.value, ex.n_draws)
    assert ex.set(**settings) is False
    m = ex.message.value
    assert words in m and '\n' not in m and 'Traceback' not in m, m
    assert (ex.image.value, ex.readout.value, ex.n_draws) == before     # the last good drawing stays
    assert ex.set(n_epoch=2, n_epoch_cont=1) is True and ex.message.value == ''


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match='lr_maxx'): schedule_explorer(lr_maxx=1e-3)
    with pytest.raises(ValueError, match="strategy='cosine'"): explorer_calls(strategy='cosine')
    with pytest.raises(TypeError, match='prev='): explorer_phases(prev='not a state')
    with pytest.raises(ValueError, match='fit_state'): explore_learner(synth_learner())


def _learner(n_trn=4, **kw):
    learn = synth_learner(n_trn=n_trn, **kw)
    learn.remove_cb(ProgressCallback); learn.logger = noop
    return learn


def _run(learn, call):
    name, args, kw = call
    getattr(learn, name)(*args, **kw)
    return learn.fit_state.hps


@pytest.mark.parametrize('settings', [dict(strategy='refit', lr_div=4.), dict(strategy='constant'),
                                      dict(strategy='constant', lr_from='last'), dict(strategy='decay', kind='linear'),
                                      dict(strategy='decay', lr_from='value', lr_start=3e-3), dict(strategy='long')])
def test_drawn_equals_what_the_fits_record(settings):
    "Run the calls the explorer prints on a real Learner: the recorded LR and momentum are the drawn ones"
    s = dict(n_epoch=2, n_batches=4, n_epoch_cont=3, pct_start=0.3, lr_max=2e-2, div=10., moms=(0.95, 0.8, 0.9), **settings)
    ph, calls = explorer_phases(**s), explorer_calls(**s)
    set_seed(0)
    learn = _learner()
    rec = _run(learn, calls['base'])
    np.testing.assert_allclose(rec['lr'][:, 0], ph['base'].lr, rtol=1e-6)    # fastai keeps pct_start as float32
    np.testing.assert_allclose(rec['mom'][:, 0], ph['base'].mom, rtol=1e-6)
    if s['strategy'] == 'long': learn = _learner()                           # the control starts from scratch
    rec = _run(learn, calls['cont'])
    np.testing.assert_allclose(rec['lr'][:, 0], ph['cont'].lr, rtol=1e-6)
    np.testing.assert_allclose(rec['mom'][:, 0], ph['cont'].mom, rtol=1e-6)


def test_explore_learner_two_groups():
    "From a recorded two-group fit: base = the records, each group's continuation = what fit_refit records"
    two_groups = lambda m: [[m.a], [m.b]]
    set_seed(0)
    learn = _learner(splitter=two_groups)
    learn.fit_one_cycle(2, slice(1e-3, 1e-2), pct_start=0.4)
    exs = [explore_learner(learn, group=g, strategy='refit', lr_div=5.) for g in (0, 1)]
    for g, ex in enumerate(exs):
        np.testing.assert_array_equal(ex.lines['base_lr'].get_ydata(), learn.fit_state.hps['lr'][:, g])
        assert ex.message.value == '' and all(ex.sliders[k].disabled for k in ('lr_max', 'n_epoch', 'pct_start'))
    assert exs[0].params['lr_max'] == pytest.approx(1e-3) and exs[1].params['lr_max'] == pytest.approx(1e-2)
    assert exs[1].params['pct_start'] == pytest.approx(0.4)
    drawn = [ex.lines['cont_lr'].get_ydata() for ex in exs]
    name, args, kw = explorer_calls(**exs[1].params)['cont']
    assert name == 'fit_refit'
    getattr(learn, name)(*args, **kw)
    for g in (0, 1): np.testing.assert_allclose(learn.fit_state.hps['lr'][:, g], drawn[g], rtol=1e-6)
    assert explore_learner(learn, group=-1).group == -1
    with pytest.raises(ValueError, match='group=2'): explore_learner(learn, group=2)


def test_learner_without_cycle_peak_gives_message():
    "A plain `fit` records no cycle peak: the default continuation LR cannot be resolved, 'last' can"
    learn = _learner()
    learn.fit(1, 1e-2)
    ex = explore_learner(learn, strategy='constant')
    assert 'lr_max' in ex.message.value and '\n' not in ex.message.value
    assert ex.set(lr_from='last') is True and ex.message.value == ''
    np.testing.assert_allclose(ex.lines['cont_lr'].get_ydata(), learn.fit_state.lr_last[-1])


def test_ipywidgets_only_in_widgets_and_inline_backend_shows_one_widget():
    """ozcycle.all does not import ipywidgets; in an IPython shell with the inline backend (as Jupyter and Voila run
    it) the explorer is one widget output, and moving sliders adds no output and no figure"""
    srcs = [p.name for p in (ROOT / 'ozcycle').glob('*.py') if re.search(r'^\s*(import|from) ipywidgets', p.read_text(), re.M)]
    assert srcs == ['widgets.py'], srcs
    out = _run_py("""
        import sys
        import ozcycle.all, ozcycle.fit
        print('after all:', 'ipywidgets' in sys.modules)
        from execnb.shell import CaptureShell
        sh = CaptureShell()
        outs = [sh.run(c) for c in (
            'from ozcycle.widgets import schedule_explorer\\nex = schedule_explorer()\\nex',
            'for i in range(20): ex.sliders["pct_start"].value = i / 20',
            'import matplotlib.pyplot as plt\\nplt.plot([1, 2, 3]);',
            'ex.set(lr_max=3e-3); import matplotlib.pyplot as plt; plt.get_fignums()')]
        ex = sh.user_ns['ex']
        print([[o.get('output_type') for o in c] for c in outs])
        print('widget outputs:', sum('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for c in outs for o in c))
        print('images:', [sum('image/png' in o.get('data', {}) for o in c) for c in outs])
        print('draws:', ex.n_draws, 'errors:', [o for c in outs for o in c if o.get('output_type') == 'error'])
    """)
    assert 'after all: False' in out, out
    assert 'widget outputs: 1' in out, out
    assert 'images: [0, 0, 1, 0]' in out, out        # only the plain pyplot cell shows an image: its own
    assert 'draws: 22 errors: []' in out, out


def _defaults(f):
    import inspect
    return {k: p.default for k, p in inspect.signature(f).parameters.items() if p.default is not inspect.Parameter.empty}


def test_defaults_are_read_from_the_signatures_and_agree_everywhere():
    "One-cycle's and the continuations' defaults are written once (in signatures); every place that uses them agrees"
    from fastai.learner import Learner
    import ozcycle.fit  # noqa: F401  (patches fit_refit, fit_constant, fit_decay, fit_cycle onto Learner)
    from ozcycle.fit import continuation_defaults
    from ozcycle.schedules import decay_only, decay_only_moms, flat_cos, sgdr, wsd
    D = EXPLORER_DEFAULTS
    shape = {k: D[k] for k in ('div', 'div_final', 'pct_start')}
    fastai_moms = _defaults(Learner.__init__)['moms']
    assert shape == dict(div=25., div_final=1e5, pct_start=0.25) and D['moms'] == (0.95, 0.85, 0.95)  # fastai's documented ones
    assert {k: _defaults(Learner.fit_one_cycle)[k] for k in shape} == shape and fastai_moms == D['moms']  # fastai's own signatures
    assert {k: _defaults(one_cycle)[k] for k in shape} == shape and _defaults(one_cycle_moms)['moms'] == D['moms']
    for m in (Learner.fit_cycle, Learner.fit_refit):
        assert {k: _defaults(m)[k] for k in shape} == shape, m
    for m, s in ((Learner.fit_refit, 'refit'), (Learner.fit_constant, 'constant'), (Learner.fit_decay, 'decay')):
        assert _defaults(m)['lr_div'] == continuation_defaults(s)['lr_div'], m
    assert D['strategy'] == 'decay' and D['lr_div'] == continuation_defaults('decay')['lr_div']   # the explorer opens on the decay's own default
    assert _defaults(Learner.fit_decay)['kind'] == continuation_defaults('decay')['kind'] == _defaults(decay_only)['kind'] == D['kind']
    assert _defaults(Learner.fit_decay)['div_final'] == _defaults(decay_only)['div_final'] == D['div_final']
    assert _defaults(decay_only_moms)['moms'] == D['moms'][1:]        # one-cycle's second phase
    assert _defaults(flat_cos)['div_final'] == _defaults(wsd)['div_final'] == D['div_final'] and _defaults(wsd)['div'] == D['div']
    assert _defaults(flat_cos)['pct_start'] == _defaults(Learner.fit_flat_cos)['pct_start']
    assert _defaults(sgdr)['cycle_mult'] == _defaults(Learner.fit_sgdr)['cycle_mult']


def test_values_outside_a_slider_range_are_kept_not_clamped():
    "schedule_explorer(lr_max=3.0) used to draw and print lr_max=1.0 (the slider's end): the range widens instead"
    ex = schedule_explorer(lr_max=3.0, div=1e4, n_epoch=60, n_batches=3)
    assert ex.params['lr_max'] == 3.0 and ex.sliders['lr_max'].max >= math.log10(3.0)
    assert ex.params['div'] == 1e4 and ex.params['n_epoch'] == 60
    assert 'learn.fit_one_cycle(60, 3, div=10000,' in ex.code.value, ex.code.value
    np.testing.assert_array_equal(ex.lines['base_lr'].get_ydata(), sched_values(one_cycle(3.0, div=1e4), 180))
    assert ex.set(strategy='constant', lr_from='value', lr=1e-12) is True
    assert ex.params['lr'] == 1e-12 and ex.lines['cont_lr'].get_ydata()[0] == 1e-12
    assert ex.set(moms=(0.999, 0.5, 0.995)) is True and ex.params['moms'] == (0.999, 0.5, 0.995)
    with pytest.raises(ValueError, match=r'pct_start=1\.5'): ex.set(pct_start=1.5)    # invalid: refused, nothing changes
    assert ex.params['pct_start'] == 0.25


def test_moms_is_one_setting_in_the_calls():
    ex = schedule_explorer(moms=(0.95, 0.85, 0.9), strategy='decay')
    assert 'moms=(0.95, 0.85, 0.9)' in ex.code.value and 'moms=(0.85, 0.9)' in ex.code.value, ex.code.value
    assert ex.lines['base_mom'].get_ydata()[-1] == pytest.approx(last_value(one_cycle_moms((0.95, 0.85, 0.9)), 100))
    with pytest.raises(TypeError, match='mom_start'): schedule_explorer(mom_start=0.9)
    with pytest.raises(TypeError, match='E1'): explorer_calls(E1=3)
