"""The register bus: plain address / data / write-enable, synchronous read (one cycle)."""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class BusSignature(wiring.Signature):
    """Host side of the bus. ``w_en`` writes ``w_data`` to ``addr`` at the clock edge; ``r_en``
    returns the register at ``addr`` on ``r_data`` in the next cycle."""

    def __init__(self, addr_width: int, data_width: int) -> None:
        super().__init__({
            "addr": Out(addr_width),
            "w_en": Out(1),
            "w_data": Out(data_width),
            "r_en": Out(1),
            "r_data": In(data_width),
        })
