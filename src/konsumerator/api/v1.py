"""The Consumer API (``konsumerator.lwolf.org/v1``) as validated Python values.

The CRD schema in ``crd.yaml`` is the contract with the apiserver, which
rejects bad Consumers itself (bounds and CEL rules). These models apply the
same rules to input that never passes through the apiserver: guest-mode
ConfigMaps and the manifests given to ``konsumerator simulate``. Every error
names the field (``spec.autoscaler.prometheus.ratePerCore``), and a parsed
spec converts into the planner's exact, default-resolved
:class:`~konsumerator.domain.specs.ConsumerConfig`.

Field names and JSON shapes are the Go operator's (v1.2.2), so existing
Consumer manifests keep working unchanged.
"""

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from konsumerator.api import templates
from konsumerator.domain import disruption, durations, keys, quantities
from konsumerator.domain.specs import (
    Autoscaling,
    Bounds,
    ConsumerConfig,
    FallbackStrategy,
    GlobalPool,
    Predictor,
    UpdateMode,
)


def _quantity(value: object) -> str:
    """A resource amount: a valid quantity, not negative, within int64 milli-units.

    The bound is what every Kubernetes component can hold (the scheduler reads
    MilliValue() into an int64); beyond it no Deployment could be sized from
    the value, and the planner's arithmetic could not be written back.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a Kubernetes quantity such as 500m, 2 or 1Gi")
    try:
        parsed = quantities.parse_quantity(value)
    except quantities.QuantityError as e:
        raise ValueError(str(e)) from None
    if parsed.nanos < 0:
        raise ValueError(f"{value} is negative; resources cannot be")
    if not quantities.fits_int64_millis(parsed):
        raise ValueError(
            f"{value} is more than Kubernetes can hold"
            f" (at most {quantities.MAX_MILLIS}m, the int64 milli-unit limit)"
        )
    return parsed.canonical()


def _duration(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a Go duration string such as 30s, 5m or 1h30m")
    try:
        durations.parse_duration(value)
    except durations.DurationError as e:
        raise ValueError(str(e)) from None
    return value


def _not_a_boolean(value: object) -> object:
    """Refuse ``true``/``yes`` where the CRD wants a number (``type: integer``).

    Pydantic's lax mode reads a boolean as 1, so guest YAML's ``numPartitions:
    yes`` would have meant one partition; the apiserver refuses it for a Consumer.
    Other lax forms are kept as they were.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


Quantity = Annotated[str, BeforeValidator(_quantity)]
# An integer field as the CRD types it: a boolean is refused, not read as 0 or 1.
Integer = Annotated[int, BeforeValidator(_not_a_boolean)]

# The CRD's ``numPartitions`` maximum (crd.yaml), enforced here for guest mode too:
# the planner builds one Deployment per partition group and a status entry per partition.
MAX_PARTITIONS = 100_000
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
ENV_NAME_PATTERN = r"^([-._a-zA-Z][-._a-zA-Z0-9]*)?$"
Duration = Annotated[str, BeforeValidator(_duration)]


def _seconds(text: str) -> float:
    return durations.parse_duration(text).seconds


def _millis(text: str) -> int:
    return quantities.millis(quantities.parse_quantity(text))


def _bytes(text: str) -> int:
    return quantities.value(quantities.parse_quantity(text))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class QuerySpec(_Model):
    query: str = Field(min_length=1)
    partition_label: str = Field(alias="partitionLabel", min_length=1)


class CpuUsageSpec(_Model):
    """The optional CPU-usage query: cores used per pod, for the learned rate per core."""

    query: str = Field(min_length=1)
    pod_label: str = Field(
        alias="podLabel", min_length=1, max_length=128, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$"
    )


