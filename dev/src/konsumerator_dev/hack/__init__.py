"""Repository maintenance: generated files and the pinned helm build (``konsumerator-dev hack``)."""
