"""The protocol of the UART bridge (``docs/fpga.md``) from a host to a core's register bus and
valid/ready streams: 8N1 serial, one command frame from the host, one reply frame back.

``BridgeMap`` describes it for one core (command bytes, byte counts, stream ids) and encodes the host's
frames; the RTL (``leopard.hw.fpga.uart_bridge``) and the host side (``leopard.sw.uart_backend``) both
take it from the core's signature, so neither copies a width by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.hdl import Shape
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from leopard.hw.bus import BusSignature
from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.ports import top_signature

READ = 0x01
WRITE = 0x02
PUSH = 0x10
PULL = 0x20
ACK = 0x01
TAKEN = 0x01
FULL = 0x00
BEAT = 0x01
EMPTY = 0x00
UNKNOWN = 0xFF
MIN_DIVISOR = 4


def check_divisor(divisor: int) -> None:
    """The UART samples a bit in its middle: it needs at least ``MIN_DIVISOR`` cycles per bit."""
    if divisor < MIN_DIVISOR:
        raise LeopardError(f"the UART needs at least {MIN_DIVISOR} clock cycles per bit, got {divisor}")


def byte_count(bits: int) -> int:
    return (bits + 7) // 8


@dataclass(frozen=True)
class BridgeStream:
    """One stream the bridge reaches: ``id`` is its index among the streams of its direction."""

    name: str
    id: int
    width: int

    @property
    def bytes(self) -> int:
        return byte_count(self.width)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "bits": self.width, "bytes": self.bytes}


@dataclass(frozen=True)
class BridgeMap:
    """The protocol of a bridge to one core. All multi-byte fields are little endian.

    - ``READ`` (``0x01``), address (``addr_bytes``) → the register (``data_bytes``);
    - ``WRITE`` (``0x02``), address, data → ``ACK`` (``0x01``);
    - ``PUSH | id`` (``0x10 + id``), payload (the input stream's ``bytes``) → ``TAKEN`` (``0x01``) when
      the bridge took the beat (it offers it to the core until accepted), ``FULL`` (``0x00``) while it
      still holds an earlier beat of that stream (nothing changes: send it again later);
    - ``PULL | id`` (``0x20 + id``) → ``BEAT`` (``0x01``) and the output stream's payload when the core
      offered a beat (it is taken), else ``EMPTY`` (``0x00``);
    - any other command byte → ``UNKNOWN`` (``0xFF``).
    """

    addr_width: int
    data_width: int
    inputs: tuple[BridgeStream, ...]
    outputs: tuple[BridgeStream, ...]

    @classmethod
    def from_signature(cls, signature: wiring.Signature) -> BridgeMap:
        """The map of a core with a ``bus`` (``BusSignature``) and stream members (others ignored)."""
        members = signature.members
        if "bus" not in members or not isinstance(members["bus"].signature, BusSignature):
            raise LeopardError("the bridged core has no register bus named 'bus'")
        bus = members["bus"].signature.members
        inputs, outputs = [], []
        for name, member in members.items():
            if member.is_signature and isinstance(member.signature, stream.Signature):
                side = inputs if member.flow == In else outputs
                side.append((name, Shape.cast(member.signature.members["payload"].shape).width))
        if len(inputs) > 16 or len(outputs) > 16:
            raise LeopardError("the bridge reaches at most 16 input and 16 output streams")
        return cls(
            addr_width=Shape.cast(bus["addr"].shape).width,
            data_width=Shape.cast(bus["w_data"].shape).width,
            inputs=tuple(BridgeStream(n, i, w) for i, (n, w) in enumerate(inputs)),
            outputs=tuple(BridgeStream(n, i, w) for i, (n, w) in enumerate(outputs)),
        )

    @classmethod
    def of_top(cls, cfg: EngineConfig, top: str = "engine") -> BridgeMap:
        """The map of the bridge to ``top`` (``engine`` or ``frontend``) built from ``cfg``."""
        return cls.from_signature(top_signature(cfg, top))

    @property
    def addr_bytes(self) -> int:
        return byte_count(self.addr_width)

    @property
    def data_bytes(self) -> int:
        return byte_count(self.data_width)

    @property
    def arg_bytes(self) -> int:
        """Largest argument field of any command."""
        return max(self.addr_bytes + self.data_bytes, *(s.bytes for s in self.inputs))

    @property
    def reply_bytes(self) -> int:
        """Largest reply of any command."""
        return max(self.data_bytes, 1 + max((s.bytes for s in self.outputs), default=0))

    def input(self, name: str) -> BridgeStream:
        return next(s for s in self.inputs if s.name == name)

    def output(self, name: str) -> BridgeStream:
        return next(s for s in self.outputs if s.name == name)

    def read_frame(self, addr: int) -> bytes:
        return bytes([READ]) + addr.to_bytes(self.addr_bytes, "little")

    def write_frame(self, addr: int, value: int) -> bytes:
        data = value & ((1 << self.data_width) - 1)
        return (bytes([WRITE]) + addr.to_bytes(self.addr_bytes, "little")
                + data.to_bytes(self.data_bytes, "little"))

    def push_frame(self, name: str, payload: int) -> bytes:
        target = self.input(name)
        return bytes([PUSH | target.id]) + payload.to_bytes(target.bytes, "little")

    def pull_frame(self, name: str) -> bytes:
        return bytes([PULL | self.output(name).id])

    def to_dict(self) -> dict[str, Any]:
        """The protocol as JSON (``bridge.json`` beside a bitstream): everything a host needs."""
        return {
            "schema": "leopard-uart-bridge/1",
            "byte_order": "little",
            "addr_bytes": self.addr_bytes,
            "data_bytes": self.data_bytes,
            "commands": {"read": READ, "write": WRITE, "push": PUSH, "pull": PULL},
            "replies": {"ack": ACK, "taken": TAKEN, "full": FULL, "beat": BEAT, "empty": EMPTY,
                        "unknown": UNKNOWN},
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }
