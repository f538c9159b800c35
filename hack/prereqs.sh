#!/usr/bin/env bash
# The system prerequisites the project cannot install itself, checked up front so that a
# missing one is named in one line instead of failing half-way through a 20-minute build.
# Everything else (uv, the virtualenv, the control-plane binaries, helm, Prometheus from
# Debian's packages) is installed by the Makefile and `konsumerator-dev testenv build`.
#
# Usage: hack/prereqs.sh [--cluster] [--kafka]
#   --cluster: also what the local control plane needs
#   --kafka:   also what the Kafka tier needs (the broker is jars from Maven Central, run by java)
set -uo pipefail

cluster=0
kafka=0
for arg in "$@"; do
    case "$arg" in
        --cluster) cluster=1 ;;
        --kafka) kafka=1 ;;
        *) echo "usage: $0 [--cluster] [--kafka]" >&2; exit 2 ;;
    esac
done

missing=()
need() {  # need TOOL "what it is for"
    command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)")
}

need python3.11 "Python 3.11: the virtualenv and every tool run on it"
if ((cluster)); then
    need go "Go >= 1.26 and the Go module proxy: builds kube-apiserver, etcd, KWOK and helm"
    need openssl "creates the local control plane's certificates"
    if ! command -v prometheus >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1; then
        missing+=("prometheus (Debian's package; or apt-get, as root, to install it)")
    fi
fi
if ((kafka)); then
    need java "Java >= 17 runtime: runs the local Kafka broker (Debian: default-jre-headless)"
    need mvn "Maven: fetches the Kafka broker's jars from Maven Central (Debian: maven)"
fi

if ((${#missing[@]})); then
    echo "konsumerator: missing system prerequisites (see README, 'Prerequisites'):" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

if ((kafka)); then
    jv=$(java -XshowSettings:properties -version 2>&1 | sed -nE 's/^ *java\.specification\.version = ([0-9]+).*/\1/p')
    if ! [[ "$jv" =~ ^[0-9]+$ ]] || ((jv < 17)); then
        echo "konsumerator: Java >= 17 is needed to run the Kafka broker; found '${jv:-none}'" >&2
        exit 1
    fi
fi

if ((cluster)); then
    version=$(go env GOVERSION 2>/dev/null)  # e.g. go1.26.8
    minor=$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$version")
    if ! [[ "$minor" =~ ^[0-9]+$ ]] || ((minor < 26)); then
        echo "konsumerator: Go >= 1.26 is needed to build the control plane; found '${version:-none}'" >&2
        exit 1
    fi
fi
