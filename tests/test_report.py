"""The main job, `ozcycle report` (what `make run` calls; `python -m ozcycle.report` is its alias), as a user runs it: help, bad flags, and one experiment
notebook end to end in quick mode, run twice: the second run reuses every finished run and trains nothing.
Each notebook execution starts a Jupyter kernel and imports torch/fastai (seconds), so only two are started."""
import json, os, re, subprocess, sys
from pathlib import Path
import nbformat
import pytest
from ozcycle.report import EXPERIMENTS, main, nbs_path

ROOT = Path(__file__).resolve().parent.parent

def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, '-m', 'ozcycle.report', *args], capture_output=True, text=True, timeout=900, cwd=cwd)

def call(capsys, *args):
    try: rc = main(list(args))
    except SystemExit as e: rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err

def test_makefile_runs_the_report():
    assert re.search(r'^run:.*\n\t\$\(BIN\)/ozcycle report --out reports$', (ROOT/'Makefile').read_text(), re.M)

def test_help(capsys):
    rc, out, _ = call(capsys, '--help')
    assert rc == 0
    out = ' '.join(out.split())   # argparse wraps the description
    for phrase in ['usage: ozcycle report', '--out', '--results', '--only', '--quick', '--jobs', 'summary.md',
                   'reuses every finished run', *EXPERIMENTS]:
        assert phrase in out, phrase

@pytest.mark.parametrize('args,msg', [(['--jobs', '0'], 'argument --jobs: must be >= 1, got 0'),
                                      (['--only', '14_sgdr'], "argument --only: invalid choice: '14_sgdr'"),
                                      (['--threads', 'two'], "argument --threads: invalid int value: 'two'")])
def test_bad_flags_exit_2(capsys, args, msg):
    rc, out, err = call(capsys, *args)
    assert (rc, out) == (2, '') and msg in err and 'usage: ozcycle report' in err

def test_experiment_notebooks_follow_the_layout():
    "Each experiment notebook: H1 + `>` question, the sections in order, one parameters cell with the shared names, a verdict cell"
    for nb in EXPERIMENTS:
        cells = nbformat.read(nbs_path()/f'{nb}.ipynb', as_version=4).cells
        md = '\n'.join(c.source for c in cells if c.cell_type == 'markdown')
        assert re.match(r'# \S.*\n+> \S', cells[0].source), nb
        heads = [h for h in re.findall(r'^## (\w+)', md, re.M) if h in ('Hypothesis', 'Setup', 'Run', 'Plot', 'Verdict')]
        assert heads[:5] == ['Hypothesis', 'Setup', 'Run', 'Plot', 'Verdict'], (nb, heads)
        assert '## The LR of each setting' in md, nb   # every notebook shows the LR range tests that set lr_max
        assert 'https://forums.fast.ai/t/following-up-on-fit-one-cycle/42516' in md, nb
        params = [c for c in cells if 'parameters' in c.metadata.get('tags', [])]
        assert len(params) == 1, nb
        for name in ['QUICK', 'SETTINGS', 'E0', 'E1', 'SEEDS', 'DEVICE', 'N_THREADS', 'OUT', 'NAME']:
            assert re.search(rf'^{name} = ', params[0].source, re.M), (nb, name)
        assert "os.environ.get('IN_TEST')" in params[0].source, nb
        assert sum('verdict' in c.metadata.get('tags', []) for c in cells) == 1, nb
        code = '\n'.join(c.source for c in cells if c.cell_type == 'code')
        assert not re.search(r'^(def|class) ', code, re.M), f"{nb} defines something the library should hold"

