"""The serial place-and-route harness in Amaranth's simulator: every input bit of the core is reached
through the input chain, every output bit is seen on the output chain, in signature order."""

import random

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from leopard.hw.fpga.harness import SerialHarness, port_bits


class Toy(wiring.Component):
    a: In(8)
    b: In(5)
    flag: In(1)
    total: Out(9)
    mixed: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.total.eq(self.a + self.b)
        m.d.sync += self.mixed.eq(self.a ^ (self.b << self.flag))
        return m


def run_harness(vectors):
    dut = SerialHarness(Toy())
    seen = []

    async def pulse(ctx, pin):
        ctx.set(pin, 1)
        await ctx.tick()
        ctx.set(pin, 0)
        await ctx.tick().repeat(2)

    async def bench(ctx):
        for bits in vectors:
            for i in range(dut.input_bits):
                ctx.set(dut.shift_in, (bits >> i) & 1)
                await pulse(ctx, dut.shift)
            await pulse(ctx, dut.update)
            await pulse(ctx, dut.capture)
            value = 0
            for i in range(dut.output_bits):
                value |= ctx.get(dut.shift_out) << i
                await pulse(ctx, dut.shift)
            seen.append(value)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return dut, seen


def test_every_bit_passes_through_the_chains():
    rng = random.Random(1)
    vectors = [rng.getrandbits(14) for _ in range(4)] + [0x3FFF]
    dut, seen = run_harness(vectors)
    assert (dut.input_bits, dut.output_bits) == (14, 17)
    for bits, value in zip(vectors, seen, strict=True):
        a, b, flag = bits & 0xFF, (bits >> 8) & 0x1F, bits >> 13
        assert value == (a + b) | ((a ^ (b << flag)) & 0xFF) << 9, hex(bits)


def test_port_bits_follow_the_signature():
    toy = Toy()
    inputs, outputs = port_bits(toy)
    assert [len(v) for v in inputs] == [8, 5, 1]
    assert [len(v) for v in outputs] == [9, 8]
    toy._MustUse__silence = True
