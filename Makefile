# Needs only Python 3.10+ (python3.11 when present, else python3), pip, git and make;
# every target installs what it uses.
#   make demo     both organizations' jobs (environment dev) into a local Pelanor sandbox
#   make test     lint, type check and all tests, in parallel workers (what .ci/run runs)
#   make check    the inner loop: lint, type check and the tests that start no process
#   make lint     ruff and mypy only
#   make test-pythons  the end-to-end subset (PYTHONS_SUBSET) on Python 3.10, 3.12 and 3.13,
#                 each in its own venv (.venv-3.10, ...); CI runs it after make test
#   Tests run in PYTEST_WORKERS parallel processes (pytest-xdist; `auto`: one per CPU);
#   PYTEST_WORKERS=0 runs them in this process, one after another.
#   make definitions  rewrite plugins/*.yml and meltano.yml's parent plugins from the
#                 plugins' --about (after changing a setting)
#   make sandbox  the Pelanor sandbox (pelanor-sandbox) alone, in the foreground, for runs of
#                 the dev environment by hand (`.venv/bin/meltano --environment=dev run
#                 openai-costs-acme` in another terminal)
#   make bench    the benchmark on a generated 1,000,000-row month (several minutes)
#   make docs-settings  write docs/settings.md's settings tables from the plugins' --about
#   make clean    forget Meltano state, sandbox data and caches (keeps .venv)

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := test

# Python 3.10 or newer; 3.11 (the version tested) when installed.
PYTHON ?= $(shell command -v python3.11 || echo python3)
MELTANO_VERSION := 4.4.1
VENV := .venv
BIN := $(VENV)/bin
# Must match the dev environment in meltano.yml (dev token and integrations).
SANDBOX_CONFIG := {"tokens": ["dev-token-not-secret"], "integrations": {"int-acme": "org-acme", "int-globex": "org-globex"}}
ORGS := acme globex
# The packages our processes import: the plugins' and the sandboxes'.
PACKAGES := openai_costs tap_openai_costs target_pelanor sandboxes/local_sandboxes
# Where the sandbox listens: the dev environment's api_url, as Meltano resolves it. Its port
# is set in meltano.yml only; TARGET_PELANOR_API_URL=http://127.0.0.1:PORT overrides it for
# the sandbox and the loader alike.
DEV_API_URL = $(BIN)/meltano --environment=dev config print target-pelanor \
  | $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["api_url"])'

# pytest-xdist workers; tests of one xdist_group (a module's costly shared fixture) share one.
PYTEST_WORKERS ?= auto
PYTEST := -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

# The other Python versions `make test-pythons` runs (the suite runs on $(PYTHON), 3.11),
# found by .ci/find-python (pyenv's versions, else pythonX.Y on PATH), and the tests they
# run: both plugins end to end (exports and Costs API, tap | target into the sandbox),
# discovery and logs; not the Meltano or PyPI-installing tests.
OTHER_PYTHONS ?= 3.10 3.12 3.13
PYTHONS_SUBSET := tests/test_tap.py tests/test_target.py tests/test_cost_export.py \
  tests/test_costs_api.py tests/test_catalog.py tests/test_logs.py

.PHONY: demo sandbox sandbox-config test check bytecode lint bench docs-settings definitions test-pythons clean \
  install

install: $(VENV)/.installed

# The plugins and the local sandboxes (sandboxes/: pelanor-sandbox, openai-sandbox), both
# editable: the demo, the tests and the benchmark use the sandboxes; the wheel holds neither.
$(VENV)/.installed: pyproject.toml sandboxes/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]' -e ./sandboxes 'meltano==$(MELTANO_VERSION)'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint bytecode
	$(BIN)/python $(PYTEST)

# Each test that starts a process (a plugin, meltano, pip, Postgres) is skipped when it
# starts the first one (tests/conftest.py: --in-process-only); `make test` runs them.
check: lint bytecode
	$(BIN)/python $(PYTEST) --in-process-only -q -rfE

# Each plugin process the tests, the demo and the benchmark start reads our modules' bytecode,
# as it does from an installed wheel (pip compiles at install), instead of compiling them
# anew: with PYTHONDONTWRITEBYTECODE set, as on our development machines, Python never
# caches it itself, and each start would take about 40 ms longer than a user's.
bytecode: install
	$(BIN)/python -m compileall -q $(PACKAGES)

