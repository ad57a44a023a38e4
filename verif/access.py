"""One cycle-stepping interface over two simulators, so a bench runs unchanged on Amaranth's simulator
and on cocotb (Icarus, Verilator) driving the emitted Verilog.

Each cycle a bench sets inputs, calls ``settle`` (combinational logic reacts), samples outputs (the
values the DUT sees at the coming clock edge), then calls ``next_cycle``. Ports are named as in the
Verilog: the signature path joined with ``__`` (``q__payload``, ``kept__ready``, ``bus__addr``).
"""

from __future__ import annotations

from typing import Any, Protocol

from amaranth.hdl import Value
from amaranth.lib import wiring


class SimAccess(Protocol):
    def set(self, name: str, value: int) -> None: ...

    def get(self, name: str) -> int: ...

    async def settle(self) -> None: ...

    async def next_cycle(self) -> None: ...


class AmaranthAccess:
    """Ports of a ``wiring.Component`` inside an Amaranth ``Simulator`` testbench."""

    def __init__(self, ctx: Any, dut: wiring.Component) -> None:
        self._ctx = ctx
        self._ports = {
            "__".join(str(p) for p in path): Value.cast(value)
            for path, _, value in dut.signature.flatten(dut)
        }

    def set(self, name: str, value: int) -> None:
        self._ctx.set(self._ports[name], value)

    def get(self, name: str) -> int:
        value = self._ctx.get(self._ports[name])
        shape = self._ports[name].shape()
        return value & ((1 << shape.width) - 1) if shape.signed else value

    async def settle(self) -> None:
        return None

    async def next_cycle(self) -> None:
        await self._ctx.tick()


class CocotbAccess:
    """Top-level ports of a cocotb DUT; the clock must be running on ``dut.clk``."""

    def __init__(self, dut: Any) -> None:
        from cocotb.triggers import FallingEdge, ReadOnly

        self._dut = dut
        self._handles: dict[str, Any] = {}
        self._falling = FallingEdge(dut.clk)
        self._read_only = ReadOnly()

    def _handle(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = getattr(self._dut, name)
        return handle

    def set(self, name: str, value: int) -> None:
        self._handle(name).value = value

    def get(self, name: str) -> int:
        value = self._handle(name).value
        if not value.is_resolvable:
            raise ValueError(f"{name} holds unknown bits: {value}")
        return int(value)

    async def settle(self) -> None:
        await self._read_only

    async def next_cycle(self) -> None:
        await self._falling
