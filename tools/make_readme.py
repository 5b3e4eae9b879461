"""Write README.md (and its images in README_files/) from nbs/index.ipynb.

nbdev 3's `nbdev-readme` renders with Quarto, which cannot be installed on machines without its downloader, so this
executes the notebook with nbclient and converts it with nbconvert. `--check` exits 1 if README.md's text is stale.
"""
import re, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient
from nbconvert import MarkdownExporter

root = Path(__file__).resolve().parent.parent

def _strip(nb):
    "Drop hidden cells and directive lines, as nbdev does for docs; a cell with `#| echo: false` shows only its markdown output"
    cells = []
    for c in nb.cells:
        lines = c.source.splitlines()
        if c.cell_type == 'code' and any(re.match(r'^#\|\s*hide\s*$', l) for l in lines): continue
        if c.cell_type == 'code' and any(re.match(r'^#\|\s*echo:\s*false\s*$', l) for l in lines):
            md = [o['data']['text/markdown'] for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
            if md: cells.append(nbformat.v4.new_markdown_cell(md[0]))
            continue
        c.source = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        cells.append(c)
    nb.cells = cells
    return nb

def render(execute=True):
    nb = nbformat.read(root/'nbs'/'index.ipynb', as_version=4)
    if execute: NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(root/'nbs')}}).execute()
    nbf = _strip(nb)
    body, res = MarkdownExporter().from_notebook_node(nbf, resources={'output_files_dir': 'README_files'})
    return body.strip() + '\n', res

def text_only(md): return re.sub(r'!\[[^\]]*\]\([^)]*\)', '![]()', md)

if __name__ == '__main__':
    if '--check' in sys.argv:
        body, _ = render(execute=False)
        cur = (root/'README.md').read_text()
        # Compare without outputs (those need executing): every source line of the notebook must be in README.md in order
        if not all(l in cur for l in text_only(body).splitlines() if l.strip()):
            sys.exit('README.md is stale: run `make readme`')
        print('README.md matches nbs/index.ipynb'); sys.exit(0)
    src = root/'reports'/'answer_map.csv'   # the answer map of the last `make run`: shipped with the package (learn.advise reads it)
    if src.exists(): (root/'ozcycle'/'answer_map.csv').write_bytes(src.read_bytes()); print(f'copied {src} to ozcycle/answer_map.csv')
    body, res = render()
    out = root/'README_files'
    if out.exists():
        for f in out.iterdir(): f.unlink()
    for name, data in res.get('outputs', {}).items():
        p = root/name; p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(data)
    (root/'README.md').write_text('<!-- Generated from nbs/index.ipynb by tools/make_readme.py (`make readme`): do not edit. -->\n\n' + body)
    print('wrote README.md')