definitions: install
	$(BIN)/python scripts/plugin_definitions.py

test-pythons:
	@failed=""
	for version in $(OTHER_PYTHONS); do
	  python=$$(.ci/find-python "$$version")
	  venv=.venv-$$version
	  if [ ! -f "$$venv/.installed" ] || [ pyproject.toml -nt "$$venv/.installed" ] \
	    || [ sandboxes/pyproject.toml -nt "$$venv/.installed" ]; then
	    test -x "$$venv/bin/python" || "$$python" -m venv "$$venv"
	    "$$venv/bin/pip" install -q -e '.[dev]' -e ./sandboxes
	    touch "$$venv/.installed"
	  fi
	  "$$venv/bin/python" -m compileall -q $(PACKAGES)
	  echo "== Python $$("$$venv/bin/python" -c 'import platform; print(platform.python_version())'): $(PYTHONS_SUBSET)"
	  "$$venv/bin/python" $(PYTEST) -q -p no:cacheprovider -m 'not meltano' $(PYTHONS_SUBSET) \
	    || failed="$$failed $$version"
	done
	if [ -n "$$failed" ]; then echo "test-pythons: tests failed on Python$$failed" >&2; exit 1; fi

demo: install sandbox-config bytecode
	@export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
	$(BIN)/meltano install
	url=$$($(DEV_API_URL))
	$(BIN)/pelanor-sandbox --config .sandbox/config.json \
	  --data-dir .sandbox/data --url "$$url" > .sandbox/sandbox.log 2>&1 &
	sandbox=$$!
	trap 'kill $$sandbox 2>/dev/null || true' EXIT
	until grep -q listening .sandbox/sandbox.log; do
	  kill -0 $$sandbox 2>/dev/null || { cat .sandbox/sandbox.log >&2; exit 1; }
	  sleep 0.2
	done
	failed=""
	for org in $(ORGS); do  # one job per organization: a failure does not stop the next
	  $(BIN)/meltano --environment=dev run openai-costs-$$org || failed="$$failed $$org"
	done
	echo "== .sandbox/data/uploads.jsonl (all runs so far; make clean starts over)"
	cat .sandbox/data/uploads.jsonl 2>/dev/null || echo "(no uploads)"
	echo "== files stored by the sandbox, compared with the exports in samples/"
	shopt -s nullglob  # an organization with no stored file (its job failed) lists nothing
	for org in $(ORGS); do
	  for stored in .sandbox/data/files/int-$$org/*.csv; do
	    month=$$(basename "$$stored" .csv)
	    samples=(samples/$$org/cost_$$month-01_*.csv)
	    if [ $${#samples[@]} -eq 0 ]; then
	      echo "$$stored: no export of $$month in samples/$$org to compare with"
	      continue
	    fi
	    sample=$${samples[0]}
	    cmp -s "$$stored" "$$sample" && same="byte-identical to" || same="DIFFERS from"
	    echo "$$stored ($$(wc -c < "$$stored") bytes): $$same $$sample"
	  done
	done
	if [ -n "$$failed" ]; then echo "demo: failed:$$failed" >&2; exit 1; fi

sandbox: install sandbox-config
	@export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
	url=$$($(DEV_API_URL))
	exec $(BIN)/pelanor-sandbox --config .sandbox/config.json \
	  --data-dir .sandbox/data --url "$$url"

# The sandbox accepts the upload request's shape target-pelanor has in the dev environment
# (its upload_* settings), so a changed shape is tried end to end.
sandbox-config: install
	@export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
	mkdir -p .sandbox
	$(BIN)/meltano --environment=dev config print target-pelanor | $(BIN)/python -c \
	  'import json, sys; shape = {k: v for k, v in json.load(sys.stdin).items() if k.startswith("upload_")}; print(json.dumps(json.loads(sys.argv[1]) | shape))' \
	  '$(SANDBOX_CONFIG)' > .sandbox/config.json

bench: install bytecode
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The only writer of the settings tables in docs/settings.md; tests/test_docs.py fails when
# they differ from what the plugins report.
docs-settings: install
	$(BIN)/python scripts/docs_settings.py

clean:
	rm -rf .meltano .sandbox output .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
