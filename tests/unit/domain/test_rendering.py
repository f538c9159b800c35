"""The Deployment apply body: env injection, resources, metadata and the template hash.

Aspects tested:

* Env injection (the "simple case" of Go's PopulateEnv test,
  lwolf/konsumerator ``pkg/helpers/util_test.go``), adapted to differences 1 and 2
  of docs/compatibility.md: GOMEMLIMIT is floor(0.8 × limit bytes / MiB)
  "MiB" (Go: decimal MB labelled MiB, 2G → "1600MiB"; ours 2G → "1525MiB"),
  and is removed when the memory limit goes away (Go left it stale).
* ``partitionEnvKey`` replaces KONSUMERATOR_PARTITION; user env vars are
  kept, same-name ones replaced in place (position kept), on every container
  (sidecars too), never on init containers; the input template is not mutated.
* GOMAXPROCS vectors: 100m → 1, 1100m → 2, 2 → 2, absent/0 → 1.
* Resources: canonical quantities, a container without resources gets no
  ``resources`` field (and a stale one is removed), binary memory format.
* Labels (app, controller, partitions range, managed-by; 63-character cap),
  annotations (partition, consumer-id, generation, scaling status, RFC3339
  change time, saturation level only when > 0), the controller ownerReference.
* Template hash (differences 15 and 16): same input same hash, key order irrelevant,
  positive decimal, changes with the template, partitionEnvKey,
  numPartitions and the number of instances, not with policies/autoscaling.
* ``parse_time`` / ``format_time`` round trip and leniency.
"""

import copy
from datetime import UTC, datetime, timedelta, timezone

import pytest

from konsumerator.domain import keys
from konsumerator.domain.quantities import Format
from konsumerator.domain.rendering import (
    format_time,
    gomaxprocs,
    gomemlimit,
    parse_time,
    render,
    template_hash,
)
from konsumerator.domain.resources import Resources
from konsumerator.domain.scaling import ScalingState, ScalingStatus
from konsumerator.domain.specs import Autoscaling, Bounds, ConsumerConfig, GlobalPool, Owner

M = 10**6
G = 10**9
MI = 2**20
GI = 2**30
T = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
OWNER = Owner(api_version="konsumerator.lwolf.org/v1", kind="Consumer", name="orders", uid="u-1")


def template(*containers, **extra):
    spec = {
        "selector": {"matchLabels": {"app": "c"}},
        "template": {
            "metadata": {"labels": {"app": "c"}},
            "spec": {"containers": list(containers) or [{"name": "main", "image": "busybox"}]},
        },
    }
    spec.update(extra)
    return spec


def config(tmpl=None, **kw) -> ConsumerConfig:
    base = {
        "name": "c",
        "namespace": "ns",
        "num_partitions": 1,
        "per_instance": 1,
        "deployment_template": tmpl if tmpl is not None else template(),
    }
    base.update(kw)
    return ConsumerConfig(**base)


def body_for(cfg, resources, *, index=0, partitions=(0,), num_instances=1, **kw):
    args = {
        "config": cfg,
        "owner": OWNER,
        "index": index,
        "partitions": partitions,
        "num_instances": num_instances,
        "resources": resources,
        "scaling": ScalingState(ScalingStatus.RUNNING, T),
        "cpu_shortage_m": 0,
        "hash_value": "42",
    }
    args.update(kw)
    return render(**args)


def containers(body):
    return body["spec"]["template"]["spec"]["containers"]


def env_of(container):
    return [(e["name"], e.get("value")) for e in container["env"]]


def R(cpu_req, mem_req, cpu_lim, mem_lim) -> Resources:
    return Resources(cpu_req_m=cpu_req, mem_req_b=mem_req, cpu_lim_m=cpu_lim, mem_lim_b=mem_lim)


def test_env_simple_case():
    body = body_for(config(), {"main": R(2000, 2 * G, 2000, 2 * G)})
    assert env_of(containers(body)[0]) == [
        ("KONSUMERATOR_PARTITION", "0"),
        ("GOMAXPROCS", "2"),
        ("GOMEMLIMIT", "1525MiB"),  # difference 1: Go wrote "1600MiB"
        ("KONSUMERATOR_INSTANCE", "0"),
        ("KONSUMERATOR_NUM_PARTITIONS", "1"),
        ("KONSUMERATOR_NUM_INSTANCES", "1"),
    ]


def test_env_with_partition_env_key():
    body = body_for(
        config(partition_env_key="TEST_PARTITION"), {"main": R(1000, 2 * G, 1000, 2 * G)}
    )
    env = env_of(containers(body)[0])
    assert env[0] == ("TEST_PARTITION", "0")
    assert env[1] == ("GOMAXPROCS", "1")
    assert "KONSUMERATOR_PARTITION" not in dict(env)


