"""The ``konsumerator`` command.

Input errors (a bad Consumer, timeline or flag) print one line naming the
file and the field and exit with status 2; nothing is half-applied, because
every input is validated before the first step runs.
"""

import contextlib
import sys
from importlib import resources
from pathlib import Path
from typing import IO, Any

import click

from konsumerator import __version__
from konsumerator.scoring import files


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="konsumerator")
def main() -> None:
    """Konsumerator: Kafka consumers on Kubernetes, one Deployment per partition
    group, sized from Prometheus lag metrics."""


def crd_text() -> str:
    return resources.files("konsumerator.api").joinpath("crd.yaml").read_text()


@main.command()
@click.option(
    "--apply",
    "apply_",
    is_flag=True,
    help="Server-side apply it to the cluster instead of printing it.",
)
@click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), help="Default: in-cluster, then $KUBECONFIG."
)
def crd(apply_: bool, kubeconfig: str | None) -> None:
    """Print the Consumer CustomResourceDefinition, or server-side apply it (--apply)."""
    if not apply_:
        click.echo(crd_text(), nl=False)
        return
    import yaml

    from konsumerator import app
    from konsumerator.kube.connecting import ConfigError
    from konsumerator.runtime.errors import ApiError

    try:
        name = app.install_crd(kubeconfig=kubeconfig, manifest=yaml.safe_load(crd_text()))
    except (ConfigError, ApiError) as e:
        click.echo(f"error: cannot apply the CRD: {e}", err=True)
        sys.exit(1)
    click.echo(f"customresourcedefinition/{name} serverside-applied")


def _skip_console_extras() -> None:
    """Keep ``rich`` out of the operator process.

    structlog imports ``rich`` when it is installed (the dev tools install it), only
    to draw console tracebacks; in the operator that is 3 MiB of resident memory for
    its whole life (measured: 55.8 -> 52.7 MiB right after importing the app). A
    ``None`` entry in ``sys.modules`` makes that import fail, and structlog then
    prints plain tracebacks. Nothing else in the operator uses ``rich``.
    """
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]


