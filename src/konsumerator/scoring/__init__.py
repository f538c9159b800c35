"""``konsumerator score``: how a sizing policy would do on a production trace.

Every policy plays the same trace against the same consumption model
(``model``) in virtual time, without a cluster; the operator's own policies
(``naive``, ``adaptive``) run through the operator's own reconcile pass
(``simulating.Replay``, the one pipeline), next to two bounds (``policies``):
``static-peak`` and the ``oracle``. ``play`` scores a run; ``traces`` reads a
user's CSV; ``command`` is what the CLI runs. The developers' published
scorecard (``konsumerator-dev bench scorecard``) uses the same pieces.
"""
