"""Every name Konsumerator writes into the cluster, in one place.

The strings match the Go operator (lwolf/konsumerator v1.2.2) byte for byte so
that a cluster can move from the Go operator to this one without a rollout of
every Deployment: same API group, same annotation keys, same Lease names.
"""

from typing import Final

GROUP: Final = "konsumerator.lwolf.org"
VERSION: Final = "v1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "Consumer"
PLURAL: Final = "consumers"

FIELD_MANAGER: Final = "konsumerator"
EVENT_SOURCE: Final = "konsumerator"

# Annotations on managed Deployments (read and written).
PARTITION: Final = f"{GROUP}/partition"
CONSUMER_ID: Final = f"{GROUP}/consumer-id"
GENERATION: Final = f"{GROUP}/generation"
SCALING_STATUS: Final = f"{GROUP}/scaling-status"
SCALING_STATUS_CHANGE: Final = f"{GROUP}/scaling-status-change"
CPU_SATURATION_LEVEL: Final = f"{GROUP}/cpu-saturation-level"
# Our own addition (updateMode InPlaceOrRecreate): every container's target size, as
# JSON ``{"<container>": {"requests": {...}, "limits": {...}}}``; the pods are resized
# to it in place while the template keeps the size it was rolled out with.
TARGET_RESOURCES: Final = f"{GROUP}/target-resources"

# Annotations set by users.
DISABLE_AUTOSCALER: Final = f"{GROUP}/disable-autoscaler"
VERBOSE: Final = f"{GROUP}/verbose"

# Guest mode: a ConfigMap carrying a ConsumerSpec.
MANAGED: Final = f"{GROUP}/managed"
GUEST_SPEC_KEY: Final = "consumer.yaml"
STATUS_PREFIX: Final = f"{GROUP}/status."

# Labels on managed Deployments.
LABEL_APP: Final = "app"
LABEL_CONTROLLER: Final = "controller"
LABEL_PARTITIONS: Final = "partitions"
# Our own addition (not in the Go operator): lets watches select only what we manage.
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "konsumerator"
# LABEL_MANAGED_BY also goes on the pod template (updateMode InPlaceOrRecreate only), so
# the pod watch selects only the pods of managed Deployments. The Deployment controller
# labels every pod with its template's hash, the suffix of its ReplicaSet's name.
POD_TEMPLATE_HASH: Final = "pod-template-hash"

# Environment variables injected into every container.
ENV_PARTITION: Final = "KONSUMERATOR_PARTITION"
ENV_NUM_PARTITIONS: Final = "KONSUMERATOR_NUM_PARTITIONS"
ENV_INSTANCE: Final = "KONSUMERATOR_INSTANCE"
ENV_NUM_INSTANCES: Final = "KONSUMERATOR_NUM_INSTANCES"
ENV_GOMAXPROCS: Final = "GOMAXPROCS"
ENV_GOMEMLIMIT: Final = "GOMEMLIMIT"


def lease_name(*, namespace: str | None) -> str:
    """Lease used for leader election; the Go operator's IDs, so both never lead at once."""
    return f"konsumerator-{namespace}" if namespace else "konsumerator-global"
