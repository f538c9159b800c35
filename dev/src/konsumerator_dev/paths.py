"""Where the repository's files are, seen from the dev package.

``konsumerator_dev`` is only ever installed editable from this repository (a uv workspace
member, ``dev/``), so the checkout is always three directories above this package:
``<repo>/dev/src/konsumerator_dev``. The dev tools read the examples, the CRD and the docs
from there and write generated files back into it.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
