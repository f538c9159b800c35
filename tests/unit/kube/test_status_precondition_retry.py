"""A Consumer's status write that names a resourceVersion the object has left.

Aspects tested (against httpx2's in-process MockTransport, no cluster), table-driven:
- a conflicting status write that names the UID is sent again, once, at the version the
  object with that UID now has (another writer's label or edit does not drop it);
- the object gone, or another UID under the name (re-created), leaves the Conflict;
- a write naming no UID, or conflicting again on its second try, leaves the Conflict,
  and a write with no precondition is never retried.
"""

import json
from dataclasses import dataclass

import httpx2
import pytest

from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import CONSUMERS
from konsumerator.kube.writing import Writer
from konsumerator.runtime import errors

CONFLICT = {
    "kind": "Status",
    "code": 409,
    "reason": "Conflict",
    "message": "the object has been modified",
}


def _object(uid: str, rv: str) -> dict[str, object]:
    return {"metadata": {"name": "c", "namespace": "ns", "uid": uid, "resourceVersion": rv}}


@dataclass(frozen=True)
class Case:
    name: str
    uid: str | None
    # What the GET of the object answers (None: 404).
    current: tuple[str, str] | None
    # How many status applies conflict before one is written.
    conflicts: int
    written: bool
    requests: list[str]


CASES = [
    Case("same object, moved on", "u1", ("u1", "9"), 1, True, ["apply@5", "get", "apply@9"]),
    Case("re-created under the name", "u1", ("u2", "9"), 1, False, ["apply@5", "get"]),
    Case("deleted", "u1", None, 1, False, ["apply@5", "get"]),
    Case("no uid named", None, ("u1", "9"), 1, False, ["apply@5"]),
    Case("conflicts again", "u1", ("u1", "9"), 2, False, ["apply@5", "get", "apply@9"]),
    Case("no conflict", "u1", ("u1", "9"), 0, True, ["apply@5"]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_a_conflicting_status_write_is_retried_only_on_the_same_object(case: Case) -> None:
    sent: list[str] = []
    left = [case.conflicts]

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            sent.append("get")
            if case.current is None:
                return httpx2.Response(404, json={"kind": "Status", "code": 404})
            return httpx2.Response(200, json=_object(*case.current))
        rv = json.loads(request.content)["metadata"]["resourceVersion"]
        sent.append(f"apply@{rv}")
        if left[0]:
            left[0] -= 1
            return httpx2.Response(409, json=CONFLICT)
        return httpx2.Response(200, json=_object("u1", "10"))

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="https://k8s")
    writer = Writer(client=ApiClient(http=http))

    async def write() -> str:
        done = await writer.apply_status(
            resource=CONSUMERS,
            namespace="ns",
            name="c",
            status={"running": 1},
            resource_version="5",
            uid=case.uid,
        )
        return done.resource_version

    if case.written:
        assert await write() == "10"
    else:
        with pytest.raises(errors.Conflict):
            await write()
    assert sent == case.requests


async def test_a_status_write_without_a_precondition_is_not_retried() -> None:
    sent: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.method)
        return httpx2.Response(409, json=CONFLICT)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url="https://k8s")
    writer = Writer(client=ApiClient(http=http))
    with pytest.raises(errors.Conflict):
        await writer.apply_status(resource=CONSUMERS, namespace="ns", name="c", status={}, uid="u1")
    assert sent == ["PATCH"]
