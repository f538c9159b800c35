"""Build the control-plane binaries from the Go module proxy, and install Debian's Prometheus.

Why from Go modules: this machine kind has Go and the module proxy but no Docker and no
release downloads, and a fake apiserver proves nothing about CRDs, server-side apply, RBAC or
garbage collection. The recipe:

* ``k8s.io/kubernetes`` cannot be ``go install``-ed: its go.mod requires every staging module
  at ``v0.0.0`` and replaces it with a local directory. A throwaway *wrapper module* requires
  ``k8s.io/kubernetes vX.Y.Z`` and replaces each staging module, read from the real go.mod, with
  its published ``v0.Y.Z`` tag. Versions are stamped with ``-X`` ldflags as upstream does.
* etcd's and KWOK's main packages each get their own wrapper module (one per project, so MVS
  never lifts one project's dependencies to another's versions).
* ``CGO_ENABLED=0`` (static, no gcc), ``GOTOOLCHAIN=local`` (fail fast, never fetch a
  toolchain), ``-mod=mod`` per command only.

Binaries go to ``<cache>/bin-<versions>.partial`` and the directory is renamed to its final
name only once every binary reports the expected version, so a present directory is always
complete and a second ``build`` takes milliseconds. Each step logs to
``<cache>/build-logs/<versions>/<step>.log``; progress (step, elapsed) is printed every 30 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from konsumerator_dev.testenv.config import (
    GO_BINARIES,
    Versions,
    bin_dir,
    build_log_dir,
    cache_root,
)
from konsumerator_dev.testenv.errors import BuildError, NotBuilt

Printer = Callable[[str], None]

_KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
_KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
STAGES_FILE = "kwok-stages.yaml"
INFO_FILE = "build-info.json"
HEARTBEAT_SECONDS = 30.0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _fmt(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def built_bin_dir(versions: Versions | None = None) -> Path:
    """The complete binary directory for these versions, or NotBuilt saying what to run."""
    directory = bin_dir(versions)
    if not (directory / INFO_FILE).is_file():
        raise NotBuilt(
            f"control-plane binaries are not built yet (expected in {directory}); "
            "run `konsumerator-dev testenv build` (`make test` does it first, "
            "about 20-30 min cold on 2 cores)"
        )
    return directory


def prometheus_binary() -> Path:
    found = shutil.which("prometheus")
    if not found:
        raise NotBuilt(
            "prometheus is not installed; run `konsumerator-dev testenv build` "
            "(it runs `apt-get install -y --no-install-recommends prometheus`)"
        )
    return Path(found)


class _Builder:
    def __init__(self, versions: Versions, out: Printer) -> None:
        self.versions = versions
        self.out = out
        self.key = versions.key
        self.logs = build_log_dir() / self.key
        self.work = cache_root() / "build-work" / self.key
        self.final = bin_dir(versions)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.timings: dict[str, float] = {}
        self.current = "setup"
        self.env = {k: v for k, v in os.environ.items() if k not in {"GOFLAGS", "GOOS", "GOARCH"}}
        self.env.update({"GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOWORK": "off"})

    # -- running commands ---------------------------------------------------------------

    def run(self, step: str, argv: Sequence[str], cwd: Path) -> str:
        """Run one command, appending to the step's log; fail with the log's last lines."""
        log = self.logs / f"{step}.log"
        started = time.monotonic()
        with log.open("ab") as fh:
            fh.write(f"\n$ (cd {cwd} && {' '.join(argv)})\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=fh
            )
            assert proc.stdout is not None
            # stdout is small (JSON or a version); read it in full, then wait with heartbeats
            while True:
                try:
                    stdout, _ = proc.communicate(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = _fmt(time.monotonic() - started)
                    self.out(f"  ... {self.current}: still building ({elapsed}; log {log.name})")
            fh.write(stdout)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-40:]
            raise BuildError(
                f"build step {step!r} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                f"last lines of {log}:\n" + "\n".join(f"    | {line}" for line in tail)
            )
        return stdout.decode(errors="replace")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.out(f"[build] {name} ...")
        self.current = name
        started = time.monotonic()
        yield
        elapsed = time.monotonic() - started
        self.timings[name] = round(elapsed, 1)
        self.out(f"[build] {name} done in {_fmt(elapsed)}")

    def wrapper(self, name: str) -> Path:
        """A fresh, empty wrapper module directory (go.mod is rewritten on each build)."""
        directory = self.work / name
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        self.run(name, ["go", "mod", "init", f"local/{name}"], directory)
        return directory

    def has(self, binary: str, expect: str, version_args: Sequence[str]) -> bool:
        path = self.partial / binary
        if not path.is_file():
            return False
        try:
            result = subprocess.run(
                [str(path), *version_args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return expect in result.stdout + result.stderr

    # -- the components -----------------------------------------------------------------

    def kubernetes(self) -> None:
        k8s = self.versions.kubernetes
        expected = {
            c: (f"v{k8s.lstrip('v')}", ["version", "--client"] if c == "kubectl" else ["--version"])
            for c in _KUBE_COMMANDS
        }
        missing = [c for c in _KUBE_COMMANDS if not self.has(c, *expected[c])]
        if not missing:
            return
        match = re.fullmatch(r"v1\.(\d+)\.(\d+)", k8s)
        if not match:
            raise BuildError(f"unexpected Kubernetes version {k8s!r}, want v1.<minor>.<patch>")
        minor = match.group(1)
        staging_version = f"v0.{minor}.{match.group(2)}"
        with self.step("kubernetes modules"):
            directory = self.wrapper("k8s")
            info = json.loads(
                self.run(
                    "k8s", ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{k8s}"], directory
                )
            )
            gomod = Path(info["GoMod"]).read_text()
            staging = sorted(
                set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", gomod, re.MULTILINE))
            )
            if len(staging) < 30:
                raise BuildError(
                    f"staging list from k8s.io/kubernetes@{k8s} looks wrong: {staging}"
                )
            edits = [f"-require=k8s.io/kubernetes@{k8s}"]
            edits += [f"-replace={m}={m}@{staging_version}" for m in staging]
            self.run("k8s", ["go", "mod", "edit", *edits], directory)
            self.run(
                "k8s",
                ["go", "get", *(f"k8s.io/kubernetes/cmd/{c}@{k8s}" for c in _KUBE_COMMANDS)],
                directory,
            )
        build_date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ldflags = ["-s", "-w"]
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            ldflags += [
                f"-X {pkg}.gitVersion={k8s}",
                f"-X {pkg}.gitMajor=1",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
                f"-X {pkg}.buildDate={build_date}",
            ]
        for command in missing:
            with self.step(command):
                self.run(
                    command,
                    [
                        "go", "build", "-mod=mod", "-trimpath",
                        "-tags=selinux,notest,grpcnotrace",
                        f"-ldflags={' '.join(ldflags)}",
                        "-o", str(self.partial / command),
                        f"k8s.io/kubernetes/cmd/{command}",
                    ],
                    directory,
                )  # fmt: skip
            if not self.has(command, *expected[command]):
                raise BuildError(f"{command} built but does not report {k8s}")

    def etcd(self) -> None:
        version = self.versions.etcd
        if self.has("etcd", f"etcd Version: {version.lstrip('v')}", ["--version"]):
            return
        with self.step("etcd"):
            directory = self.wrapper("etcd")
            self.run("etcd", ["go", "get", f"go.etcd.io/etcd/server/v3@{version}"], directory)
            self.run(
                "etcd",
                [
                    "go", "build", "-mod=mod", "-trimpath", "-ldflags=-s -w",
                    "-o", str(self.partial / "etcd"), "go.etcd.io/etcd/server/v3",
                ],
                directory,
            )  # fmt: skip
        if not self.has("etcd", f"etcd Version: {version.lstrip('v')}", ["--version"]):
            raise BuildError(f"etcd built but does not report {version}")

    def kwok(self) -> None:
        version = self.versions.kwok
        stages = self.partial / STAGES_FILE
        if self.has("kwok", version.lstrip("v"), ["--version"]) and stages.is_file():
            return
        with self.step("kwok"):
            directory = self.wrapper("kwok")
            self.run("kwok", ["go", "get", f"sigs.k8s.io/kwok/cmd/kwok@{version}"], directory)
            self.run(
                "kwok",
                [
                    "go", "build", "-mod=mod", "-trimpath",
                    f"-ldflags=-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={version}",
                    "-o", str(self.partial / "kwok"), "sigs.k8s.io/kwok/cmd/kwok",
                ],
                directory,
            )  # fmt: skip
            # Standalone kwok has no built-in stages and exits without them: copy the "fast"
            # node/pod stages (plus lease heartbeats) out of the module source.
            module = json.loads(
                self.run("kwok", ["go", "list", "-m", "-json", "sigs.k8s.io/kwok"], directory)
            )
            source = Path(module["Dir"]) / "kustomize" / "stage"
            parts = [(source / rel).read_text().strip() for rel in _KWOK_STAGES]
            stages.write_text("".join(f"---\n{part}\n" for part in parts))
        if not self.has("kwok", version.lstrip("v"), ["--version"]):
            raise BuildError(f"kwok built but does not report {version}")

    def build(self) -> Path:
        go = shutil.which("go")
        if not go:
            raise BuildError("`go` is not on PATH: Go >= 1.26 is needed to build the control plane")
        self.logs.mkdir(parents=True, exist_ok=True)
        self.partial.mkdir(parents=True, exist_ok=True)
        go_version = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, env=self.env, check=False
        ).stdout.strip()
        self.out(
            f"[build] cold build of Kubernetes {self.versions.kubernetes}, etcd "
            f"{self.versions.etcd}, KWOK {self.versions.kwok} with {go_version} into "
            f"{self.final}\n[build] this takes 20-30 min on 2 cores the first time; "
            f"logs: {self.logs}/"
        )
        started = time.monotonic()
        self.kubernetes()
        self.etcd()
        self.kwok()
        info = {
            "versions": {
                "kubernetes": self.versions.kubernetes,
                "etcd": self.versions.etcd,
                "kwok": self.versions.kwok,
            },
            "go": go_version,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "step_seconds": self.timings,
            "total_seconds": round(time.monotonic() - started, 1),
        }
        (self.partial / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        self.partial.rename(self.final)
        self.out(f"[build] binaries ready in {_fmt(time.monotonic() - started)}: {self.final}")
        return self.final


def ensure_prometheus(out: Printer = _stderr) -> Path:
    """Install Debian's prometheus (with promtool) if missing, and keep its service stopped."""
    if shutil.which("prometheus") and shutil.which("promtool"):
        return prometheus_binary()
    if os.geteuid() != 0:
        raise BuildError(
            "prometheus is missing and we are not root; install it with "
            "`sudo apt-get install -y --no-install-recommends prometheus`"
        )
    out("[build] prometheus: apt-get install -y --no-install-recommends prometheus")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:  # stale package lists on a fresh machine
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise BuildError(f"`{' '.join(install)}` failed:\n" + "\n".join(tail))
    _stop_system_prometheus(out)
    return prometheus_binary()


