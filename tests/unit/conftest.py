"""Shared by every unit test directory.

``tests/unit`` holds no ``__init__.py``, so pytest (its default ``prepend`` import mode)
puts this directory on ``sys.path`` when it loads this file, before it collects any test
below it: the helpers in ``support`` import as ``support.<module>`` from any depth
(``tests/unit/domain/adaptive`` included), without a path of their own.
"""
