"""What the replay tests do to the operator in the middle of a replay.

``restart_operator``: the process restarted (or another replica took the lease). Its
in-process state is gone: the planner's memory, the recent peaks, the certificates
(``certificate.forget_all``); what is left is what the Deployments and the Consumer's
status hold, which the replay's cluster keeps.
"""

from konsumerator import simulating
from konsumerator.controllers.reconciling import Pipeline
from konsumerator.domain.adaptive import certificate


def restart_operator(replay: simulating.Replay) -> None:
    certificate.forget_all()
    replay.pipeline = Pipeline(
        deployments=replay.cluster,
        pods=replay.cluster.pods,
        provider=replay.metrics,
        actuator=replay.cluster,
        reporter=simulating.Silent(),
        now=lambda: replay.now,
    )
