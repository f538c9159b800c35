"""A Deployment write refused for a field the template has and no DeploymentSpec declares.

The CRD keeps ``deploymentTemplate`` free-form, so a typo in it reaches the apiserver,
whose server-side apply refuses it with a 500 naming the field by its path in the
Deployment. The status and the Events name it by its path in the Consumer instead.

Table-driven over the apiserver's answers (as a real apiserver gives them:
tests/cluster/test_hostile_template_fields.py): a field at the DeploymentSpec's level, in
a container (by the container's name), in the pod spec, two at once; any other refusal
keeps the apiserver's words.
"""

import pytest

from konsumerator.controllers.acting import refusal
from konsumerator.runtime import errors

PREFIX = "failed to create typed patch object (ns/orders-0; apps/v1, Kind=Deployment): "
CASES = {
    "the spec's level": (
        PREFIX + ".spec.metadata: field not declared in schema",
        "spec.deploymentTemplate.metadata: not a field of an apps/v1 DeploymentSpec",
    ),
    "a container": (
        PREFIX + '.spec.template.spec.containers[name="main"].imagePullPolicyy:'
        " field not declared in schema",
        'spec.deploymentTemplate.template.spec.containers[name="main"].imagePullPolicyy:'
        " not a field",
    ),
    "the pod spec": (
        PREFIX + ".spec.template.spec.restartPolcy: field not declared in schema",
        "spec.deploymentTemplate.template.spec.restartPolcy: not a field",
    ),
    "two fields": (
        PREFIX + ".spec.a: field not declared in schema, .spec.b: field not declared in schema",
        "spec.deploymentTemplate.a, spec.deploymentTemplate.b: not a field",
    ),
    "another refusal": ("admission webhook denied the request", "500: admission webhook denied"),
}


@pytest.mark.parametrize(("message", "said"), CASES.values(), ids=CASES.keys())
def test_an_undeclared_template_field_is_named_by_its_path_in_the_consumer(
    message: str, said: str
) -> None:
    assert refusal(errors.ServerError(status=500, message=message)).startswith(said)
