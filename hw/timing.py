"""Timing facts of the RTL that the cycle model (``model/reference/cycles.py``) is built on."""

DISPATCH_START = 2
"""The first keys are dispatched 2 cycles after the cycle ``start`` is written: the query unit takes
the first query in cycle 1 and it is in the dispatch slot in cycle 2."""

KEPT_FIFO_LATENCY = 2
"""Cycles from the front end pushing a kept beat to the back end taking it from the FIFO."""

PASS_LATENCY = 4
"""Cycles from the softmax pass issuing a query's last kept key to its accumulators being final."""
