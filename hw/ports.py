"""The ports of the two Verilog tops, from the config: what ``leopard generate`` emits, what the FPGA
harness and UART bridge wrap, and what the host reaches, without building the RTL."""

from __future__ import annotations

from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from leopard.hw import layouts
from leopard.hw.bus import BusSignature
from leopard.hw.config import EngineConfig
from leopard.hw.regmap import register_map

BITPARALLEL_TOPS = ("bitparallel", "bitparallel-lut")
"""The dense bit-parallel unit: one multiplier per product (for DSPs), or half products (for LUTs)."""
TOPS = ("engine", "frontend", *BITPARALLEL_TOPS)
KEPT_STREAM_TOPS = ("frontend", *BITPARALLEL_TOPS)
"""The tops whose output is the ``kept`` stream: the bit-serial front end and the dense bit-parallel
unit, with the same ports."""


def host_members(cfg: EngineConfig, streams: dict[str, wiring.Member]) -> dict[str, wiring.Member]:
    """The ports every top shares (register bus, ``q`` and ``k`` streams, ``busy``, ``done``, the
    ``status`` stream when built) around its own ``streams``."""
    regs = register_map(cfg)
    members: dict[str, wiring.Member] = {
        "bus": In(BusSignature(regs.addr_width, regs.data_width)),
        "q": In(stream.Signature(layouts.query(cfg))),
        "k": In(stream.Signature(layouts.key_beat(cfg))),
        **streams,
        "busy": Out(1),
        "done": Out(1),
    }
    if cfg.status_stream:
        members["status"] = Out(stream.Signature(layouts.status_beat(cfg)))
    return members


def top_signature(cfg: EngineConfig, top: str) -> wiring.Signature:
    """The ports of ``top``: the front end's output is the ``kept`` stream, the engine's ``v`` in and
    the ``out`` result packets."""
    if top in KEPT_STREAM_TOPS:
        streams = {"kept": Out(stream.Signature(layouts.kept_beat(cfg)))}
    elif top == "engine":
        streams = {
            "v": In(stream.Signature(layouts.value_beat(cfg))),
            "out": Out(stream.Signature(layouts.output_packet(cfg))),
        }
    else:
        raise ValueError(f"unknown top {top!r}; use one of {', '.join(TOPS)}")
    return wiring.Signature(host_members(cfg, streams))
