"""Benchmarks and the autoscaling scorecard (``konsumerator-dev bench ...``); not tests."""
