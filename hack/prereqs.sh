#!/usr/bin/env bash
# The system prerequisites the project cannot install itself, checked up front so that a
# missing one is named in one line instead of failing half-way through a 20-minute build.
# Everything else (uv, the virtualenv, the control-plane binaries, helm, Prometheus from
# Debian's packages) is installed by the Makefile and `python -m konsumerator.testenv build`.
#
# Usage: hack/prereqs.sh [--cluster]   (--cluster: also what the local control plane needs)
set -uo pipefail

missing=()
need() {  # need TOOL "what it is for"
    command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)")
}

need python3.11 "Python 3.11: the virtualenv and every tool run on it"
if [[ "${1:-}" == "--cluster" ]]; then
    need go "Go >= 1.26 and the Go module proxy: builds kube-apiserver, etcd, KWOK and helm"
    need openssl "creates the local control plane's certificates"
    if ! command -v prometheus >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1; then
        missing+=("prometheus (Debian's package; or apt-get, as root, to install it)")
    fi
fi

if ((${#missing[@]})); then
    echo "konsumerator: missing system prerequisites (see README, 'Prerequisites'):" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

if [[ "${1:-}" == "--cluster" ]]; then
    version=$(go env GOVERSION 2>/dev/null)  # e.g. go1.26.8
    minor=$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$version")
    if ! [[ "$minor" =~ ^[0-9]+$ ]] || ((minor < 26)); then
        echo "konsumerator: Go >= 1.26 is needed to build the control plane; found '${version:-none}'" >&2
        exit 1
    fi
fi
