"""The UART bridge in Amaranth's simulator, bit by bit on the serial pins: register writes and reads,
the protocol's refusals, and the host driver running a whole attention job through the bridge on the
``tiny`` engine, checked against the golden model."""

import asyncio
import os

import numpy as np
import pytest
from amaranth.sim import Simulator

from leopard.hw import layouts, uart_protocol
from leopard.hw.config import preset
from leopard.hw.errors import LeopardError
from leopard.hw.fpga.uart_bridge import BridgedCore
from leopard.hw.packing import encode
from leopard.hw.regmap import params_values, register_map
from leopard.hw.rtl.engine import Engine
from leopard.hw.uart_protocol import BridgeMap
from leopard.sw.driver import Driver
from leopard.sw.golden_backend import GoldenBackend
from leopard.sw.uart_backend import SerialLink, UartBackend

DIVISOR = 4
CFG = preset("tiny")


class SimulatedUart:
    """The host's end of the serial line inside an Amaranth testbench (8N1, ``DIVISOR`` cycles/bit)."""

    def __init__(self, ctx, dut, *, timeout=20_000):
        self.ctx, self.dut, self.timeout = ctx, dut, timeout

    async def send(self, data):
        for byte in data:
            for bit in (0, *((byte >> i) & 1 for i in range(8)), 1):
                self.ctx.set(self.dut.rx, bit)
                await self.ctx.tick().repeat(DIVISOR)

    async def receive(self, count):
        data = bytearray()
        for _ in range(count):
            waited = 0
            while self.ctx.get(self.dut.tx):
                await self.ctx.tick()
                waited += 1
                if waited > self.timeout:
                    raise TimeoutError(f"no start bit after {len(data)} of {count} bytes")
            await self.ctx.tick().repeat(DIVISOR // 2)
            value = 0
            for i in range(8):
                await self.ctx.tick().repeat(DIVISOR)
                value |= self.ctx.get(self.dut.tx) << i
            await self.ctx.tick().repeat(DIVISOR)
            assert self.ctx.get(self.dut.tx) == 1, "stop bit low"
            data.append(value)
        return bytes(data)


def run_bridged(body, cfg=CFG):
    """Run ``body(link)`` against the engine behind its bridge; return what it returns."""
    dut = BridgedCore(Engine(cfg), divisor=DIVISOR)
    outcome = {}

    async def bench(ctx):
        outcome["value"] = await body(SimulatedUart(ctx, dut))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return outcome["value"]


def test_map_follows_the_engine_signature():
    spec = BridgeMap.of_top(CFG)
    regs = register_map(CFG)
    assert spec.addr_width == regs.addr_width and spec.data_width == regs.data_width
    assert [s.name for s in spec.inputs] == ["q", "k", "v"]
    assert [s.name for s in spec.outputs] == ["out", "status"]
    assert spec.write_frame(0x1A, -2) == bytes([0x02, 0x1A, 0xFE, 0xFF, 0xFF, 0xFF])
    key = encode(layouts.key_beat(CFG), {"index": 3, "key": [1, -2, 0, 5]})
    assert spec.push_frame("k", key) == bytes([0x11, 0x0B, 0x87, 0x02])  # the example of docs/fpga.md
    assert spec.read_frame(0) == bytes([0x01, 0x00])
    assert spec.pull_frame("status") == bytes([0x21])
    no_status = BridgeMap.of_top(CFG.replace(status_stream=False))
    assert [s.name for s in no_status.outputs] == ["out"]


def test_register_writes_and_reads():
    regs = register_map(CFG)
    backend_values = {}

    async def body(link):
        backend = UartBackend(CFG, link)
        for name, value in params_values(CFG).items():
            backend_values[name] = (await backend.read(name), value)
        await backend.write("THRESHOLD", -5, 3)
        await backend.write("JOB_KEYS", 6)
        await backend.write("SCALE", 0x2ABCD, 1)
        return [await backend.read("THRESHOLD", 3), await backend.read("JOB_KEYS"),
                await backend.read("SCALE", 1), await backend.read("THRESHOLD", 2)]

    threshold, keys, scale, untouched = run_bridged(body)
    assert all(found == expected for found, expected in backend_values.values()), backend_values
    assert threshold == -5 & ((1 << regs["THRESHOLD"].width) - 1)
    assert (keys, scale, untouched) == (6, 0x2ABCD, 0)


def test_refusals_unknown_command_full_push_empty_pull():
    spec = BridgeMap.of_top(CFG)

    async def body(link):
        replies = []
        for frame, count in (
            (bytes([0x7E]), 1),
            (spec.pull_frame("out"), 1),
            (spec.push_frame("q", 0x1234), 1),  # no job: the query waits in the bridge
            (spec.push_frame("q", 0x4321), 1),
            (spec.read_frame(register_map(CFG)["ID"].offset), spec.data_bytes),
        ):
            await link.send(frame)
            replies.append(await link.receive(count))
        return replies

    unknown, empty, taken, full, ident = run_bridged(body)
    assert unknown == bytes([uart_protocol.UNKNOWN])
    assert empty == bytes([uart_protocol.EMPTY])
    assert (taken, full) == (bytes([uart_protocol.TAKEN]), bytes([uart_protocol.FULL]))
    assert int.from_bytes(ident, "little") == params_values(CFG)["ID"]


def test_driver_runs_a_job_through_the_bridge():
    rng = np.random.default_rng(5)
    n, queries = 5, 3
    keys = rng.integers(-8, 8, (n, CFG.head_dim))
    values = rng.integers(-8, 8, (n, CFG.head_dim))
    q = rng.integers(-8, 8, (queries, CFG.head_dim))
    scores = np.sort((q @ keys.T).ravel())
    threshold = int(scores[len(scores) // 2])

    async def job(backend):
        driver = Driver(CFG, backend)
        await driver.check_identity()
        await driver.program(1, threshold, 0.3)
        await driver.load(keys, values)
        result = await driver.attention(q, keys=n, slot=1)
        return result, await driver.counters()

    over_uart, counters = run_bridged(lambda link: job(UartBackend(CFG, link)))
    expected, _ = asyncio.run(job(GoldenBackend(CFG)))
    np.testing.assert_array_equal(over_uart.outputs, expected.outputs)
    np.testing.assert_array_equal(over_uart.probabilities, expected.probabilities)
    np.testing.assert_array_equal(over_uart.kept, expected.kept)
    assert 0 < expected.kept.sum() < n * queries
    assert over_uart.planes == expected.planes == counters["PLANES"]
    assert counters["KEPT"] == expected.kept.sum() and counters["QUERIES_DONE"] == queries


def test_a_refused_job_is_one_error():
    async def body(link):
        driver = Driver(CFG, UartBackend(CFG, link))
        with pytest.raises(LeopardError, match="refused the job"):
            await driver.attention(np.zeros((1, CFG.head_dim), np.int64), keys=0, slot=0)
        return True

    assert run_bridged(body)


def test_uart_divisor_is_checked():
    uart_protocol.check_divisor(4)
    with pytest.raises(LeopardError, match="at least 4 clock cycles per bit"):
        uart_protocol.check_divisor(3)


def test_serial_link_on_a_pseudo_terminal():
    board_end, host_end = os.openpty()
    link = SerialLink(os.ttyname(host_end), 115200, timeout=0.05)
    try:
        asyncio.run(link.send(bytes([0x01, 0x00])))
        assert os.read(board_end, 16) == bytes([0x01, 0x00])
        os.write(board_end, bytes([0x50, 0x4C, 0x01, 0x00]))
        assert asyncio.run(link.receive(4)) == bytes([0x50, 0x4C, 0x01, 0x00])
        with pytest.raises(LeopardError, match=r"the board sent 0 of 1 bytes within 0\.05 s"):
            asyncio.run(link.receive(1))
    finally:
        link.close()
        os.close(board_end)
        os.close(host_end)
    with pytest.raises(LeopardError, match="cannot run at 123 baud"):
        SerialLink(os.devnull, 123)
