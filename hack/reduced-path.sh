# Sourced by .ci/run (and its test): cut PATH down to what a new machine has, the system's
# own directories plus the Go toolchain (the README's prerequisites), so a test, script or
# Makefile line that calls a tool only a developer's machine has fails in CI instead of on a
# user's machine. The project's own tools (the pinned uv in .tools, the venv, the cached
# kubectl and helm) are always reached by path, never through PATH.
#
# Names a machine often has in its system directories (some have a kubectl in /usr/bin) but
# the project must never call bare resolve to a stub that fails loudly, naming the tool.

_go=$(command -v go) || { echo "reduced-path: go not found (a README prerequisite)" >&2; return 1; }
_go_bin=$(dirname "$(readlink -f "$_go")")
REDUCED_PATH_GUARD=$(mktemp -d "${TMPDIR:-/tmp}/konsumerator-guard.XXXXXX")
for _tool in uv uvx helm kubectl kustomize kind k3d minikube docker podman pip pip3 pytest ruff mypy; do
    printf '#!/bin/sh\necho "bare %s from PATH is not a project tool: use the one the project installs" >&2\nexit 127\n' \
        "$_tool" >"$REDUCED_PATH_GUARD/$_tool"
    chmod +x "$REDUCED_PATH_GUARD/$_tool"
done
export PATH="$REDUCED_PATH_GUARD:$_go_bin:/usr/sbin:/usr/bin:/sbin:/bin"
unset VIRTUAL_ENV PYTHONPATH UV_PROJECT_ENVIRONMENT _go _go_bin _tool
