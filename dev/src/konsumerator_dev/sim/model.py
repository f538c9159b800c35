"""The consumption model, now the product's (``konsumerator.scoring.model``).

``konsumerator score`` plays it too, so there is one model; the simulator, the
demo and the scorecard import it from here as before.
"""

from konsumerator.scoring.model import (
    CpuModel,
    Instance,
    Model,
    Partition,
    Workload,
    fair_share,
)

__all__ = ["CpuModel", "Instance", "Model", "Partition", "Workload", "fair_share"]
