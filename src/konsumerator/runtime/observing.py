"""The runtime's hooks for metrics, as one small protocol.

The runtime must not import ``prometheus_client`` (or any other metrics
library): it reports what happened through ``Observer`` and the ``obs``
package turns that into controller-runtime-compatible series. Every method has
a no-op default in ``NullObserver``, so tests and embedders only implement
what they look at. Labels are bounded: a controller name, a queue name, a
result, a resource; never a key.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    # Controllers (controller_runtime_reconcile_*).
    def reconcile_finished(self, *, controller: str, result: str, seconds: float) -> None: ...

    def reconcile_errored(self, *, controller: str, terminal: bool) -> None: ...

    # Work queues (workqueue_*).
    def queue_added(self, *, queue: str) -> None: ...

    def queue_depth(self, *, queue: str, depth: int) -> None: ...

    def queue_waited(self, *, queue: str, seconds: float) -> None: ...

    def queue_worked(self, *, queue: str, seconds: float) -> None: ...

    def queue_retried(self, *, queue: str) -> None: ...

    # Reflectors.
    def watch_restarted(self, *, reflector: str, reason: str) -> None: ...

    def relisted(self, *, reflector: str, objects: int) -> None: ...

    # Leader election (leader_election_master_status).
    def leadership_changed(self, *, name: str, leading: bool) -> None: ...


class NullObserver:
    """Observes nothing; the default everywhere."""

    def reconcile_finished(self, *, controller: str, result: str, seconds: float) -> None:
        pass

    def reconcile_errored(self, *, controller: str, terminal: bool) -> None:
        pass

    def queue_added(self, *, queue: str) -> None:
        pass

    def queue_depth(self, *, queue: str, depth: int) -> None:
        pass

    def queue_waited(self, *, queue: str, seconds: float) -> None:
        pass

    def queue_worked(self, *, queue: str, seconds: float) -> None:
        pass

    def queue_retried(self, *, queue: str) -> None:
        pass

    def watch_restarted(self, *, reflector: str, reason: str) -> None:
        pass

    def relisted(self, *, reflector: str, objects: int) -> None:
        pass

    def leadership_changed(self, *, name: str, leading: bool) -> None:
        pass


NULL_OBSERVER: Observer = NullObserver()
