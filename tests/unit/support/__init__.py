"""Helpers shared by the unit tests (importable as ``support``: see ``tests/unit/conftest.py``)."""
