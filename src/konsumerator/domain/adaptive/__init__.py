"""The ``adaptive`` predictor: capacity with headroom and restart cost, without flapping.

The default ``spec.autoscaler.predictor`` (``adaptive``); ``predictor: naive``
(the Go operator's NaivePredictor, ``domain.prediction``) is the opt-out and is
unchanged. One concept per module:

* ``demand``: the rate an instance must be able to sustain (the sizing rule);
* ``memory``: what the policy remembers between passes (the recent peak, the
  last resize), kept in an annotation on the Deployment so that it survives
  operator restarts and leader failover (the recent peak alone, which moves
  every pass or two, is kept in the process between the writes, ``Recent``);
* ``policy``: the named rules that decide whether a proposal is applied now
  (urgent scale-up, minimum gap, drained backlog, hysteresis, dwell), each a
  small function, and the explanation every decision carries.
"""
