"""`ozcycle.advise`: the three kinds of fit reach three different recommendations; files (CSVLogger, run folders) and bad
files; a fit without a validation set; the evidence; the LR range test leaves the learner as it was; and, tried as a new
user would on a fastai fit of their own data, the printed call runs."""
import json, re, warnings
import numpy as np, pandas as pd, pytest, torch
import matplotlib.pyplot as plt
from torch import nn
import fastai.callback.schedule
from fastai.callback.progress import CSVLogger
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from ozcycle.advise import (advise, assess, trend, read_history, load_evidence, match_evidence, arm_call, recommend, schedule_state,
                            lr_range, Advice, AdviceList, EVIDENCE_COLUMNS, _place)
from ozcycle.cli import main
from ozcycle.data import get_data, mlp

def small_learner(n_train, n_hidden, bs=128, path=None):
    dls = get_data('mnist1d', n_train=n_train, n_valid=500, bs=bs, seed=0, device='cpu')
    set_seed(0)
    learn = Learner(dls, mlp(40, 10, n_hidden, 2), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    if path is not None: learn.path = path
    return learn

def fitted(learn, how, *args, **kw):
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore'); getattr(learn, how)(*args, **kw)
    return learn

@pytest.fixture(scope='module')
def three():
    return dict(improving=fitted(small_learner(1000, 100), 'fit', 8, 1e-3),
                plateau=fitted(small_learner(1000, 100), 'fit_one_cycle', 12, 1e-3),
                overfit=fitted(small_learner(100, 256, bs=25), 'fit_one_cycle', 20, 1e-2))

def evidence_rows(setting='mnist1d-mlp-adam', dataset='mnist1d', model='mlp', opt='adam', rows=()):
    "An answer map in the report's exact columns (made up for the tests: not measurements)"
    base = dict(setting=setting, dataset=dataset, model=model, opt=opt, lr_max=1e-2, n_arms=3, n_pairs=8, mean=0.8, conf=0.95,
                method='paired t, Bonferroni', n_comparisons=3, collapsed=False)
    out = []
    for control, strategy, arm, d, lo, hi, mark in rows:
        out.append({**base, 'control': control, 'strategy': strategy, 'arm': arm, 'diff_pp': d, 'lo_pp': lo, 'hi_pp': hi,
                    'lo_raw_pp': lo + .1, 'hi_raw_pp': hi - .1, 'mark': mark})
    return pd.DataFrame(out, columns=list(EVIDENCE_COLUMNS))

FIXTURE = [('base', 'refit', 'refit_3', 0.4, 0.1, 0.7, 'better'), ('base', 'decay', 'decay_1', 0.9, 0.2, 1.6, 'better'),
           ('base', 'constant', 'constant_10', -0.5, -1.0, -0.1, 'worse'), ('long', 'refit', 'refit_3', -0.2, -0.6, 0.2, 'cannot tell')]

@pytest.fixture
def evidence_csv(tmp_path):
    ev = pd.concat([evidence_rows(rows=FIXTURE), evidence_rows('digits-mlp-sgd', 'digits', 'mlp', 'sgd',
                                                                 [('base', 'constant', 'constant_10', 2.0, 1.0, 3.0, 'better')])])
    ev.to_csv(tmp_path/'answer_map.csv', index=False)
    return tmp_path/'answer_map.csv'

# --- the three cases -------------------------------------------------------------------------------------------------

def test_three_cases_three_recommendations(three):
    advs = {k: l.advise(evidence=False) for k, l in three.items()}
    assert [a.status for a in advs.values()] == ['improving', 'plateau', 'overfit']
    assert [a.action for a in advs.values()] == ['continue', 'stop', 'overfit']
    assert advs['improving'].call == "learn.fit_decay(8, lr_start='last')"
    assert advs['plateau'].call is None and advs['overfit'].call is None
    assert 'has not improved for' in str(advs['overfit']) and 'stop' in str(advs['plateau']).split('3. What to run next')[1]
    t = advs['improving'].assessment['trend']
    assert t['hi'] < 0 and t['lo'] <= t['slope'] <= t['hi']
    assert advs['overfit'].assessment['best_epoch'] < 10

def test_statements_give_their_numbers(three):
    a = three['plateau'].advise(evidence=False)
    h = three['plateau'].recorder.values
    t = trend([v[1] for v in h[-4:]], range(8, 12))
    assert f"{t['slope']:+.3g} per epoch" in str(a)                       # the same Theil-Sen numbers, recomputed here
    assert f"peak LR {1e-3:.3g}" in str(a) and 'annealed to near zero' in str(a)
    assert re.search(r'\d+% of that change came in its last 2 epochs', str(a))

def test_the_same_evidence_gives_the_same_answer_whatever_packaged(three, evidence_csv):
    # the notebook's three cases do not depend on the evidence: the user's own setting is not an answer-map setting
    for k, want in [('improving', 'continue'), ('plateau', 'stop'), ('overfit', 'overfit')]:
        assert three[k].advise(evidence=evidence_csv).action == want

def test_plot_closes_its_figure(three):
    for l in three.values():
        fig = l.advise(evidence=False).plot()
        assert len(fig.axes) in (2, 3) and not plt.fignum_exists(fig.number)

# --- the evidence --------------------------------------------------------------------------------------------------

def test_evidence_picks_the_best_arm_never_a_worse_one(evidence_csv, three):
    ev = load_evidence(evidence_csv)
    rows, covered = match_evidence(ev, 'adam', 'mnist1d', 'mlp')
    assert covered and list(rows['arm']) == ['decay_1', 'refit_3', 'constant_10'] and set(rows['control']) == {'base'}
    a_imp = assess(pd.DataFrame(dict(epoch=range(6), train_loss=2., valid_loss=[2., 1.8, 1.6, 1.4, 1.2, 1.0])))
    annealed = schedule_state(three['plateau'].fit_state)
    assert recommend(a_imp, annealed, rows, covered, 4)['cont']['call'] == 'learn.fit_decay(4, lr_div=1)'
    only_worse = rows[rows['mark'] == 'worse']
    assert recommend(a_imp, annealed, only_worse, covered, 4)['cont']['call'] == 'learn.fit_decay(4, lr_div=1)'   # the library's default, not a worse arm's call

def test_plateau_on_the_users_own_setting_follows_the_evidence(three, evidence_csv):
    a = three['plateau'].advise(evidence=evidence_csv, dataset='mnist1d', model='mlp')
    assert a.action == 'continue' and a.call == 'learn.fit_decay(12, lr_div=1)'
    assert 'that is your setting' in str(a) and '+0.90 pp [+0.20, +1.60]' in str(a)
    b = three['plateau'].advise(evidence=evidence_csv)
    assert b.action == 'stop' and 'not your setting' in str(b)

def test_evidence_for_another_optimizer_does_not_cover(evidence_csv, three):
    ev = load_evidence(evidence_csv)
    rows, covered = match_evidence(ev, 'rmsprop')
    assert len(rows) == 0 and not covered
    a = three['plateau'].advise(evidence=ev[ev['opt'] == 'sgd'])
    assert 'no setting with optimizer adam: it does not cover your case' in str(a)

def test_no_evidence_is_said(three):
    assert 'evidence: none available' in str(three['plateau'].advise(evidence=False))

def test_bad_evidence(tmp_path):
    with pytest.raises(FileNotFoundError, match='evidence='): load_evidence(tmp_path/'nope.csv')
    with pytest.raises(ValueError, match='no columns'): load_evidence(pd.DataFrame(dict(a=[1])))
    with pytest.raises(TypeError, match='evidence=3'): load_evidence(3)

def test_arm_names():
    assert arm_call('decay_1', 5) == 'learn.fit_decay(5, lr_div=1)'
    assert arm_call('refit_30', 2) == 'learn.fit_refit(2, lr_div=30)'
    assert arm_call('rewind_2', 2) is None and arm_call('decay_x', 2) is None

# --- files -----------------------------------------------------------------------------------------------------------

def test_csvlogger_file_reads_as_the_learner(tmp_path):
    learn = fitted(small_learner(1000, 100, path=tmp_path), 'fit_one_cycle', 12, 1e-3, cbs=CSVLogger())
    a_file, a_learn = advise(tmp_path/'history.csv', evidence=False), learn.advise(evidence=False)
    assert a_file.assessment['trend'] == a_learn.assessment['trend'] and a_file.action == a_learn.action
    assert 'no record of the schedule' in str(a_file)
    assert not plt.fignum_exists(a_file.plot().number)

def run_folder(tmp_path):
    rows = []
    for arm, strategy, vl in [('base', 'one_cycle', [2., 1.7, 1.5, 1.45, 1.44, 1.44]), ('refit', 'refit', [2., 1.8, 1.6, 1.4, 1.2, 1.0])]:
        for seed in (0, 1):
            for e, v in enumerate(vl):
                rows.append(dict(experiment='x', arm=arm, strategy=strategy, seed=seed, epoch=e, train_loss=v + .1, valid_loss=v + .01 * seed,
                                 accuracy=.5 + .01 * e, lr=1e-2 * (1 - e / 6) + 1e-7, mom=.9, time_s=1., diverged=False))
    d = tmp_path/'x'; d.mkdir()
    pd.DataFrame(rows).to_csv(d/'results.csv', index=False)
    (d/'config.json').write_text(json.dumps(dict(dataset='mnist1d', model='mlp')))
    return d

def test_run_folder_one_report_per_arm_and_seed(tmp_path, evidence_csv):
    d = run_folder(tmp_path)
    both = advise(d, evidence=evidence_csv)
    assert isinstance(both, AdviceList) and len(both) == 4
    assert [a.status for a in both] == ['plateau', 'plateau', 'improving', 'improving']
    one = advise(d/'results.csv', arm='refit', seed=1, evidence=evidence_csv)
    assert isinstance(one, Advice) and one.source.endswith('arm refit / seed 1')
    assert 'that is your setting' in str(one)                                   # config.json: mnist1d, mlp, adam
    assert one.schedule['kind'] == 'refit' and one.schedule['per'] == 'epoch'
    assert not plt.fignum_exists(one.plot().number)
    with pytest.raises(ValueError, match="arm='nope'"): advise(d, arm='nope')
    with pytest.raises(ValueError, match='seed=7'): advise(d, seed=7)

@pytest.mark.parametrize('text, msg', [('epoch,loss\n0,1\n', 'no columns train_loss, valid_loss'),
                                       ('epoch,train_loss\n0,1\n', 'a fit without a validation set records no valid_loss'),
                                       ('', 'not a CSV table'), ('\x00\x01\x02garbage', 'no columns')])
def test_bad_files(tmp_path, text, msg):
    (tmp_path/'h.csv').write_text(text)
    with pytest.raises(ValueError, match=msg): advise(tmp_path/'h.csv')

def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.csv: no such file'): advise(tmp_path/'nope.csv')
    with pytest.raises(FileNotFoundError, match='results.csv: no such file'): advise(tmp_path)
    with pytest.raises(TypeError, match='src=3'): advise(3)

def test_no_validation_set_is_a_clear_message_not_a_crash(tmp_path):
    x = torch.randn(64, 4); y = (x[:, 0] > 0).long()
    learn = Learner(DataLoaders(DataLoader(list(zip(x, y)), bs=16, shuffle=True), DataLoader([], bs=16)), nn.Linear(4, 2),
                    loss_func=nn.CrossEntropyLoss(), metrics=accuracy, path=tmp_path)
    fitted(learn, 'fit_one_cycle', 4, 1e-2, cbs=CSVLogger())
    for a in (learn.advise(), advise(tmp_path/'history.csv')):
        assert a.action == 'no validation' and a.call is None
        assert 'no validation set' in str(a) and 'Give the learner a validation set' in str(a)
        assert not plt.fignum_exists(a.plot().number)
    a = learn.advise(lr_find=True)   # nothing to place: no range test, no crash
    assert 'LR range test not run' in str(a)

def test_too_short():
    a = advise(pd.DataFrame(dict(epoch=[0, 1], train_loss=[1., .9], valid_loss=[1., .95])), evidence=False)
    assert a.action == 'cannot tell' and 'at least 3 epochs' in str(a)

# --- the LR range test -----------------------------------------------------------------------------------------------

def test_lr_find_leaves_the_learner_as_it_was(three):
    learn = three['improving']
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    vals, fs, hps, n_epoch = [list(v) for v in learn.recorder.values], learn.fit_state, [dict(h) for h in learn.opt.hypers], learn.n_epoch
    st0 = {k: {n: t.clone() for n, t in v.items() if isinstance(t, torch.Tensor)} for k, v in learn.opt.state.items()}
    a = learn.advise(lr_find=True, evidence=False)
    assert all(torch.equal(p, q) for p, q in zip(w0, learn.model.parameters()))
    assert learn.recorder.values == vals and learn.fit_state is fs and learn.n_epoch == n_epoch
    assert [dict(h) for h in learn.opt.hypers] == hps
    for k, v in learn.opt.state.items():
        for n, t in st0.get(k, {}).items(): assert torch.equal(v[n], t)
    assert a.lr_test is not None and 'LR range test from the current weights' in str(a)
    assert a.assessment['trend'] == learn.advise(evidence=False).assessment['trend']   # the report used the fit's own losses

def test_a_continuation_above_fastais_rule_starts_there(three):
    sched = schedule_state(three['plateau'].fit_state)   # peak 1e-3, a recorded cycle peak
    c = dict(strategy='decay', n_epoch=3, kwargs=dict(lr_div=1.), call='learn.fit_decay(3, lr_div=1)')
    c2, lines = _place(c, dict(edge=2e-3, safe=2e-4, valley=1e-4), None, sched)
    assert c2['call'] == 'learn.fit_decay(3, lr_div=5)' and "above fastai's rule" in lines[-1]
    c3, lines = _place(c, dict(edge=1e-1, safe=1e-2, valley=1e-3), None, sched)
    assert c3 is c and 'kept' in lines[-1]

# --- tried as a new user would ---------------------------------------------------------------------------------------

def own_learner(seed=0):
    "A fastai fit of one's own: synthetic tabular data, DataLoaders.from_dsets, a small MLP (no ozcycle data or models)"
    g = torch.Generator().manual_seed(seed)
    def data(n):
        x = torch.randn(n, 8, generator=g); y = (x[:, :4].sum(1) + .5 * torch.randn(n, generator=g) > 0).long()
        return list(zip(x, y))
    set_seed(seed)
    dls = DataLoaders.from_dsets(data(512), data(256), bs=32, device='cpu')
    return Learner(dls, nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)

@pytest.mark.parametrize('evidence, lr_find', [(False, False), ('fixture', False), (False, True)])
def test_a_new_user_runs_the_printed_call(evidence, lr_find, evidence_csv):
    learn = fitted(own_learner(), 'fit_one_cycle', 6, 3e-3)
    a = learn.advise(evidence=evidence_csv if evidence == 'fixture' else False, lr_find=lr_find)
    printed = str(a)
    calls = [l.split('run: ', 1)[1] for l in printed.splitlines() if 'run: ' in l]
    assert a.action == 'continue' and calls == [a.call]
    if evidence == 'fixture': assert a.call == 'learn.fit_decay(6, lr_div=1)' and 'not your setting' in printed
    n = len(learn.recorder.values)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore'); eval(calls[0], {'learn': learn})
    assert len(learn.recorder.values) == 6 and learn.fit_state.kind == a.cont['strategy'] and n == 6
    assert np.isfinite(learn.recorder.values[-1][1])

# --- the command line ------------------------------------------------------------------------------------------------

def test_cli_prints_the_same_report(tmp_path, capsys, evidence_csv):
    d = run_folder(tmp_path)
    assert main(['advise', str(d), '--arm', 'refit', '--seed', '0', '--evidence', str(evidence_csv)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == str(advise(d, arm='refit', seed=0, evidence=evidence_csv)).strip()

@pytest.mark.parametrize('make, msg', [(lambda p: None, 'nope.csv: no such file'),
                                       (lambda p: p.write_text('epoch,loss\n0,1\n'), 'no columns train_loss, valid_loss')])
def test_cli_bad_file_is_one_line_exit_2(tmp_path, capsys, make, msg):
    f = tmp_path/'nope.csv'; make(f)
    assert main(['advise', str(f)]) == 2
    cap = capsys.readouterr()
    assert cap.out == '' and msg in cap.err and len(cap.err.strip().splitlines()) == 1

def test_cli_no_validation(tmp_path, capsys):
    (tmp_path/'h.csv').write_text('epoch,train_loss,valid_loss,time\n0,1.0,None,00:01\n1,0.9,None,00:01\n2,0.8,None,00:01\n')
    assert main(['advise', str(tmp_path/'h.csv')]) == 0
    assert 'no validation set' in capsys.readouterr().out

# --- regressions and the extendable branch ---------------------------------------------------------------------------

def test_a_still_falling_noisy_curve_is_not_overfitting():
    "The 'long' arm of a real `ozcycle run --quick` (3+4 epochs): the valid loss still falls, the gap widens, the 3-epoch band includes zero"
    h = pd.DataFrame([[1, 2.2898, 2.204], [2, 2.0761, 1.8621], [3, 1.8308, 1.7296], [4, 1.6477, 1.5673], [5, 1.3956, 1.3551],
                      [6, 1.2709, 1.3596], [7, 1.1989, 1.3204]], columns=['epoch', 'train_loss', 'valid_loss'])
    a = assess(h)
    assert a['trend']['lo'] < 0 < a['trend']['hi'] and a['gap_trend']['lo'] > 0 and a['since_best'] == 0
    assert a['status'] == 'improving' and a['headline'].startswith('probably')

def test_an_extendable_fit_is_extended():
    learn = fitted(small_learner(1000, 100), 'fit', 8, 1e-3)
    fs = learn.fit_state
    fs.kind, fs.pre_cooldown = 'wsd', {'kept': True}   # what an extendable fit leaves (checked by name, not by import)
    a = learn.advise(evidence=False)
    assert a.action == 'continue' and a.call == 'learn.fit_extend(8)' and 'can be extended' in str(a)
    assert not plt.fignum_exists(a.plot().number)
    fs.pre_cooldown = None
    assert learn.advise(evidence=False).call == "learn.fit_decay(8, lr_start='last')"
