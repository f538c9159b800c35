"""The Deployments the operator wrote, as the consumption model's instances."""

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from konsumerator.domain import keys, rendering
from konsumerator.domain import partitions as partitioning
from konsumerator.domain.observed import parse_target
from konsumerator.domain.resources import from_strings
from konsumerator.domain.specs import ConsumerConfig
from konsumerator.scoring.model import Instance


def worker_container(config: ConsumerConfig) -> str:
    """The container that consumes: the template's first one."""
    pod = (config.deployment_template.get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or [{}]
    return str(containers[0].get("name", ""))


def template_fingerprint(template: Mapping[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def instances_from(
    deployments: Iterable[Mapping[str, Any]], *, config: ConsumerConfig, container: str
) -> list[Instance]:
    """The Consumer's Deployments (by their instance names) as the model's instances.

    Deployments being deleted, scaled to zero replicas, or without a
    readable partition annotation consume nothing.
    """
    names = {
        rendering.deployment_name(config=config, index=i)
        for i in range(-(-config.num_partitions // config.per_instance))
    }
    found: list[Instance] = []
    for d in deployments:
        meta = d.get("metadata") or {}
        spec = d.get("spec") or {}
        if meta.get("name") not in names or meta.get("deletionTimestamp"):
            continue
        if spec.get("replicas", 1) == 0:
            continue
        parts = partitioning.parse_list((meta.get("annotations") or {}).get(keys.PARTITION, ""))
        if not parts:
            continue
        template = spec.get("template") or {}
        cpu_m = 0
        cpu_limit_m: int | None = None
        # In-place mode: the pods run the target annotation's size, not the template's.
        target = parse_target((meta.get("annotations") or {}).get(keys.TARGET_RESOURCES))
        for c in (template.get("spec") or {}).get("containers") or []:
            if c.get("name") == container:
                res = c.get("resources") or {}
                parsed = from_strings(
                    requests=res.get("requests") or {}, limits=res.get("limits") or {}
                )
                if target is not None and container in target:
                    parsed = target[container]
                cpu_m = parsed.cpu_req_m or parsed.cpu_lim_m or 0
                cpu_limit_m = parsed.cpu_lim_m
        found.append(
            Instance(
                name=str(meta["name"]),
                partitions=tuple(parts),
                cpu_m=cpu_m,
                template=template_fingerprint(template),
                cpu_limit_m=cpu_limit_m,
            )
        )
    return found
