"""The memory-mapped register block, built from the register map (``hw/regmap.py``).

Ports, named after the map (lower case, ``REGISTER_FIELD`` or ``REGISTER`` for one-field registers):
read/write fields are outputs holding the stored value; read-only fields are inputs the engine drives
(the identification and parameter registers are constants); write-only fields are one-cycle strobes.
Register arrays (``THRESHOLD``, ``SCALE``) are small memories: ``<array>_slot`` selects an entry and
``<array>`` returns it combinationally.

Latency: a write is visible on the outputs the cycle after ``w_en``; ``r_data`` is valid the cycle after
``r_en``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw.bus import BusSignature
from leopard.hw.config import EngineConfig, clog2
from leopard.hw.regmap import Field, Register, params_values, register_map


def port_name(register: Register, field: Field) -> str:
    if len(register.fields) == 1:
        return register.name.lower()
    return f"{register.name}_{field.name}".lower()


def _field_shape(field: Field) -> Shape:
    return signed(field.width) if field.signed else unsigned(field.width)


class RegisterBlock(wiring.Component):
    """Register storage and the bus read multiplexer for an engine built from ``cfg``."""

    def __init__(self, cfg: EngineConfig) -> None:
        self._cfg = cfg
        self._map = register_map(cfg)
        self._constants = params_values(cfg)
        members: dict[str, wiring.Member] = {
            "bus": In(BusSignature(self._map.addr_width, self._map.data_width)),
        }
        for register in self._map.registers:
            if register.count > 1:
                members[f"{register.name.lower()}_slot"] = In(max(1, clog2(register.count)))
                members[register.name.lower()] = Out(self._array_shape(register))
                continue
            if register.name in self._constants:
                continue
            direction = In if register.access == "ro" else Out
            for field in register.fields:
                members[port_name(register, field)] = direction(_field_shape(field))
        super().__init__(members)

    @staticmethod
    def _array_shape(register: Register) -> Shape:
        if len(register.fields) == 1:
            return _field_shape(register.fields[0])
        return unsigned(register.width)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        bus = self.bus
        read_value = Signal(self._map.data_width)
        for register in self._map.registers:
            if register.count > 1:
                self._elaborate_array(m, register, read_value)
                continue
            selected = bus.addr == register.offset
            if register.name in self._constants:
                with m.If(selected):
                    m.d.comb += read_value.eq(self._constants[register.name])
                continue
            for field in register.fields:
                port = getattr(self, port_name(register, field))
                if register.access == "rw":
                    with m.If(bus.w_en & selected):
                        m.d.sync += port.eq(bus.w_data[field.lsb:field.lsb + field.width])
                elif register.access == "wo":
                    m.d.comb += port.eq(bus.w_en & selected & bus.w_data[field.lsb])
                if register.access != "wo":
                    with m.If(selected):
                        m.d.comb += read_value[field.lsb:field.lsb + field.width].eq(port)
        with m.If(bus.r_en):
            m.d.sync += bus.r_data.eq(read_value)
        return m

    def _elaborate_array(self, m: Module, register: Register, read_value: Signal) -> None:
        name = register.name.lower()
        store = memory.Memory(shape=unsigned(register.width), depth=register.count, init=[])
        m.submodules[name] = store
        write = store.write_port()
        engine = store.read_port(domain="comb")
        host = store.read_port(domain="comb")
        bus = self.bus
        index = Signal(range(1 << self._map.addr_width))
        m.d.comb += index.eq(bus.addr - register.offset)
        inside = (bus.addr >= register.offset) & (bus.addr < register.offset + register.count)
        m.d.comb += [
            write.addr.eq(index),
            write.data.eq(bus.w_data),
            write.en.eq(bus.w_en & inside),
            host.addr.eq(index),
            engine.addr.eq(getattr(self, f"{name}_slot")),
            getattr(self, name).eq(engine.data),
        ]
        with m.If(inside):
            m.d.comb += read_value.eq(host.data)
