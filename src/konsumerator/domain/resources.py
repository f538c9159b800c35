"""Container resources as exact integers: millicores and bytes.

Kubernetes quantities are parsed once at the edge; inside the planner a
container's resources are four optional integers, so comparisons are exact
and "1000m" versus "1" can never look like a change. None means the field is
not set at all, which matters: a container with no limits is not the same as
one with a limit of zero.
"""

import functools
from collections.abc import Mapping

import msgspec

from konsumerator.domain import quantities
from konsumerator.domain.quantities import Format

#: The largest CPU amount, in millicores, and memory, in bytes, that Kubernetes
#: components can hold (int64 milli-units, see quantities.MAX_MILLIS). The CPU
#: maximum is whole cores, so a limit rounded up to cores never passes it.
MAX_CPU_M = quantities.MAX_MILLIS // 1000 * 1000
MAX_MEM_B = quantities.MAX_MILLIS // 1000


# A msgspec Struct (frozen, hashable), built in C: see ``adaptive.memory.Memory``.
class Resources(msgspec.Struct, frozen=True, gc=False):
    cpu_req_m: int | None = None
    mem_req_b: int | None = None
    cpu_lim_m: int | None = None
    mem_lim_b: int | None = None

    @property
    def is_empty(self) -> bool:
        # Equal to ``NO_RESOURCES``, tested field by field: the planner asks this
        # several times per instance and pass.
        return (
            self.cpu_req_m is None
            and self.mem_req_b is None
            and self.cpu_lim_m is None
            and self.mem_lim_b is None
        )


NO_RESOURCES = Resources()


def _cap(value: int | None, high: int) -> int | None:
    return None if value is None else max(0, min(value, high))


def representable(resources: Resources) -> Resources:
    """``resources`` with every amount within ``[0, MAX_CPU_M]`` / ``[0, MAX_MEM_B]``.

    The estimate grows with Prometheus's numbers and existing Deployments may
    hold anything the apiserver stored; neither may push a quantity we write
    past what Kubernetes can represent (an int64 overflow in the scheduler),
    nor make formatting fail. Within range this is the identity.
    """
    capped = Resources(
        cpu_req_m=_cap(resources.cpu_req_m, MAX_CPU_M),
        mem_req_b=_cap(resources.mem_req_b, MAX_MEM_B),
        cpu_lim_m=_cap(resources.cpu_lim_m, MAX_CPU_M),
        mem_lim_b=_cap(resources.mem_lim_b, MAX_MEM_B),
    )
    return resources if capped == resources else capped


@functools.lru_cache(maxsize=4096)
def _parse(value: str, cpu: bool) -> int:
    # Thousands of Deployments share a handful of distinct quantity strings,
    # and parsing them on every pass dominated planning time.
    q = quantities.parse_quantity(value)
    return quantities.millis(q) if cpu else quantities.value(q)


def _opt(value: str | None, *, cpu: bool) -> int | None:
    return None if value is None else _parse(value, cpu)


def from_strings(*, requests: Mapping[str, str], limits: Mapping[str, str]) -> Resources:
    """Parse what the apiserver returned; other resource names are ignored.

    Amounts beyond what Kubernetes can represent read as the largest it can
    (see :func:`representable`), so planning never carries them forward.
    """
    return representable(
        Resources(
            cpu_req_m=_opt(requests.get("cpu"), cpu=True),
            mem_req_b=_opt(requests.get("memory"), cpu=False),
            cpu_lim_m=_opt(limits.get("cpu"), cpu=True),
            mem_lim_b=_opt(limits.get("memory"), cpu=False),
        )
    )


def format_cpu(millicores: int) -> str:
    return quantities.from_millis(millicores).canonical()


def format_memory(num_bytes: int, *, preferred: Format = Format.DECIMAL_SI) -> str:
    """Canonical memory: the preferred format when it is exact, else the shorter one.

    ``2 * 1Gi`` stays ``2Gi`` and ``2 * 1G`` stays ``2G``; a value that is only
    exact in one format ("1536Mi", "1500M") is written in that one.
    """
    decimal = quantities.from_int(num_bytes, format=Format.DECIMAL_SI).canonical()
    binary = quantities.from_int(num_bytes, format=Format.BINARY_SI).canonical()
    if preferred is Format.BINARY_SI:
        return binary if len(binary) <= len(decimal) else decimal
    return decimal if len(decimal) <= len(binary) else binary


def to_strings(
    resources: Resources, *, memory_format: Format = Format.DECIMAL_SI
) -> tuple[dict[str, str], dict[str, str]]:
    """(requests, limits) as canonical quantity strings, unset fields left out."""
    requests, limits = _formatted(resources, memory_format)
    return dict(requests), dict(limits)


@functools.lru_cache(maxsize=4096)
def _formatted(
    resources: Resources, memory_format: Format
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    # Every body rendered (each write, each drift check) formats its resources, and
    # a Consumer's instances share a handful of sizes: formatting dominated rendering.
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if resources.cpu_req_m is not None:
        requests["cpu"] = format_cpu(resources.cpu_req_m)
    if resources.mem_req_b is not None:
        requests["memory"] = format_memory(resources.mem_req_b, preferred=memory_format)
    if resources.cpu_lim_m is not None:
        limits["cpu"] = format_cpu(resources.cpu_lim_m)
    if resources.mem_lim_b is not None:
        limits["memory"] = format_memory(resources.mem_lim_b, preferred=memory_format)
    return tuple(requests.items()), tuple(limits.items())


def compare_requests(current: Resources, proposed: Resources) -> int:
    """+1 if proposed asks for more, -1 for less, 0 if equal: CPU first, then memory.

    Only requests are compared (Go v1.1.0+): limits follow requests, and a
    limit-only difference is not worth a pod restart. Unset counts as zero.
    """
    for cur, new in (
        (current.cpu_req_m or 0, proposed.cpu_req_m or 0),
        (current.mem_req_b or 0, proposed.mem_req_b or 0),
    ):
        if new > cur:
            return 1
        if new < cur:
            return -1
    return 0
