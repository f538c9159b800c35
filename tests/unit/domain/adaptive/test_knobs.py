"""``policy.knobs_for``: the policy's parameters resolved from a Consumer's config,
built once per distinct config (every instance of a Consumer asks at every refreshing
pass) and always the values of the config asked for."""

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.adaptive.policy import Knobs, knobs_for
from konsumerator.domain.specs import Autoscaling

seconds = st.floats(min_value=0.0, max_value=86_400.0, allow_nan=False)

configs = st.builds(
    Autoscaling,
    rate_per_core=st.integers(min_value=1, max_value=100_000),
    ram_per_core_b=st.integers(min_value=1, max_value=2**40),
    recovery_s=seconds,
    tolerable_lag_s=st.none() | seconds,
    min_sync_period_s=seconds,
    pending_up_s=seconds,
    pending_down_s=seconds,
    target_utilization=st.floats(min_value=0.1, max_value=1.0),
    actuation_s=seconds,
    learned_rate_per_core=st.none() | st.integers(min_value=1, max_value=100_000),
)


def expected(autoscaling: Autoscaling) -> Knobs:
    return Knobs(
        utilization=autoscaling.target_utilization,
        actuation_s=autoscaling.actuation_s,
        recovery_s=max(1.0, autoscaling.recovery_s),
        tolerable_lag_s=autoscaling.tolerable_lag_s,
        min_sync_s=autoscaling.min_sync_period_s,
        pending_up_s=autoscaling.pending_up_s,
        pending_down_s=autoscaling.pending_down_s,
    )


@given(configs, configs)
def test_the_knobs_are_the_values_of_the_config_asked_for(a: Autoscaling, b: Autoscaling) -> None:
    assert knobs_for(a) == expected(a)
    assert knobs_for(b) == expected(b)
    # Asked again after another config: still its own values, not the last one's.
    assert knobs_for(a) == expected(a)


@given(configs)
def test_equal_configs_share_one_knobs_built_once(autoscaling: Autoscaling) -> None:
    first = knobs_for(autoscaling)
    assert knobs_for(dataclasses.replace(autoscaling)) is first
    assert knobs_for(autoscaling) is first
