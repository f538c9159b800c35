"""What the replay tests do to the operator in the middle of a replay.

``restart_operator``: the process restarted (or another replica took the lease). Its
in-process state is gone: the planner's memory, the recent peaks, the certificates
(``certificate.forget_all``); what is left is what the Deployments and the Consumer's
status hold, which the replay's cluster keeps.
"""

from konsumerator import simulating
from konsumerator.controllers.reconciling import Pipeline
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.metrics import MetricsSnapshot


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


class OnePartition:
    """A one-partition Consumer's instance in closed loop (``ratePerCore`` 1000): each
    pass it consumes what its CPU request gives (1 msg/s per millicore), at most its
    production plus its backlog, and the operator sees that production, consumption and
    backlog. Before the instance exists it consumes everything."""

    def __init__(self, replay: simulating.Replay, *, pass_s: float) -> None:
        self.replay = replay
        self.pass_s = pass_s
        self.behind = 0.0  # messages

    def cpu_m(self) -> int | None:
        observed = self.replay.cluster.observed()
        return observed[0].current["consumer"].cpu_req_m if observed else None

    def step(self, production: float) -> simulating.Pass:
        capacity = self.cpu_m()
        drain = production + self.behind / self.pass_s
        consumed = drain if capacity is None else min(drain, capacity)
        self.behind = max(0.0, self.behind + (production - consumed) * self.pass_s)
        return self.replay.step(
            advance_s=self.pass_s,
            metrics=MetricsSnapshot(
                production={0: production}, consumption={0: consumed}, offset={0: self.behind}
            ),
        )
