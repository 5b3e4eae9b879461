"""Fuzz `ozcycle.advise`'s public entry points with hypothesis: any input gives a result or a `TypeError`/`ValueError`
whose message names the argument (or the table's missing columns); never another exception, never a NaN in a report."""
import math, re
import numpy as np, pandas as pd
import matplotlib.pyplot as plt
from hypothesis import given, settings, strategies as st, HealthCheck
from ozcycle.advise import trend, assess, advise, read_history, load_evidence, match_evidence, arm_call, schedule_state, EVIDENCE_COLUMNS

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
anything = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                     st.lists(st.floats(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
loss = st.one_of(st.floats(-10, 100), st.just(float('nan')), st.just(float('inf')), st.none())

def raises_naming(f, *names, missing=False):
    "Call `f`; a TypeError/ValueError (or, with `missing`, a FileNotFoundError) must name one of `names`"
    try: return f()
    except (TypeError, ValueError) + ((FileNotFoundError,) if missing else ()) as e:
        assert any(n in str(e) for n in names), (names, str(e))
        return None

@FAST
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12), anything)
def test_trend(y, conf):
    r = raises_naming(lambda: trend(y, conf=conf if not isinstance(conf, bool) else 0.95), 'conf', 'y has', 'x holds', 'x has')
    if r is not None:
        assert all(math.isfinite(r[k]) or not np.isfinite(np.asarray(y, float)).all() for k in ('slope',))
        assert r['lo'] <= r['slope'] + 1e-9 * (1 + abs(r['slope'])) and r['slope'] <= r['hi'] + 1e-9 * (1 + abs(r['slope']))

@st.composite
def histories(draw):
    n = draw(st.integers(0, 15))
    df = pd.DataFrame(dict(epoch=range(n), train_loss=[draw(loss) for _ in range(n)], valid_loss=[draw(loss) for _ in range(n)]))
    if draw(st.booleans()): df['accuracy'] = [draw(st.floats(0, 1)) for _ in range(n)]
    if draw(st.booleans()): df['lr'] = [draw(st.one_of(st.floats(0, 1), st.just(float('nan')))) for _ in range(n)]
    if draw(st.booleans()): df = df.drop(columns=[draw(st.sampled_from(['epoch', 'train_loss', 'valid_loss']))])
    return df

@FAST
@given(histories(), st.one_of(st.none(), st.integers(-2, 20), anything), st.one_of(st.just(0.005), anything))
def test_assess(h, n_last, min_rel):
    r = raises_naming(lambda: assess(h, n_last=n_last, min_rel=min_rel), 'n_last', 'min_rel', 'hist has no column', 'epoch')
    if r is not None:
        assert r['status'] in ('improving', 'plateau', 'overfit', 'too short', 'no validation')
        assert 'nan' not in ' '.join([r['headline'], *r['lines']]).replace('nanoseconds', '')

@FAST
@given(histories(), st.one_of(st.none(), st.integers(-1, 30), anything))
def test_advise_on_a_table(h, n_epoch):
    a = raises_naming(lambda: advise(h, evidence=False, n_epoch=n_epoch), 'n_epoch', 'has no column', 'no rows', 'x has', 'y has')
    if a is not None:
        text = str(a)
        assert a.action in ('continue', 'stop', 'overfit', 'cannot tell', 'no validation')
        assert (a.call is None) == (a.action != 'continue')
        if a.call is not None: assert f"run: {a.call}" in text
        plt.close(a.plot())

@FAST
@given(st.text(max_size=60))
def test_read_history_any_text(tmp_path_factory, text):
    p = tmp_path_factory.mktemp('h') / 'h.csv'
    p.write_text(text)
    raises_naming(lambda: read_history(p), str(p))

@FAST
@given(st.text(max_size=15), anything)
def test_arm_call(arm, n):
    r = raises_naming(lambda: arm_call(arm, n), 'n_epoch')
    if r is not None: assert re.fullmatch(r'learn\.fit_(refit|constant|decay)\(\d+, lr_div=[\d.e+]+\)', r)

@FAST
@given(st.lists(st.tuples(st.sampled_from(['base', 'long', 'x']), st.sampled_from(['adam', 'sgd', 'ADAM']), st.sampled_from(['mnist1d', 'digits']),
                          st.text(max_size=12), st.floats(allow_nan=True), st.sampled_from(['better', 'worse', 'cannot tell', 'no pairs'])), max_size=6),
       st.sampled_from([None, 'adam', 'sgd', 'rmsprop']), st.sampled_from([None, 'mnist1d', 'digits']))
def test_match_evidence(rows, opt, dataset):
    ev = pd.DataFrame([dict(setting=f's-{d}-{o}', dataset=d, model='mlp', opt=o, control=c, strategy='decay', arm=a, n_pairs=4, diff_pp=v,
                            lo_pp=v - 1, hi_pp=v + 1, conf=.95, mark=m) for c, o, d, a, v, m in rows], columns=list(EVIDENCE_COLUMNS))
    ev = load_evidence(ev)
    got, covered = match_evidence(ev, opt, dataset, 'mlp')
    assert set(got['control']) <= {'base'} and got['setting'].nunique() <= 1
    if covered: assert (got['dataset'] == dataset).all()

@FAST
@given(anything)
def test_load_evidence_bad_types(ev):
    raises_naming(lambda: load_evidence(ev), 'evidence', missing=True)

@FAST
@given(histories())
def test_schedule_state_from_a_table(h):
    s = schedule_state(None, h)
    assert s['kind'] is None or s['lr_max'] is not None
    assert all('nan' not in l for l in s['lines'])
