"""Konsumerator's developer tooling, kept out of the operator's wheel and image.

* :mod:`konsumerator_dev.testenv`: the local control plane (etcd, kube-apiserver,
  kube-controller-manager, KWOK), Prometheus, a Kafka broker, the lag exporter and the pod runner;
* :mod:`konsumerator_dev.sim`: the workload model, the live simulator and ``make demo``;
* :mod:`konsumerator_dev.bench`: the scorecard and the benchmarks;
* :mod:`konsumerator_dev.hack`: generated files and the pinned helm build.

One command line, ``konsumerator-dev`` (:mod:`konsumerator_dev.cli`, click like the operator's).
The operator (``konsumerator``) never imports this package (an import-linter contract).
"""
