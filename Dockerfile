# syntax=docker/dockerfile:1
# Konsumerator operator image. Build: docker build -t <registry>/konsumerator:<tag> .
# (There is no Docker engine in the development environment, so this file is not built by
# `make test`; its uv commands are the ones the tests use to build the same virtualenv.)
#
# The base is pinned by digest (python:3.11.9-slim-bookworm, multi-arch index, as of 2024-04).
# Bump tag and digest together, e.g. with Renovate or:
#   docker buildx imagetools inspect python:3.11-slim-bookworm
ARG PYTHON_IMAGE=docker.io/library/python:3.11.9-slim-bookworm@sha256:dad770592ab3582ab2dabcf0e18a863df9d86bd9d23efcfa614110ce49ac20e4
# The same uv release as the Makefile's UV_VERSION.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- builder: the locked runtime dependencies and the package, into /opt/venv -------------
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
# Dependencies first: this layer is reused until uv.lock or pyproject.toml change.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-default-groups --no-install-project
COPY README.md ./
COPY src ./src
# --no-editable: the package is copied into the venv, so /src is not needed at run time.
RUN uv sync --frozen --no-dev --no-default-groups --no-editable

# --- runtime: the same Python, the venv, nothing else -------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
# Non-root (the "nonroot" uid of distroless images); the root filesystem can be read-only.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["konsumerator", "run"]