class PrometheusSpec(_Model):
    address: list[str] = Field(min_length=1)
    min_sync_period: Duration = Field(alias="minSyncPeriod", default="1m")
    offset: QuerySpec
    production: QuerySpec
    consumption: QuerySpec
    cpu_usage: CpuUsageSpec | None = Field(alias="cpuUsage", default=None)
    fallback_strategy: Literal["min", "max"] = Field(alias="fallbackStrategy", default="min")
    rate_per_core: Integer = Field(alias="ratePerCore", gt=0, le=_INT64_MAX)
    ram_per_core: Quantity = Field(alias="ramPerCore")
    cpu_increment: Quantity = Field(alias="cpuIncrement", default="100m")
    tolerable_lag: Duration | None = Field(alias="tolerableLag", default=None)
    critical_lag: Duration | None = Field(alias="criticalLag", default=None)
    recovery_time: Duration = Field(alias="recoveryTime")

    @field_validator("address")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for i, address in enumerate(value):
            if not address.startswith(("http://", "https://")):
                # Not quoted: whatever was pasted here (a token?) ends up in status and Events.
                raise ValueError(f"item {i} is not an http:// or https:// URL")
        return value

    @field_validator("min_sync_period")
    @classmethod
    def _at_least_a_second(cls, value: str) -> str:
        # Each refresh queries Prometheus three times per address: 1ns would
        # make every reconcile a refresh and hammer Prometheus.
        if _seconds(value) < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("tolerable_lag", "critical_lag")
    @classmethod
    def _not_negative(cls, value: str | None) -> str | None:
        # A negative threshold is always reached: every instance would be
        # lagging (or at maxAllowed) whatever its lag.
        if value is not None and _seconds(value) < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("recovery_time")
    @classmethod
    def _whole_second(cls, value: str) -> str:
        # The predictor works in whole seconds like the Go operator; below 1s
        # the backlog term would vanish (Go divided by zero).
        if _seconds(value) < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("cpu_increment")
    @classmethod
    def _whole_millicores(cls, value: str) -> str:
        if quantities.parse_quantity(value) < quantities.parse_quantity("1m"):
            raise ValueError("must be at least 1m")
        return value

    @field_validator("ram_per_core")
    @classmethod
    def _whole_bytes(cls, value: str) -> str:
        if _bytes(value) < 1:
            raise ValueError("must be at least 1 byte")
        return value


class AutoscalerSpec(_Model):
    mode: str = ""
    pending_scale_up_duration: Duration = Field(alias="pendingScaleUpDuration", default="5m")
    pending_scale_down_duration: Duration = Field(alias="pendingScaleDownDuration", default="15m")
    update_mode: Literal["InPlaceOrRecreate", "Recreate"] = Field(
        alias="updateMode", default="InPlaceOrRecreate"
    )
    prometheus: PrometheusSpec | None = None
    predictor: Literal["naive", "adaptive"] = "adaptive"
    target_utilization_percent: Integer = Field(
        alias="targetUtilizationPercent", default=95, ge=10, le=100
    )
    restart_time: Duration = Field(alias="restartTime", default="30s")
    restart_budget_percent: Integer = Field(
        alias="restartBudgetPercent", default=disruption.DEFAULT_PERCENT, ge=1, le=100
    )

    @field_validator("pending_scale_up_duration", "pending_scale_down_duration", "restart_time")
    @classmethod
    def _not_negative(cls, value: str) -> str:
        # A wait cannot be negative; 0 (resize at once) is allowed.
        if _seconds(value) < 0:
            raise ValueError("must not be negative")
        return value

    @model_validator(mode="after")
    def _prometheus_required(self) -> "AutoscalerSpec":
        if self.mode == "prometheus" and self.prometheus is None:
            raise ValueError("mode prometheus needs the prometheus section")
        return self


ResourceList = dict[Literal["cpu", "memory"] | str, Quantity]