def test_env_of_a_multi_partition_instance():
    cfg = config(num_partitions=10, per_instance=3)
    body = body_for(cfg, {}, index=1, partitions=(3, 4, 5), num_instances=4)
    env = dict(env_of(containers(body)[0]))
    assert env["KONSUMERATOR_PARTITION"] == "3,4,5"
    assert env["KONSUMERATOR_INSTANCE"] == "1"
    assert env["KONSUMERATOR_NUM_PARTITIONS"] == "10"
    assert env["KONSUMERATOR_NUM_INSTANCES"] == "4"


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (100 * M, "76MiB"),  # Go: "80MiB"
        (111 * M, "84MiB"),  # Go: "89MiB"
        (200 * M, "152MiB"),  # Go: "160MiB"
        (400 * M, "305MiB"),  # Go: "320MiB"
        (1 * G, "762MiB"),  # Go: "800MiB"
        (2 * G, "1525MiB"),  # Go: "1600MiB"
        (20 * G, "15258MiB"),  # Go: "16000MiB"
        (1 * GI, "819MiB"),
        (100 * MI, "80MiB"),
        (0, None),
        (None, None),
    ],
)
def test_gomemlimit_is_80_percent_in_real_mib(limit, expected):
    assert gomemlimit(limit) == expected


@pytest.mark.parametrize(
    ("cpu_limit_m", "expected"),
    [(100, "1"), (1000, "1"), (1100, "2"), (2000, "2"), (2001, "3"), (0, "1"), (None, "1")],
)
def test_gomaxprocs_rounds_the_cpu_limit_up(cpu_limit_m, expected):
    assert gomaxprocs(cpu_limit_m) == expected


def test_gomaxprocs_in_body_for_absent_limit():
    body = body_for(config(), {"main": Resources(cpu_req_m=500, mem_req_b=100 * M)})
    env = dict(env_of(containers(body)[0]))
    assert env["GOMAXPROCS"] == "1"
    assert "GOMEMLIMIT" not in env


