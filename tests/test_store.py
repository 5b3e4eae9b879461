"""Run keys change only when the numbers can: the code fingerprint on ozcycle's real training modules."""
import ast, inspect
import ozcycle.schedules, ozcycle.store
from ozcycle.store import code_fingerprint, TRAINING_MODULES


def _edit(src, fn_name, change):
    "`src` with function `fn_name` changed by `change(node)`, re-rendered from its syntax tree"
    tree = ast.parse(src)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == fn_name)
    change(node)
    return ast.unparse(tree)


def _srcs():
    import importlib
    return {m: inspect.getsource(importlib.import_module(f'ozcycle.{m}')) for m in TRAINING_MODULES
            if importlib.util.find_spec(f'ozcycle.{m}') is not None}


def test_docstring_and_layout_edits_keep_the_key():
    srcs = _srcs()
    def redoc(node): node.body[0].value.value = 'A different docstring, reworded.'
    edited = {**srcs, 'schedules': _edit(srcs['schedules'], 'one_cycle', redoc)}
    assert edited['schedules'] != srcs['schedules']
    assert code_fingerprint(edited) == code_fingerprint(srcs)
    # re-rendering a whole module (comments dropped, every line re-formatted) keeps it too
    assert code_fingerprint({**srcs, 'runner': ast.unparse(ast.parse(srcs['runner']))}) == code_fingerprint(srcs)


def test_a_changed_default_changes_the_key():
    srcs = _srcs()
    def bump(node):
        d = next(d for d in node.args.defaults if isinstance(d, ast.Constant) and isinstance(d.value, (int, float)))
        d.value = d.value * 2 + 1   # e.g. one_cycle's div=25 -> 51
    changed = {**srcs, 'schedules': _edit(srcs['schedules'], 'one_cycle', bump)}
    assert code_fingerprint(changed) != code_fingerprint(srcs)


def test_moving_a_function_between_training_modules_keeps_the_key():
    srcs = _srcs()
    tree = ast.parse(srcs['schedules'])
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'one_cycle')
    tree.body.remove(fn)
    moved = {**srcs, 'schedules': ast.unparse(tree), 'store': srcs['store'] + '\n\n' + ast.unparse(fn) + '\n'}
    assert code_fingerprint(moved) == code_fingerprint(srcs)


def test_editing_a_plot_or_the_results_class_keeps_the_key():
    srcs = _srcs()
    tree = ast.parse(srcs['runner'])
    res = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == 'Results')
    plot = next(n for n in res.body if isinstance(n, ast.FunctionDef) and n.name == 'plot')
    plot.body.insert(0, ast.parse('print("a changed plot")').body[0])
    assert code_fingerprint({**srcs, 'runner': ast.unparse(tree)}) == code_fingerprint(srcs)
