# ozcycle: the README's commands.
#   make run    set up .venv if needed, then run the four experiments on MNIST-1D and write reports/
#   make test   set up .venv if needed, check the export, run every notebook's tests and tests/
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ozcycle-installed

.PHONY: run test export readme clean-venv

# (Re)install only when .venv is missing or pyproject.toml/constraints.txt changed since the last install.
# constraints.txt holds the exact torch/torchvision of this environment; pyproject.toml only the range ozcycle needs.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ozcycle report --out reports

test: $(STAMP)
	@$(BIN)/python tools/check_export.py
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/python -m pytest -q tests

export: $(STAMP)
	$(BIN)/nbdev-export
	$(BIN)/python tools/make_readme.py

readme: $(STAMP)
	$(BIN)/python tools/make_readme.py

# make explore: the schedule explorer (nbs/explorer.ipynb) as a page served by Voila on 127.0.0.1 only.
# Another port: make explore EXPLORE_PORT=8870
EXPLORE_PORT ?= 8866
.PHONY: explore
explore: $(STAMP)
	@echo "Schedule explorer: open http://127.0.0.1:$(EXPLORE_PORT)/ in a browser (Ctrl-C stops it)"
	$(BIN)/voila nbs/explorer.ipynb --no-browser --Voila.ip=127.0.0.1 --port=$(EXPLORE_PORT) --Voila.port_retries=0

clean-venv:
	rm -rf $(VENV)
