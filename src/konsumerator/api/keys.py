"""Re-export of :mod:`konsumerator.domain.keys` for the dev tooling only.

The names written into the cluster live in the domain, so that ``api`` ->
``domain`` is one way. The simulator and the test environment (``sim``,
``testenv``) and ``bench/`` still import this path; they move out of the
product package separately and switch to ``konsumerator.domain.keys`` then,
after which this module goes. Operator code imports ``konsumerator.domain.keys``.
"""

from konsumerator.domain.keys import *  # noqa: F403