@main.command()
@click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), help="Default: in-cluster, then $KUBECONFIG."
)
@click.option(
    "--namespace", default="", help="Guest mode: manage ConfigMaps in this namespace only."
)
@click.option("--leader-elect", is_flag=True, help="Run only while holding the Lease.")
@click.option(
    "--leader-election-namespace",
    default="",
    help="CRD mode only. Default: the kubeconfig context's namespace (in a pod: its own).",
)
@click.option(
    "--metrics-bind-address",
    default="127.0.0.1:8080",
    show_default=True,
    help="host:port of /metrics (plain HTTP, no authentication): loopback unless you say"
    " otherwise, e.g. :8080 for every interface. 0 disables.",
)
@click.option(
    "--health-probe-bind-address",
    default="127.0.0.1:8081",
    show_default=True,
    help="host:port of /healthz and /readyz: loopback unless you say otherwise; in a pod"
    " the kubelet needs :8081. 0 disables.",
)
@click.option(
    "--prometheus-allowed-hosts",
    "prometheus_allowed_hosts",
    multiple=True,
    metavar="PATTERNS",
    help="Only request Prometheus addresses whose host matches one of these comma-separated"
    " patterns: host or host:port with * wildcards (*.monitoring.svc), a CIDR block or an IP."
    " Repeatable. Default: any address, so a Consumer author can make the operator request"
    " any URL its pod reaches.",
)
@click.option(
    "--max-concurrent-reconciles", type=click.IntRange(min=1), default=4, show_default=True
)
@click.option(
    "--log-format", type=click.Choice(["json", "console"]), default="json", show_default=True
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run(
    kubeconfig: str | None,
    namespace: str,
    leader_elect: bool,
    leader_election_namespace: str,
    metrics_bind_address: str,
    health_probe_bind_address: str,
    prometheus_allowed_hosts: tuple[str, ...],
    max_concurrent_reconciles: int,
    log_format: str,
    log_level: str,
) -> None:
    """Run the operator (CRD mode, or guest mode with --namespace)."""
    _skip_console_extras()
    from konsumerator import app
    from konsumerator.prom.urls import AddressPolicy, PatternError

    try:
        AddressPolicy.parse(prometheus_allowed_hosts)
    except PatternError as e:
        raise click.BadParameter(str(e), param_hint="--prometheus-allowed-hosts") from None
    try:
        settings = app.Settings(
            kubeconfig=kubeconfig,
            namespace=namespace or None,
            leader_elect=leader_elect,
            leader_election_namespace=leader_election_namespace or None,
            metrics_bind=app.parse_endpoint(metrics_bind_address),
            health_bind=app.parse_endpoint(health_probe_bind_address),
            prometheus_allowed_hosts=prometheus_allowed_hosts,
            max_concurrent_reconciles=max_concurrent_reconciles,
            log_format="console" if log_format == "console" else "json",
            log_level=log_level,
        )
    except ValueError as e:
        raise click.UsageError(f"bad bind address: {e}") from None
    status = 0
    with contextlib.suppress(KeyboardInterrupt):
        status = app.run(settings)
    sys.exit(status)


class _OneLineUsageError(click.ClickException):
    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _OneLineErrors(click.Command):
    """A command whose usage errors are one line, ``error: ...`` and status 2, like its others."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            raise _OneLineUsageError(e.format_message()) from None


def _read(path: str) -> str:
    """A whole UTF-8 file (a byte-order mark dropped); unreadable or not UTF-8 is one line."""
    name = files.describe(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise _OneLineUsageError(f"{name}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise _OneLineUsageError(f"{name}: line {line}: not UTF-8 text") from None


@main.command(cls=_OneLineErrors)
@click.argument("consumer", type=click.Path(dir_okay=False))
@click.argument("timeline", type=click.Path(dir_okay=False))
def simulate(consumer: str, timeline: str) -> None:
    """Replay TIMELINE (YAML steps of metrics) through the planner for CONSUMER.

    Prints one JSON object per step: the Consumer status and every Deployment's
    partitions, scaling state, resources and env, in virtual time.
    """
    from konsumerator import simulating

    try:
        # Named in every message as files.describe names it (one line, whatever the name).
        source, spec = simulating.load_consumer(_read(consumer), source=files.describe(consumer))
        steps = simulating.load_timeline(_read(timeline), source=files.describe(timeline))
    except simulating.InputError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    simulating.run(source=source, spec=spec, steps=steps, out=sys.stdout)


@main.command(cls=_OneLineErrors)
@click.argument("consumer", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("trace", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=click.Choice(["naive", "adaptive", "static-peak", "oracle"]),
    help="Score only these (repeatable). Default: all four.",
)
@click.option(
    "--update-mode",
    type=click.Choice(["InPlaceOrRecreate", "Recreate"]),
    help="How a resize is actuated: in place (effective 5 s later, no restart) or by"
    " restarting the pods."
    " Default: the Consumer's spec.autoscaler.updateMode.",
)
@click.option(
    "--true-rate-factor",
    type=click.FloatRange(min=0.01, max=100),
    default=1.0,
    show_default=True,
    help="How fast the consumers really are, relative to ratePerCore.",
)
@click.option(
    "--restart-seconds",
    type=click.FloatRange(min=0, max=3600),
    default=30.0,
    show_default=True,
    help="Seconds a pod restart stops consumption.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1, max=100),
    default=1,
    show_default=True,
    help="Seed 0 plays the trace as recorded, the others with ±5% noise; mean and spread.",
)
@click.option(
    "--cpu-model",
    type=click.Choice(["request", "limit"]),
    default="request",
    show_default=True,
    help="Consumers use their CPU request (a busy node) or burst to their limit (a spare one).",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
def score(
    consumer: str,
    trace: str,
    policies: tuple[str, ...],
    update_mode: str | None,
    true_rate_factor: float,
    restart_seconds: float,
    seeds: int,
    cpu_model: str,
    format_: str,
) -> None:
    """Score sizing policies on TRACE (CSV: t,0,1,...,N-1 in msg/s) for CONSUMER.

    Either file can be - (standard input).

    Every policy plays the trace against a model of the consumers in virtual
    time (naive and adaptive through the operator's own reconcile pass): SLO
    violations (V, partition-minutes), lag severity, core-hours, restarts,
    resizes and oscillations, next to static-peak and the oracle.
    """
    from konsumerator.scoring import command
    from konsumerator.scoring.model import CpuModel

    try:
        job = command.load(
            consumer=consumer,
            trace=trace,
            options=command.Options(
                policies=tuple(dict.fromkeys(policies)) or command.POLICIES,
                update_mode=command.UpdateMode(update_mode) if update_mode else None,
                true_rate_factor=true_rate_factor,
                restart_s=restart_seconds,
                seeds=seeds,
                cpu_model=CpuModel(cpu_model),
            ),
        )
    except command.ScoreInputError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    options = job.options
    results = command.score(source=job.source, spec=job.spec, trace=job.trace, options=options)
    if format_ == "json":
        click.echo(command.to_json(results))
    else:
        click.echo(command.to_markdown(results, options=options), nl=False)
