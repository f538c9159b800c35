"""Every fenced write carries its budget to the API server as the request's ``timeout``.

A leader frozen (SIGSTOP, a stalled node) right after sending a write cannot give the
write up; on a loaded API server the request may wait in API Priority and Fairness's
queues for longer than the lease, and was carried out after another replica had taken
the Lease (tests/cluster/test_operator_leader_election.py saw a Deployment created after
the takeover). With the budget as the server's ``timeout`` the server drops the request
when it runs out, before a takeover is possible.

Aspects tested (an in-memory API server recording the query of each request): every
write verb of the ``Writer`` carries ``timeout`` at most the fence's budget, in
milliseconds; without a fence (no leader election) no ``timeout`` is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx2
import pytest

from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import DEPLOYMENTS
from konsumerator.kube.writing import Writer

BUDGET = 4.2566


class Fence:
    def write_budget(self) -> float:
        return BUDGET


def writer(seen: list[dict[str, str]], *, fenced: bool) -> Writer:
    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(dict(request.url.params))
        return httpx2.Response(200, json={"metadata": {"name": "d", "uid": "u"}})

    http = httpx2.AsyncClient(
        base_url="https://api.invalid", transport=httpx2.MockTransport(handle)
    )
    return Writer(client=ApiClient(http=http), fence=Fence() if fenced else None)


WRITES: dict[str, Callable[[Writer], Awaitable[object]]] = {
    "apply": lambda w: w.apply(resource=DEPLOYMENTS, namespace="ns", name="d", body={}),
    "apply create-only": lambda w: w.apply(
        resource=DEPLOYMENTS, namespace="ns", name="d", body={}, create_only=True
    ),
    "apply status": lambda w: w.apply_status(
        resource=DEPLOYMENTS, namespace="ns", name="d", status={}
    ),
    "strategic patch": lambda w: w.strategic_patch(
        resource=DEPLOYMENTS, namespace="ns", name="d", patch={}, uid="u"
    ),
    "merge patch": lambda w: w.merge_patch(
        resource=DEPLOYMENTS, namespace="ns", name="d", patch={}
    ),
    "create": lambda w: w.create(resource=DEPLOYMENTS, namespace="ns", body={}),
    "update": lambda w: w.update(resource=DEPLOYMENTS, namespace="ns", name="d", body={}),
    "delete": lambda w: w.delete(resource=DEPLOYMENTS, namespace="ns", name="d", uid="u"),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
async def test_a_fenced_write_carries_its_budget_as_the_servers_timeout(
    write: Callable[[Writer], Awaitable[object]],
) -> None:
    seen: list[dict[str, str]] = []
    await write(writer(seen, fenced=True))
    assert [params.get("timeout") for params in seen] == ["4256ms"]


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
async def test_an_unfenced_write_carries_no_timeout(
    write: Callable[[Writer], Awaitable[object]],
) -> None:
    seen: list[dict[str, str]] = []
    await write(writer(seen, fenced=False))
    assert seen
    assert all("timeout" not in params for params in seen)
