"""Konsumerator: run Kafka consumers on Kubernetes, one Deployment per partition group,
sized from Prometheus lag metrics."""

__version__ = "0.1.0"
