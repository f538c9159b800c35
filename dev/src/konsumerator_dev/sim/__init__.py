"""The workload model, the live simulator and ``make demo`` (``konsumerator-dev sim``)."""
