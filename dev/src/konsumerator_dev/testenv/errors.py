"""Errors of the test environment, each carrying what a human needs to act on it.

Why: a control plane assembled from six processes fails in many ways (a build, a port, a
component that exits at start). Each failure names the component and includes the tail of
its log, so a failing ``make test`` or a pytest ERROR is diagnosable without digging.
"""

from __future__ import annotations


class TestenvError(RuntimeError):
    """Base class: something in the local control plane or its build went wrong."""

    __test__ = False  # not a pytest test class, despite the name


class NotBuilt(TestenvError):
    """The binaries for the pinned versions are not in the cache yet."""


class BuildError(TestenvError):
    """A build step failed; the message holds the command and the last lines of its log."""


class PortInUse(TestenvError):
    """A loopback port a component needs is already taken."""


class ComponentDied(TestenvError):
    """A process we started exited; the message holds the tail of its log."""


class NotReady(TestenvError):
    """A component did not become ready in time; the message holds the tail of its log."""
