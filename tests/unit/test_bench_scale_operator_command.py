"""bench/scale.py's ``--operator-command``: another operator's command line, with the
cluster's kubeconfig and the metrics address the bench polls put in its arguments."""

import sys
from pathlib import Path

import click
import pytest

from konsumerator_dev.bench.scale import counters, operator_argv

KUBECONFIG = Path("/clusters/bench/kubeconfig")


def test_without_a_command_the_bench_runs_our_operator_on_the_chosen_port() -> None:
    argv = operator_argv(command=None, kubeconfig=KUBECONFIG, metrics_port=4321, workers=4)
    assert argv[:4] == [sys.executable, "-m", "konsumerator", "run"]
    assert argv[argv.index("--kubeconfig") + 1] == str(KUBECONFIG)
    assert argv[argv.index("--metrics-bind-address") + 1] == "127.0.0.1:4321"
    assert argv[argv.index("--max-concurrent-reconciles") + 1] == "4"


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        (
            "/opt/go/manager --kubeconfig {kubeconfig} --metrics-bind-address={metrics_address}",
            ["/opt/go/manager", "--kubeconfig", str(KUBECONFIG),
             "--metrics-bind-address=127.0.0.1:4321"],
        ),
        # Split like a shell line: a quoted argument stays one argument.
        (
            "op --port {metrics_port} --label 'a b'",
            ["op", "--port", "4321", "--label", "a b"],
        ),
        # A doubled brace is a literal brace (str.format).
        ("op --json {{}}", ["op", "--json", "{}"]),
    ],
)  # fmt: skip
def test_a_command_is_split_and_its_placeholders_filled(command: str, argv: list[str]) -> None:
    assert (
        operator_argv(command=command, kubeconfig=KUBECONFIG, metrics_port=4321, workers=4) == argv
    )


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(click.BadParameter):
        operator_argv(command="  ", kubeconfig=KUBECONFIG, metrics_port=4321, workers=4)


def test_client_go_requests_are_counted_by_their_method() -> None:
    text = "\n".join(
        [
            'rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 7',
            'rest_client_requests_total{code="409",host="127.0.0.1:6443",method="PUT"} 2',
            'rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PUT"} 3',
        ]
    )
    assert counters(text, "rest_client_requests_total") == {("GET", "", ""): 7, ("PUT", "", ""): 5}
