"""The scorecard's Consumer (``examples/consumer.yaml``) played on a trace, for the scoring
tests that ask how a policy fares on a shape of their own."""

from pathlib import Path

from konsumerator.scoring import command
from konsumerator.scoring.model import CpuModel, Workload
from konsumerator.scoring.play import Score, play
from konsumerator.scoring.policies import Policy
from konsumerator.simulating import load_consumer

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"


def play_example(
    trace: Workload, *, policy: Policy, cpu: CpuModel, mode: command.UpdateMode
) -> Score:
    """``policy`` on ``trace`` with the example Consumer, the CPU model and update mode given."""
    source, spec = load_consumer(EXAMPLE.read_text(), source=str(EXAMPLE))
    scenario = command.scenario(
        source=source,
        spec=spec,
        trace=trace,
        options=command.Options(cpu_model=cpu, update_mode=mode),
    )
    return play(scenario=scenario, policy=policy)
