"""The workload a simulator run or a demo plays: which trace, how fast, how costly a restart.

Shared by ``konsumerator-dev sim run`` and both demos (:mod:`~konsumerator_dev.sim.demo`,
:mod:`~konsumerator_dev.sim.kafkademo`). It lives apart from the command line so the demos
never import the CLI module that starts them (the old ``__main__`` <-> ``demo`` cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from konsumerator.simulating import InputError
from konsumerator_dev.paths import EXAMPLES
from konsumerator_dev.sim import traces

EXAMPLE = EXAMPLES / "consumer.yaml"


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """The workload options every simulator command takes (see ``--help``)."""

    trace: str = "incident"
    trace_csv: str | None = None
    base_rate: float = 1000.0
    true_rate_per_core: float | None = None
    restart: float = 10.0
    speed: float = 1.0
    seed: int = 0
    at: float | None = None
    length: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions(Workload):
    """``make demo``'s options: the workload plus the cluster and the screen."""

    simulator: bool = False
    name: str = "demo"
    consumer: str = str(EXAMPLE)
    duration: float | None = None
    once_per: float | None = None
    refresh: float = 2.0
    keep: bool = False


def build_trace(
    *,
    name: str,
    csv_path: str | None,
    base_rate: float,
    num_partitions: int,
    seed: int,
    at_s: float | None,
    length_s: float | None,
) -> traces.Trace:
    """A trace of the suite by name (with the incident/burst window if given), or a CSV."""
    if csv_path is not None:
        return traces.from_csv(Path(csv_path).read_text(), name=Path(csv_path).stem)
    if name not in traces.TRACES:
        raise InputError(f"--trace: unknown trace {name!r} (one of {', '.join(traces.TRACES)})")
    kwargs: dict[str, float | int] = {"base_rate": base_rate, "seed": seed}
    if name in ("burst", "incident"):
        if at_s is not None:
            kwargs["at_s"] = at_s
        if length_s is not None:
            kwargs["length_s"] = length_s
    if name == "skewed":
        kwargs["num_partitions"] = num_partitions
    return traces.TRACES[name](**kwargs)
