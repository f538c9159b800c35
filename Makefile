# Konsumerator developer entry points. Every target installs what it needs:
# a pinned uv into .tools (whatever uv the machine may or may not have), the
# locked virtualenv into .venv, and the control-plane binaries into the cache
# outside the repo (see README).
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := $(CURDIR)/.tools/bin/uv
RUN := $(UV) run --frozen

.PHONY: help
help: ## Show targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python python3.11
	@touch $@

.PHONY: install
install: .venv/.synced ## Create the virtualenv from uv.lock

.PHONY: lint
lint: .venv/.synced ## ruff, mypy --strict and the import-layer contracts
	$(RUN) ruff check src tests bench hack
	$(RUN) ruff format --check src tests bench hack
	$(RUN) mypy
	$(RUN) lint-imports

.PHONY: unit
unit: .venv/.synced ## Unit and property tests (no cluster)
	$(RUN) pytest tests/unit -q

.PHONY: test
test: lint ## Linters, then every test tier (builds or reuses the control plane)
	$(RUN) python -m konsumerator.testenv build
	$(RUN) python hack/build_helm.py
	$(RUN) pytest -q

.PHONY: format
format: .venv/.synced ## Apply ruff's formatter and autofixes
	$(RUN) ruff format src tests bench hack
	$(RUN) ruff check --fix src tests bench hack

.PHONY: cluster-up
cluster-up: .venv/.synced ## Build or reuse the binaries, start (or reuse) the local cluster + Prometheus
	$(RUN) python -m konsumerator.testenv up

.PHONY: cluster-down
cluster-down: .venv/.synced ## Stop the cluster-up cluster (exactly its processes) and delete its state
	$(RUN) python -m konsumerator.testenv down

.PHONY: demo
demo: .venv/.synced ## Start here: local cluster, simulated Kafka topic, operator, live view (Ctrl-C stops all)
	$(RUN) python -m konsumerator.sim demo $(DEMO_ARGS)
