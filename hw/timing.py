"""Timing facts of the RTL that the cycle model (``model/cycles.py``) is built on."""

DISPATCH_START = 2
"""The first keys are dispatched 2 cycles after the cycle ``start`` is written: the query unit takes
the first query in cycle 1 and it is in the dispatch slot in cycle 2."""
