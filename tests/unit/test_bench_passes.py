"""bench/passes.py: the in-process steady pass measures what the scale bench's steady window does.

Aspects: the Consumers converge (every instance created, sliced over passes), and a
steady pass then asks Prometheus its three queries, writes the Consumer's status
(``lastSyncTime`` moves) and writes no Deployment and no Event, the scale bench's
steady window (0 Deployment writes); a pass with a Deployment write would measure
something else.
"""

import asyncio

from konsumerator_dev.bench.passes import Harness


def test_a_steady_pass_queries_prometheus_writes_the_status_and_no_deployment() -> None:
    async def run() -> None:
        harness = Harness(partitions=30, consumers=2, scrape=True)
        await harness.converge()
        assert len(harness.deployments) == 60
        synced = {
            n: b["status"]["lastSyncTime"] for n, b in harness.cluster.consumer_bodies.items()
        }
        for _ in range(3):
            requests = await harness.steady()
            assert requests == {"prometheus": 3 * 2, "status": 2}
        assert all(
            harness.cluster.consumer_bodies[n]["status"]["lastSyncTime"] != synced[n]
            for n in synced
        )

    asyncio.run(run())