class ContainerPolicy(_Model):
    container_name: str = Field(alias="containerName", min_length=1)
    mode: Literal["Auto", "Off"] | None = None
    min_allowed: ResourceList = Field(alias="minAllowed", default_factory=dict)
    max_allowed: ResourceList = Field(alias="maxAllowed", default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> "ContainerPolicy":
        for resource in ("cpu", "memory"):
            low, high = self.min_allowed.get(resource), self.max_allowed.get(resource)
            if low is not None and high is not None:
                a, b = quantities.parse_quantity(low), quantities.parse_quantity(high)
                if a > b:
                    raise ValueError(
                        f"minAllowed.{resource} ({low}) is greater than"
                        f" maxAllowed.{resource} ({high})"
                    )
        for side, values in (("minAllowed", self.min_allowed), ("maxAllowed", self.max_allowed)):
            memory = values.get("memory")
            if memory is not None and quantities.is_fractional_bytes(
                quantities.parse_quantity(memory)
            ):
                raise ValueError(f"{side}.memory ({memory}) is not a whole number of bytes")
        return self


class GlobalPolicy(_Model):
    max_allowed: ResourceList = Field(alias="maxAllowed", default_factory=dict)


class ResourcePolicy(_Model):
    global_policy: GlobalPolicy | None = Field(alias="globalPolicy", default=None)
    container_policies: list[ContainerPolicy] = Field(
        alias="containerPolicies", default_factory=list
    )

    @field_validator("container_policies")
    @classmethod
    def _unique(cls, value: list[ContainerPolicy]) -> list[ContainerPolicy]:
        names = [p.container_name for p in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate containerName {', '.join(duplicates)}")
        return value


class ConsumerSpec(_Model):
    num_partitions: Integer = Field(alias="numPartitions", ge=1, le=MAX_PARTITIONS)
    num_partitions_per_instance: Integer = Field(
        alias="numPartitionsPerInstance", default=1, ge=1, le=_INT32_MAX
    )
    name: str = Field(min_length=1, max_length=60, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str = Field(min_length=1, max_length=63)
    # Kubernetes' (strict) environment variable name, which every version
    # accepts; "" means the default.
    partition_env_key: str = Field(
        alias="partitionEnvKey",
        default=keys.ENV_PARTITION,
        max_length=253,
        pattern=ENV_NAME_PATTERN,
    )
    autoscaler: AutoscalerSpec = Field(default_factory=AutoscalerSpec)
    deployment_template: dict[str, Any] = Field(alias="deploymentTemplate")
    resource_policy: ResourcePolicy = Field(alias="resourcePolicy", default_factory=ResourcePolicy)

    @field_validator("partition_env_key")
    @classmethod
    def _env_name(cls, value: str) -> str:
        return value or keys.ENV_PARTITION

    @field_validator("deployment_template")
    @classmethod
    def _template(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = templates.problems(value)
        if found:
            raise ValueError("; ".join(f"{path} {message}" for path, message in found))
        return value

    @model_validator(mode="after")
    def _policies_name_containers(self) -> "ConsumerSpec":
        # A policy for a container that does not exist bounds nothing; it is
        # almost always a typo, and the real container then runs unbounded.
        containers = self.deployment_template["template"]["spec"]["containers"]
        names = [c["name"] for c in containers]
        for i, policy in enumerate(self.resource_policy.container_policies):
            if policy.container_name not in names:
                raise ValueError(
                    f"resourcePolicy.containerPolicies[{i}].containerName"
                    f" {policy.container_name!r} is not a container of"
                    f" deploymentTemplate.template.spec.containers ({', '.join(names)})"
                )
        return self


class SpecError(ValueError):
    """A spec that cannot be used, with one line per problem, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _location(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.isprintable():
            # A key the user wrote with a newline (or another unprintable character) is
            # named by its repr: a message is one line.
            path += f"[{part!r}]"
        elif not part.startswith(("function-", "literal[", "dict[")):
            path += f".{part}"
    return path


def parse_spec(raw: object, *, field_prefix: str = "spec") -> ConsumerSpec:
    """Validate a ConsumerSpec mapping; raise :class:`SpecError` naming every bad field."""
    if not isinstance(raw, Mapping):
        raise SpecError([f"{field_prefix}: must be a mapping"])
    try:
        return ConsumerSpec.model_validate(raw, by_alias=True)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{_location(field_prefix, err['loc'])}: {message}")
        raise SpecError(problems) from None


def _bounds(policy: ContainerPolicy) -> Bounds:
    def opt(values: Mapping[str, str], key: str, conv: Any) -> int | None:
        return conv(values[key]) if key in values else None

    return Bounds(
        min_cpu_m=opt(policy.min_allowed, "cpu", _millis),
        min_mem_b=opt(policy.min_allowed, "memory", _bytes),
        max_cpu_m=opt(policy.max_allowed, "cpu", _millis),
        max_mem_b=opt(policy.max_allowed, "memory", _bytes),
    )


# How long a resize in place stops consumption, for the adaptive predictor's R: the
# kubelet resizes the running container's cgroup, a pause of seconds, not a restart.
IN_PLACE_ACTUATION_S = 5.0


def _actuation_s(autoscaler: AutoscalerSpec) -> float:
    """The adaptive predictor's R: ``restartTime`` under Recreate, a few seconds in place."""
    if autoscaler.update_mode == UpdateMode.RECREATE.value:
        return _seconds(autoscaler.restart_time)
    return min(IN_PLACE_ACTUATION_S, _seconds(autoscaler.restart_time))


def to_config(spec: ConsumerSpec, *, paused: bool = False) -> ConsumerConfig:
    """The planner's view of a validated spec."""
    prom = spec.autoscaler.prometheus
    autoscaling = None
    if spec.autoscaler.mode == "prometheus" and prom is not None and not paused:
        autoscaling = Autoscaling(
            rate_per_core=prom.rate_per_core,
            ram_per_core_b=_bytes(prom.ram_per_core),
            cpu_increment_m=_millis(prom.cpu_increment),
            recovery_s=_seconds(prom.recovery_time),
            tolerable_lag_s=_seconds(prom.tolerable_lag) if prom.tolerable_lag else None,
            critical_lag_s=_seconds(prom.critical_lag) if prom.critical_lag else None,
            min_sync_period_s=_seconds(prom.min_sync_period),
            pending_up_s=_seconds(spec.autoscaler.pending_scale_up_duration),
            pending_down_s=_seconds(spec.autoscaler.pending_scale_down_duration),
            fallback=FallbackStrategy(prom.fallback_strategy),
            memory_format=quantities.parse_quantity(prom.ram_per_core).format,
            predictor=Predictor(spec.autoscaler.predictor),
            target_utilization=spec.autoscaler.target_utilization_percent / 100,
            actuation_s=_actuation_s(spec.autoscaler),
            learns=prom.cpu_usage is not None,
            restart_budget_percent=spec.autoscaler.restart_budget_percent,
        )
    pool = None
    if spec.resource_policy.global_policy is not None:
        cap = spec.resource_policy.global_policy.max_allowed
        pool = GlobalPool(
            cpu_m=_millis(cap["cpu"]) if "cpu" in cap else None,
            mem_b=_bytes(cap["memory"]) if "memory" in cap else None,
        )
    return ConsumerConfig(
        name=spec.name,
        namespace=spec.namespace,
        num_partitions=spec.num_partitions,
        per_instance=spec.num_partitions_per_instance,
        deployment_template=spec.deployment_template,
        partition_env_key=spec.partition_env_key,
        autoscaling=autoscaling,
        policies={p.container_name: _bounds(p) for p in spec.resource_policy.container_policies},
        global_pool=pool,
        fallback=FallbackStrategy(prom.fallback_strategy if prom else "min"),
        paused=paused,
        update_mode=UpdateMode(spec.autoscaler.update_mode),
    )