def _stop_system_prometheus(out: Printer) -> None:
    """The Debian package may start a system service on :9090; we run our own instances."""
    if Path("/run/systemd/system").is_dir():
        subprocess.run(
            ["systemctl", "disable", "--now", "prometheus"], capture_output=True, check=False
        )
        out("[build] prometheus: disabled the Debian system service (systemd)")
        return
    init_script = Path("/etc/init.d/prometheus")
    if init_script.is_file():
        status = subprocess.run([str(init_script), "status"], capture_output=True, check=False)
        if status.returncode == 0:
            subprocess.run([str(init_script), "stop"], capture_output=True, check=False)
            out("[build] prometheus: stopped the service the Debian package started")


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(versions: Versions | None = None, out: Printer = _stderr) -> Path:
    """Build (or find in the cache) every binary; returns the binary directory."""
    versions = versions or Versions.from_env()
    started = time.monotonic()
    ensure_prometheus(out)
    with _build_lock():
        final = bin_dir(versions)
        if not (final / INFO_FILE).is_file():
            final = _Builder(versions, out).build()
    missing = [b for b in GO_BINARIES if not (final / b).is_file()]
    if missing:
        raise BuildError(f"{final} lacks {missing}; delete the directory and build again")
    out(f"[build] up to date in {_fmt(time.monotonic() - started)}: {final}")
    return final