def test_user_env_is_kept_and_same_name_replaced_in_place():
    main = {
        "name": "main",
        "env": [
            {"name": "KAFKA", "value": "kafka:9092"},
            {"name": "GOMAXPROCS", "value": "64"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "KONSUMERATOR_PARTITION", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
        ],
    }
    tmpl = template(main)
    before = copy.deepcopy(tmpl)
    body = body_for(config(tmpl), {"main": R(1100, 1 * GI, 1100, 1 * GI)})
    env = containers(body)[0]["env"]
    assert env[0] == {"name": "KAFKA", "value": "kafka:9092"}
    assert env[1] == {"name": "GOMAXPROCS", "value": "2"}
    assert env[2] == {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    # Replaced in place, and the valueFrom is gone (Go left it alongside the value).
    assert env[3] == {"name": "KONSUMERATOR_PARTITION", "value": "0"}
    assert [e["name"] for e in env[4:]] == [
        "GOMEMLIMIT",
        "KONSUMERATOR_INSTANCE",
        "KONSUMERATOR_NUM_PARTITIONS",
        "KONSUMERATOR_NUM_INSTANCES",
    ]
    assert dict(env_of(containers(body)[0]))["GOMEMLIMIT"] == "819MiB"
    assert tmpl == before  # the template is not mutated


def test_gomemlimit_removed_when_the_memory_limit_goes_away():
    """Difference 2: Go left a stale GOMEMLIMIT behind."""
    main = {"name": "main", "env": [{"name": "GOMEMLIMIT", "value": "999MiB"}]}
    body = body_for(config(template(main)), {"main": Resources(cpu_req_m=100, cpu_lim_m=1000)})
    assert "GOMEMLIMIT" not in dict(env_of(containers(body)[0]))


def test_every_container_gets_env_but_init_containers_are_untouched():
    init = {"name": "init", "image": "busybox", "env": [{"name": "X", "value": "1"}]}
    tmpl = template({"name": "main"}, {"name": "sidecar"})
    tmpl["template"]["spec"]["initContainers"] = [init]
    body = body_for(
        config(tmpl),
        {"main": R(400, 400 * M, 1000, 400 * M), "sidecar": R(100, 100 * M, 100, 100 * M)},
    )
    main, sidecar = containers(body)
    assert dict(env_of(main))["GOMEMLIMIT"] == "305MiB"
    assert dict(env_of(sidecar))["GOMEMLIMIT"] == "76MiB"
    assert dict(env_of(sidecar))["KONSUMERATOR_PARTITION"] == "0"
    assert body["spec"]["template"]["spec"]["initContainers"] == [init]


def test_resources_rendered_canonically():
    body = body_for(config(), {"main": R(1500, 2 * G, 2000, 2 * G)})
    assert containers(body)[0]["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2G"},
        "limits": {"cpu": "2", "memory": "2G"},
    }


def test_binary_memory_format_kept():
    body = body_for(
        config(), {"main": R(100, 512 * MI, 1000, 512 * MI)}, memory_format=Format.BINARY_SI
    )
    assert containers(body)[0]["resources"]["limits"]["memory"] == "512Mi"


def test_container_without_resources_gets_no_resources_field():
    main = {"name": "main", "resources": {"requests": {"cpu": "3"}}}
    body = body_for(config(template(main, {"name": "sidecar"})), {"sidecar": Resources()})
    for c in containers(body):
        assert "resources" not in c
        assert "GOMEMLIMIT" not in dict(env_of(c))


def test_requests_only_resources_have_no_limits_key():
    body = body_for(config(), {"main": Resources(cpu_req_m=100)})
    assert containers(body)[0]["resources"] == {"requests": {"cpu": "100m"}}


def test_labels_annotations_and_owner():
    cfg = config(num_partitions=30, per_instance=28)
    body = body_for(
        cfg,
        {},
        index=1,
        partitions=tuple(range(15, 30)),
        num_instances=2,
        scaling=ScalingState(ScalingStatus.SATURATED, T),
        cpu_shortage_m=1500,
        hash_value="12345",
    )
    meta = body["metadata"]
    assert body["apiVersion"] == "apps/v1"
    assert body["kind"] == "Deployment"
    assert meta["name"] == "c-1"
    assert meta["namespace"] == "ns"
    assert meta["labels"] == {
        "app": "c",
        "controller": "orders",
        "partitions": "15-29",
        "app.kubernetes.io/managed-by": "konsumerator",
    }
    assert meta["annotations"] == {
        keys.PARTITION: ",".join(str(p) for p in range(15, 30)),
        keys.CONSUMER_ID: "1",
        keys.GENERATION: "12345",
        keys.SCALING_STATUS: "SATURATED",
        keys.SCALING_STATUS_CHANGE: "2026-01-02T03:04:05Z",
        keys.CPU_SATURATION_LEVEL: "1500",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "konsumerator.lwolf.org/v1",
            "kind": "Consumer",
            "name": "orders",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_saturation_level_absent_when_no_shortage():
    body = body_for(config(), {}, cpu_shortage_m=0)
    assert keys.CPU_SATURATION_LEVEL not in body["metadata"]["annotations"]


def test_long_names_truncated_in_labels():
    long_owner = Owner(api_version="v1", kind="ConfigMap", name="o" * 80, uid="")
    body = body_for(config(name="n" * 60), {}, owner=long_owner)
    labels = body["metadata"]["labels"]
    assert labels["app"] == "n" * 60
    assert labels["controller"] == "o" * 63


def test_spec_is_the_template_with_our_fields():
    tmpl = template(replicas=3, strategy={"type": "Recreate"})
    body = body_for(config(tmpl), {})
    assert body["spec"]["replicas"] == 3
    assert body["spec"]["strategy"] == {"type": "Recreate"}
    assert body["spec"]["selector"] == {"matchLabels": {"app": "c"}}


# --- template hash -------------------------------------------------------------


def test_hash_is_stable_and_positive():
    a = template_hash(config=config(), num_instances=1)
    assert a == template_hash(config=config(), num_instances=1)
    assert a.isdigit()
    assert int(a) > 0
    assert int(a) < 2**63  # fits an int64 like Go's observedGeneration


def test_hash_ignores_key_order():
    t1 = {"selector": {"a": 1, "b": 2}, "template": {"spec": {"containers": [{"name": "m"}]}}}
    t2 = {"template": {"spec": {"containers": [{"name": "m"}]}}, "selector": {"b": 2, "a": 1}}
    assert template_hash(config=config(t1), num_instances=1) == template_hash(
        config=config(t2), num_instances=1
    )


@pytest.mark.parametrize(
    "change",
    [
        {"deployment_template": template(replicas=0)},
        {"partition_env_key": "OTHER"},
        {"num_partitions": 2},  # difference 16: Go did not hash numPartitions
    ],
)
def test_hash_changes_with_pod_shaping_inputs(change):
    assert template_hash(config=config(), num_instances=1) != template_hash(
        config=config(**change), num_instances=1
    )


def test_hash_changes_with_number_of_instances():
    assert template_hash(config=config(), num_instances=1) != template_hash(
        config=config(), num_instances=2
    )


def test_hash_ignores_policies_and_autoscaling():
    other = config(
        policies={"main": Bounds(min_cpu_m=100)},
        global_pool=GlobalPool(cpu_m=1000),
        autoscaling=Autoscaling(rate_per_core=1, ram_per_core_b=1),
        name="c",
    )
    assert template_hash(config=config(), num_instances=1) == template_hash(
        config=other, num_instances=1
    )


# --- times --------------------------------------------------------------------


def test_time_format_is_rfc3339_utc_seconds():
    assert format_time(T) == "2026-01-02T03:04:05Z"
    cet = timezone(timedelta(hours=1))
    assert format_time(datetime(2026, 1, 2, 4, 4, 5, tzinfo=cet)) == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T04:04:05+01:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected
