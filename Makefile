# The two commands of the README:
#   make book   build the HTML book into _build/html (executes every chapter)
#   make test   lint, unit tests, then every notebook cell with pytest --nbval; the
#               chapters it executed go into the book's cache, so a `make book` after
#               it only renders them
# Both create .venv and install everything on first use (Python 3.11+ and network,
# or MFKIT_DATA_DIR pointing at extracted MovieLens data).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A CPU build of torch, installed before the project: an unpinned torch is the
# multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: book check-book check-robust check-numerics test venv lab data lint format unit notebooks clean bench-scale bench-speed bench-accuracy bench-ranking bench-retrieval bench-threads

CHAPTERS := $(wildcard notebooks/[0-9]*.md)
# Where the book build (MyST-NB, execute_notebooks: cache) keeps executed chapters.
BOOK_CACHE := _build/.jupyter_cache

venv: $(STAMP)

# TorchRec is an optional extra (chapter 12's last section skips itself without it). Its
# wheel requires the CUDA fbgemm-gpu, so torchrec goes in with --no-deps after its other
# dependencies and fbgemm-gpu-cpu, the CPU build of the same operators: 1.8.0 is the
# release that loads against torch 2.13 (1.7.0 and 1.9.0 do not). Naming $(TORCH) again
# keeps pip from replacing torch. Where any step fails, the build goes on without it.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "mfkit needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev,book]'
	$(BIN)/python -m pip install --quiet "$(TORCH)" fbgemm-gpu-cpu==1.8.0 tensordict==0.15.3 \
	    torchmetrics==1.0.3 pyre-extensions tqdm \
	  && $(BIN)/python -m pip install --quiet --no-deps torchrec==1.8.0 \
	  && $(BIN)/python -c 'import torchrec' \
	  || echo "TorchRec could not be installed: chapter 12's TorchRec section will skip itself"
	touch $@

# JupyterLab in this environment opens the chapters' .md files as notebooks
# (jupytext), with their MyST directives rendered (jupyterlab-myst).
LABCONFIG := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json
$(LABCONFIG): .jupyter/labconfig/default_setting_overrides.json $(STAMP)
	mkdir -p $(dir $@)
	cp $< $@

LAB_PORT ?= 8888
lab: $(LABCONFIG) data    ## JupyterLab on the repository, at http://localhost:8888 (the book's launch buttons open chapters there)
	$(BIN)/jupyter lab --ServerApp.root_dir=. --ServerApp.port=$(LAB_PORT) --ServerApp.port_retries=0 \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

data: $(STAMP)            ## fetch ML-100K (or find it in $MFKIT_DATA_DIR) and check every file
	$(BIN)/mfkit data

book: data                ## the HTML book; warnings, broken references and failing cells fail it
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going
	@echo "Book written to _build/html/index.html"

check-book: $(STAMP)      ## after `make book`: the book in headless Chromium (Debian's chromium), its launch buttons in JupyterLab, its downloads in a fresh Python; screenshots in _build/screenshots
	$(BIN)/python -m pip install --quiet -e '.[browser]'
	$(BIN)/pytest -q browser_tests

lint: $(STAMP)
	$(BIN)/ruff check mfkit tests notebooks benchmarks browser_tests book/_ext
	$(BIN)/ruff format --check mfkit tests notebooks benchmarks browser_tests book/_ext
	$(BIN)/jupytext --pipe-fmt ipynb --check '$(BIN)/ruff check --config pyproject.toml --ignore E402 {}' $(CHAPTERS)
	$(BIN)/jupytext --pipe-fmt ipynb --check '$(BIN)/ruff format --check --config pyproject.toml {}' $(CHAPTERS)

format: $(STAMP)          ## format mfkit, tests and the notebooks' code cells with ruff
	$(BIN)/ruff format mfkit tests notebooks benchmarks browser_tests book/_ext
	$(BIN)/jupytext --pipe-fmt ipynb --pipe '$(BIN)/ruff format --config pyproject.toml {}' $(CHAPTERS)

unit: $(STAMP)
	$(BIN)/pytest -n 2

# pytest exits 5 when it collects nothing (a checkout without chapters): not a failure.
# Each chapter fails on a cell that raises or on a glue key its prose uses but no cell
# defined; a chapter that passes is stored in the book's cache (notebooks/conftest.py).
# Two chapters at a time (pytest-xdist; each keeps its cells in order in one kernel):
# NOTEBOOK_WORKERS=0 runs them one after another.
NOTEBOOK_WORKERS ?= 2
notebooks: data
	$(BIN)/pytest --nbval notebooks -n $(NOTEBOOK_WORKERS) --dist loadfile \
	  --book-cache $(BOOK_CACHE) || test $$? -eq 5

# Not part of `make test` (about seven times as long): every chapter quiet, beside a
# busy core (with each chapter's slowdown), on one core, beside a noisy neighbour,
# without Java and CI, and as the "no solutions" download; fails on any error or
# undefined glue key. A subset: `make check-robust RUNS="quiet,busy core"`.
check-robust: data        ## every chapter as another machine would run it: busy core, one core, noisy, no Java, downloads
	$(BIN)/python notebooks/check_robust.py $(if $(RUNS),--runs "$(RUNS)")

# Not part of `make test` (about an hour for every chapter): each chapter under another
# machine's numerics (one thread, torch's default or AVX2 kernels, every seed shifted by
# 1 and by 2), claims collected instead of raised; one table of every claim that failed.
# A subset: `make check-numerics CHAPTERS_TO_CHECK="7 9"`; runs: RUNS="seeds +1,one thread".
CHAPTERS_TO_CHECK ?=
RUNS ?=
check-numerics: data      ## every chapter as another CPU computes it: lists each claim that does not hold
	$(BIN)/python notebooks/check_numerics.py $(CHAPTERS_TO_CHECK) $(if $(RUNS),--runs "$(RUNS)") \
	  --report _build/check-numerics.md

test: lint unit notebooks

# Benchmarks (not part of `make test`): each prints a table and writes it to book/benchmarks/.
bench-scale: $(STAMP)     ## seconds per epoch and peak memory at 0.1M, 1M and 10M synthetic ratings
	$(BIN)/python benchmarks/scale.py

bench-speed: data         ## time for mfkit's ALS to reach Surprise SVD's RMSE on u1..u5
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/speed.py

bench-accuracy: data      ## RMSE/MAE of mfkit's rating models and Surprise's on u1..u5
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/accuracy.py

bench-ranking: data       ## HR@10/NDCG@10 of every ranking model, tuned on validation, refit from 3 seeds, paired against the leader (hours; GROUPS=sequences runs one group)
	$(BIN)/python benchmarks/ranking.py $(if $(GROUPS),--groups $(GROUPS))

bench-threads: $(STAMP)   ## thread settings beside a busy core: default, OMP_WAIT_POLICY=PASSIVE, one thread
	$(BIN)/python benchmarks/threads.py

bench-retrieval: $(STAMP) ## recall@10 and queries/s of faiss's IVF and HNSW against exact torch top-k, 100K and 1M synthetic items
	$(BIN)/python benchmarks/retrieval.py

clean:
	rm -rf _build .pytest_cache .ruff_cache
