# Konsumerator developer entry points. Every target installs what it needs:
# a pinned uv into .tools (whatever uv the machine may or may not have), the
# locked virtualenv into .venv, and the control-plane binaries into the cache
# outside the repo (see README). No recipe calls a tool from PATH other than
# the system prerequisites hack/prereqs.sh checks (python3.11, go, openssl, java, mvn).
# The developer commands are one click CLI, `konsumerator-dev` (the dev/ workspace member,
# never part of the operator's wheel or image).
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := $(CURDIR)/.tools/bin/uv
RUN := $(UV) run --frozen
DIST ?= dist
IMAGE ?= konsumerator:dev

.PHONY: help
help: ## Show targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	@hack/prereqs.sh
	python3.11 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml dev/pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python python3.11
	@touch $@

.PHONY: install
install: .venv/.synced ## Create the virtualenv from uv.lock

.PHONY: lint
lint: .venv/.synced ## ruff, mypy --strict and the import-layer contracts
	$(RUN) ruff check src dev tests examples
	$(RUN) ruff format --check src dev tests examples
	$(RUN) mypy
	$(RUN) lint-imports

.PHONY: unit
unit: .venv/.synced ## Unit and property tests (no cluster)
	$(RUN) pytest tests/unit -q

.PHONY: test
test: lint ## Linters, then every test tier (builds or reuses the control plane and Kafka)
	@hack/prereqs.sh --cluster --kafka
	$(RUN) konsumerator-dev testenv build
	$(RUN) konsumerator-dev hack build-helm
	$(RUN) pytest -q

.PHONY: build
build: .venv/.synced ## Build the wheel into dist/ and, where a container engine runs, the image
	$(UV) build --wheel --out-dir $(DIST)
	@if docker info >/dev/null 2>&1; then docker build -t $(IMAGE) . ; \
	else echo "no running container engine (docker info failed): image not built; wheel in $(DIST)/"; fi

.PHONY: generate
generate: .venv/.synced ## Rewrite the files derived from the CRD (copies, reference doc, dashboard)
	$(RUN) konsumerator-dev hack generate

.PHONY: run
run: .venv/.synced ## Run the operator against the current kubeconfig (installs the CRD; endpoints on loopback)
	$(RUN) konsumerator crd --apply
	$(RUN) konsumerator run --log-format console \
		--metrics-bind-address 127.0.0.1:8080 --health-probe-bind-address 127.0.0.1:8081 $(RUN_ARGS)

.PHONY: format
format: .venv/.synced ## Apply ruff's formatter and autofixes
	$(RUN) ruff format src dev tests examples
	$(RUN) ruff check --fix src dev tests examples

.PHONY: cluster-up
cluster-up: .venv/.synced ## Build or reuse the binaries, start (or reuse) the local cluster + Prometheus + Kafka
	@hack/prereqs.sh --cluster --kafka
	$(RUN) konsumerator-dev testenv up

.PHONY: cluster-down
cluster-down: .venv/.synced ## Stop the cluster-up cluster (exactly its processes) and delete its state
	$(RUN) konsumerator-dev testenv down

.PHONY: demo
demo: .venv/.synced ## Start here: local cluster, real Kafka, operator, live view (DEMO_ARGS=--simulator: no Kafka)
	@hack/prereqs.sh --cluster $(if $(findstring --simulator,$(DEMO_ARGS)),,--kafka)
	$(RUN) konsumerator-dev sim demo $(DEMO_ARGS)

.PHONY: scorecard
scorecard: .venv/.synced ## Autoscaling scorecard on the simulator (SCORECARD_ARGS=--publish rewrites docs/scorecard)
	$(UV) run --frozen --group bench konsumerator-dev bench scorecard $(SCORECARD_ARGS)

.PHONY: bench-scale
bench-scale: .venv/.synced ## Scale benchmark on the local cluster (BENCH_ARGS: konsumerator-dev bench scale --help)
	$(UV) run --frozen --group bench konsumerator-dev bench scale $(BENCH_ARGS)

.PHONY: bench-simulate
bench-simulate: .venv/.synced ## Throughput of `konsumerator simulate` (BENCH_ARGS: konsumerator-dev bench simulate --help)
	$(RUN) konsumerator-dev bench simulate $(BENCH_ARGS)
