"""A driver backend for a board built with ``leopard build-board``: the engine is reached through its
UART bridge (``docs/fpga.md``), registers with ``READ``/``WRITE`` frames, keys, values and queries
with ``PUSH``, result packets and status beats with ``PULL``. Any byte link works: ``SerialLink`` for
a serial port, or a simulated UART in tests.
"""

from __future__ import annotations

import os
import termios
import time
import tty
from collections import deque
from typing import Any, Protocol

import numpy as np

from leopard.hw import layouts
from leopard.hw.config import EngineConfig
from leopard.hw.errors import LeopardError
from leopard.hw.packing import decode, encode
from leopard.hw.regmap import register_map
from leopard.hw.uart_protocol import ACK, BEAT, EMPTY, FULL, TAKEN, BridgeMap
from leopard.sw.job import COUNTERS, Job, JobResult, job_registers


class Link(Protocol):
    """A byte pipe to the board."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self, count: int) -> bytes: ...


class SerialLink:
    """A serial port (raw mode, 8N1, ``baud``): ``receive`` waits at most ``timeout`` seconds."""

    def __init__(self, path: str, baud: int, *, timeout: float = 2.0) -> None:
        speed = getattr(termios, f"B{baud}", None)
        if speed is None:
            raise LeopardError(f"the serial port cannot run at {baud} baud")
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        except OSError as error:
            raise LeopardError(f"cannot open {path}: {error.strerror}") from None
        tty.setraw(self._fd)
        attributes = termios.tcgetattr(self._fd)
        attributes[4] = attributes[5] = speed
        termios.tcsetattr(self._fd, termios.TCSANOW, attributes)
        os.set_blocking(self._fd, False)
        self._timeout = timeout

    def close(self) -> None:
        os.close(self._fd)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    async def receive(self, count: int) -> bytes:
        deadline = time.monotonic() + self._timeout
        data = b""
        while len(data) < count:
            try:
                data += os.read(self._fd, count - len(data))
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LeopardError(
                        f"the board sent {len(data)} of {count} bytes within {self._timeout} s"
                    ) from None
                time.sleep(0.001)
        return data


class UartBackend:
    """Registers, stores and jobs of the engine built from ``cfg``, over ``link``.

    ``patience``: consecutive polls without progress after which a job is declared stuck.
    """

    def __init__(self, cfg: EngineConfig, link: Link, *, patience: int = 1000) -> None:
        self.cfg = cfg
        self.link = link
        self.regmap = register_map(cfg)
        self.bridge = BridgeMap.of_top(cfg, "engine")
        self.patience = patience
        self._layouts: dict[str, Any] = {
            "q": layouts.query(cfg), "k": layouts.key_beat(cfg), "v": layouts.value_beat(cfg),
            "out": layouts.output_packet(cfg), "status": layouts.status_beat(cfg),
        }

    async def _exchange(self, frame: bytes, count: int) -> bytes:
        await self.link.send(frame)
        return await self.link.receive(count)

    async def write(self, name: str, value: int, index: int = 0) -> None:
        addr = self.regmap[name].offset + index
        reply = await self._exchange(self.bridge.write_frame(addr, value), 1)
        if reply[0] != ACK:
            raise LeopardError(f"the bridge answered 0x{reply[0]:02X} to a write of {name}")

    async def read(self, name: str, index: int = 0) -> int:
        addr = self.regmap[name].offset + index
        reply = await self._exchange(self.bridge.read_frame(addr), self.bridge.data_bytes)
        return int.from_bytes(reply, "little")

    async def _push(self, stream: str, value: Any) -> bool:
        """Offer one beat; False when the bridge still holds the previous one."""
        reply = await self._exchange(self.bridge.push_frame(stream, encode(self._layouts[stream], value)), 1)
        if reply[0] not in (TAKEN, FULL):
            raise LeopardError(f"the bridge answered 0x{reply[0]:02X} to a push on {stream}")
        return reply[0] == TAKEN

    async def _pull(self, stream: str) -> Any:
        """The next beat of an output stream, or None when it offers none."""
        reply = await self._exchange(self.bridge.pull_frame(stream), 1)
        if reply[0] == EMPTY:
            return None
        if reply[0] != BEAT:
            raise LeopardError(f"the bridge answered 0x{reply[0]:02X} to a pull on {stream}")
        payload = await self.link.receive(self.bridge.output(stream).bytes)
        return decode(self._layouts[stream], int.from_bytes(payload, "little"))

    async def load(self, stream: str, rows: np.ndarray) -> None:
        """Write ``rows[j]`` into row ``j`` of the key (``k``) or value (``v``) store."""
        field = "key" if stream == "k" else "value"
        for j, row in enumerate(np.asarray(rows).tolist()):
            for _ in range(self.patience):
                if await self._push(stream, {"index": j, field: row}):
                    break
            else:
                raise LeopardError(f"the engine did not take row {j} of {stream}")

    async def run(self, job: Job) -> JobResult:
        """Program and start the job, push its queries, pull every packet and status beat, read the
        counters. Cycle counts are the engine's (``CYCLES``): they include waiting for the host."""
        for name, value in [*job_registers(self.regmap, job), ("CTRL", self.regmap["CTRL"].pack(start=1))]:
            await self.write(name, value)
        if self.regmap["STATUS"].unpack(await self.read("STATUS"))["error"]:
            raise LeopardError("the engine refused the job (STATUS.error): job registers out of range")
        result = JobResult()
        pending = deque(np.asarray(job.queries).tolist())
        outputs = ["out", *(["status"] if self.cfg.status_stream else [])]
        idle = 0
        while len(result.outputs) < len(job.queries) or idle == 0:
            progressed = False
            if pending and await self._push("q", pending[0]):
                pending.popleft()
                progressed = True
            for stream in outputs:
                while (beat := await self._pull(stream)) is not None:
                    progressed = True
                    result.take(stream, job, beat)
            idle = 0 if progressed else idle + 1
            if idle > self.patience:
                raise LeopardError(f"the engine sent {len(result.outputs)} of {len(job.queries)} packets "
                                   f"and then nothing for {self.patience} polls")
        for register, name in COUNTERS.items():
            setattr(result, name, await self.read(register))
        return result
