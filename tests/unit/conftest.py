"""Shared by every unit test directory.

``tests/unit`` holds no ``__init__.py``, so pytest (its default ``prepend`` import mode)
puts this directory on ``sys.path`` when it loads this file, before it collects any test
below it: the helpers in ``support`` import as ``support.<module>`` from any depth
(``tests/unit/domain/adaptive`` included), without a path of their own.
"""

from hypothesis import settings

# No per-example deadline: how long an example takes is a bench's question, not a
# test's (a property test of the scoring model took 275-558 ms an example at load 4-8
# on a shared 2-core machine, past hypothesis's default 200 ms, and failed).
settings.register_profile("konsumerator", deadline=None)
settings.load_profile("konsumerator")
