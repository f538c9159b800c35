"""Build an authenticated API client from a kubeconfig or the pod's service account.

lightkube's config layer does the hard, security-relevant part: parsing
kubeconfig (contexts, embedded or file certificates, exec plugins), the
in-cluster service account (CA bundle, token file re-read on 401 so rotated
tokens keep working), and building an ``httpx2.AsyncClient`` with the right
TLS context and auth. We use that client directly (see ``requesting`` for
why no lightkube ``AsyncClient``): the base URL is the API server, every path
is absolute, and the default timeout bounds every non-watch request.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx2
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig, SingleConfig

from konsumerator.kube import guarding, streaming
from konsumerator.kube.requesting import ApiClient, RequestCounts, RequestHook


class ConfigError(Exception):
    """No usable kubeconfig or in-cluster configuration."""


def load_config(
    *, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> SingleConfig:
    """The kubeconfig at ``kubeconfig``; without one, in-cluster, then $KUBECONFIG."""
    try:
        config = KubeConfig.from_file(Path(kubeconfig)) if kubeconfig else KubeConfig.from_env()
        selected = config.get(context_name=context)
    except Exception as exc:  # lightkube raises several types for bad files
        raise ConfigError(f"cannot load Kubernetes configuration: {exc}") from exc
    if selected is None:
        raise ConfigError("the kubeconfig has no current context")
    return selected


def connect(
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    timeout: float = 30.0,
    counts: RequestCounts | None = None,
    hook: RequestHook | None = None,
) -> ApiClient:
    """An ``ApiClient`` for the selected cluster (close it with ``aclose``)."""
    config = load_config(kubeconfig=kubeconfig, context=context)
    params = client_adapter.ConnectionParams(timeout=httpx2.Timeout(timeout), trust_env=False)
    http = client_adapter.AsyncClient(config, params)
    guarding.install(http)
    watches = streaming.DirectWatches(http=http, ssl_context=streaming.ssl_context_of(http))
    return ApiClient(http=http, counts=counts, hook=hook, watches=watches)


def default_namespace(
    *, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> str:
    """The namespace of the selected context (or of the pod's service account)."""
    return load_config(kubeconfig=kubeconfig, context=context).namespace