def test_quick_report_end_to_end_and_rerun_reuses_runs(tmp_path):
    out, results = tmp_path/'reports', tmp_path/'results'
    r = run('--quick', '--only', '10_refit', '--out', str(out), '--results', str(results))
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'KeyboardInterrupt' not in r.stderr and '[IPKernelApp] ERROR' not in r.stderr, r.stderr   # kernels shut down quietly
    assert sorted(p.name for p in out.iterdir()) == ['10_refit.html', '10_refit.ipynb', 'answer_map.csv', 'answer_map.png',
                                                     'summary.html', 'summary.md']  # no temporary files
    assert not list(nbs_path().glob('kernel*')), 'kernel socket files left in nbs/ (the kernel\'s working directory)'
    nb = nbformat.read(out/'10_refit.ipynb', as_version=4)
    assert nb.metadata.papermill.parameters['OUT'] == str(results/'quick')
    assert not any(o.get('output_type') == 'error' for c in nb.cells for o in c.get('outputs', []))
    summary = (out/'summary.md').read_text()
    settings = ['mnist1d-adam', 'mnist1d-sgd', 'digits-adam', 'digits-sgd']
    for s in settings: assert f'| refit | {s} | `refit_10` | refit | 4 | 4 | 1 |' in summary, s   # quick mode: 2 + 2 epochs, their compute (base + continuation), one seed, every setting
    assert '**No interval** with 1 paired seed' in summary                   # the verdict, computed on one seed
    assert '### 13_long_run' in summary and 'did not reach its verdict cell' in summary  # not run with --only
    # the legend names every arm of the table, with its definition
    table_arms = re.findall(r'^\| refit \| mnist1d-adam \| `(\w+)` \|', summary, re.M)
    assert table_arms == ['base', 'refit_3', 'refit_10', 'refit_30', 'long'], table_arms
    legend = summary.split('## Arms')[1].split('## Every arm')[0]
    assert re.findall(r'^  - `(\w+)`: ', legend, re.M) == table_arms
    assert '`refit_10`: after `base`, `learn.fit_refit(E1, lr_div=10)`, E1 = 2 epochs' in legend
    assert '`long`: `learn.fit_one_cycle(E0 + E1)` from scratch, 4 epochs' in legend
    # the answer map opens the summary: one column per setting, the refit row's best arm and its difference as in the table
    amap = summary.split('## The answer map')[1].split('## Design')[0]
    head = re.search(r'^\| strategy \| (.+) \|$', amap, re.M)[1].split(' | ')
    assert head == settings, head
    cell = re.search(r'^\| refit \| ([−+\d.]+) ', amap, re.M)[1].replace('−', '-')
    best = re.search(r'^\| refit \| [^|]+ `(\w+)`', amap, re.M)[1]
    row = re.search(rf'^\| refit \| mnist1d-adam \| `{best}` \| refit \| 4 \| 4 \| 1 \| [\d.]+ \| – \| ([+-][\d.]+) \|', summary, re.M)
    assert row and float(row[1]) == float(cell), (best, cell, row)
    assert 'Bonferroni-adjusted' in amap and '![The answer map' in amap
    # quick mode says so, in the summary and in the notebook's verdict footer
    assert '**Quick mode**: `refit/mnist1d-adam` 1 seed and 2+2 epochs on a 1,000/500-example (train/valid) slice of mnist1d' in summary
    verdict = summary.split('### 10_refit')[1].split('### 11_')[0]
    assert 'a smoke test, not evidence' in verdict
    cfg = json.loads((results/'quick'/'refit'/'digits-sgd'/'config.json').read_text())
    assert (cfg['n_epoch_base'], cfg['n_epoch_cont'], cfg['seeds'], cfg['dataset'], cfg['opt']) == (2, 2, [0], 'digits', 'sgd')
    assert 0 < cfg['lr_max'] == cfg['lr_fraction'] * cfg['edge']   # lr_max from the LR range tests' edge
    runs = sorted((results/'quick'/'_runs').glob('*/run.json'))
    assert len(runs) == 5 * 4  # base, three refits, long; one seed; four settings
    stamp = {p: p.stat().st_mtime_ns for p in runs}
    r = run('--quick', '--only', '10_refit', '--out', str(out), '--results', str(results))
    assert r.returncode == 0, r.stdout + r.stderr
    assert {p: p.stat().st_mtime_ns for p in sorted((results/'quick'/'_runs').glob('*/run.json'))} == stamp  # nothing retrained
    table = lambda t: t.split('## Every arm')[1].split('## Verdicts')[0]
    assert table((out/'summary.md').read_text()) == table(summary)  # the same numbers

def test_failed_notebook_is_still_written(tmp_path):
    "A notebook that fails: the executed notebook and page up to the failing cell, summary.md says so"
    from ozcycle.report import run_reports
    nbs = tmp_path/'nbs'; nbs.mkdir()
    for nb in EXPERIMENTS:  # stand-ins: 10 fails in its run cell
        cells = [nbformat.v4.new_code_cell('X = 1', metadata={'tags': ['parameters']}),
                 nbformat.v4.new_code_cell("raise RuntimeError('boom')" if nb == '10_refit' else 'X')]
        nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3',
                                                                                      'language': 'python'}}), nbs/f'{nb}.ipynb')
    res = run_reports(tmp_path/'out', tmp_path/'results', notebooks=['10_refit'], nbs=nbs, quick=True, jobs=1)
    (r,) = res['runs']
    assert r['error'] and 'boom' in r['error']
    assert (tmp_path/'out'/'10_refit.ipynb').exists() and 'boom' in (tmp_path/'out'/'10_refit.html').read_text()
    assert '**The notebook failed**' in (tmp_path/'out'/'summary.md').read_text()
