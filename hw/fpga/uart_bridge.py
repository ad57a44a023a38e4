"""A UART bridge from a host to a core's register bus and valid/ready streams, speaking the protocol of
``leopard.hw.uart_protocol`` (``docs/fpga.md``): 8N1 serial, one command frame from the host, one reply
frame back."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from leopard.hw.uart_protocol import (
    ACK,
    BEAT,
    EMPTY,
    FULL,
    PULL,
    PUSH,
    READ,
    TAKEN,
    UNKNOWN,
    WRITE,
    BridgeMap,
    check_divisor,
)


class UartRx(wiring.Component):
    """8N1 receiver, ``divisor`` clock cycles per bit. ``rx`` passes a two-flop synchronizer; a byte
    is presented on ``data`` (valid for one cycle, no back-pressure) in the middle of its stop bit,
    ``9.5·divisor + 3`` cycles after the start bit's falling edge. A byte with a low stop bit is
    dropped."""

    def __init__(self, divisor: int) -> None:
        check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8, always_ready=True))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        divisor = self._divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(divisor))
        bits = Signal(8)
        count = Signal(range(8))
        m.d.comb += self.data.payload.eq(bits)
        with m.FSM():
            with m.State("idle"), m.If(~line):
                m.d.sync += timer.eq(divisor // 2 - 1)
                m.next = "start"
            with m.State("start"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(divisor - 1), count.eq(0)]
                    m.next = "idle"
                    with m.If(~line):
                        m.next = "data"
            with m.State("data"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(divisor - 1), bits.eq(Cat(bits[1:], line)), count.eq(count + 1)]
                    with m.If(count == 7):
                        m.next = "stop"
            with m.State("stop"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.comb += self.data.valid.eq(line)
                    m.next = "idle"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter, ``divisor`` clock cycles per bit: takes a byte from ``data`` when idle and
    sends it in ``10·divisor`` cycles (start bit, 8 data bits LSB first, stop bit); ``tx`` is a
    register, idle high."""

    def __init__(self, divisor: int) -> None:
        check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"tx": Out(1, init=1), "data": In(stream.Signature(8))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        divisor = self._divisor
        timer = Signal(range(divisor))
        bits = Signal(9)
        left = Signal(range(10))
        tx = Signal(init=1)
        m.d.comb += self.tx.eq(tx)
        with m.FSM():
            with m.State("idle"):
                m.d.comb += self.data.ready.eq(1)
                with m.If(self.data.valid):
                    m.d.sync += [tx.eq(0), bits.eq(Cat(self.data.payload, Const(1, 1))),
                                 timer.eq(divisor - 1), left.eq(9)]
                    m.next = "send"
            with m.State("send"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += timer.eq(divisor - 1)
                    with m.If(left == 0):
                        m.next = "idle"
                    with m.Else():
                        m.d.sync += [tx.eq(bits[0]), bits.eq(bits >> 1), left.eq(left - 1)]
        return m


class UartBridge(wiring.Component):
    """The host side of a core's register bus and streams, driven by commands arriving on ``rx``
    (``BridgeMap``); replies leave on ``tx``. ``divisor``: clock cycles per bit.

    Each input stream has a one-beat holding register: a pushed beat is offered to the core (valid
    held, payload stable) until it is accepted, while the bridge goes on serving commands. A pulled
    beat is accepted from the core in the cycle the ``PULL`` executes. A command executes in the cycle
    after its last byte is received (a ``READ`` samples ``r_data`` one cycle later), and its reply
    starts in the next cycle. Bytes arriving while a reply is being sent are dropped: the host waits
    for each reply before sending the next command.
    """

    def __init__(self, core_signature: wiring.Signature, *, divisor: int) -> None:
        check_divisor(divisor)
        self.map = BridgeMap.from_signature(core_signature)
        self._divisor = divisor
        members: dict[str, wiring.Member] = {"rx": In(1, init=1), "tx": Out(1, init=1)}
        for name in ("bus", *(s.name for s in self.map.inputs), *(s.name for s in self.map.outputs)):
            members[name] = core_signature.members[name].flip()
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        spec = self.map
        m = Module()
        m.submodules.uart_rx = rx = UartRx(self._divisor)
        m.submodules.uart_tx = tx = UartTx(self._divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        byte = rx.data.payload
        command = Signal(8)
        args = Signal(8 * spec.arg_bytes)
        count = Signal(range(spec.arg_bytes + 1))
        needed = Signal(range(spec.arg_bytes + 1))
        expected = Signal(range(spec.arg_bytes + 1))
        known = Signal()
        reply = Signal(8 * spec.reply_bytes)
        left = Signal(range(spec.reply_bytes + 1))

        with m.Switch(byte):
            with m.Case(READ):
                m.d.comb += [known.eq(1), needed.eq(spec.addr_bytes)]
            with m.Case(WRITE):
                m.d.comb += [known.eq(1), needed.eq(spec.addr_bytes + spec.data_bytes)]
            for s in spec.inputs:
                with m.Case(PUSH | s.id):
                    m.d.comb += [known.eq(1), needed.eq(s.bytes)]
            for s in spec.outputs:
                with m.Case(PULL | s.id):
                    m.d.comb += known.eq(1)

        full = {}
        held = {}
        for s in spec.inputs:
            port = getattr(self, s.name)
            full[s.name] = Signal(name=f"{s.name}_full")
            held[s.name] = Signal(s.width, name=f"{s.name}_held")
            m.d.comb += [port.valid.eq(full[s.name]), port.payload.eq(held[s.name])]
            with m.If(port.valid & port.ready):
                m.d.sync += full[s.name].eq(0)

        data_lsb = 8 * spec.addr_bytes
        m.d.comb += [
            self.bus.addr.eq(args[:spec.addr_width]),
            self.bus.w_data.eq(args[data_lsb:data_lsb + spec.data_width]),
        ]

        with m.FSM():
            with m.State("idle"), m.If(rx.data.valid):
                m.d.sync += [command.eq(byte), count.eq(0), expected.eq(needed)]
                with m.If(~known):
                    m.d.sync += [reply.eq(UNKNOWN), left.eq(1)]
                    m.next = "reply"
                with m.Elif(needed == 0):
                    m.next = "execute"
                with m.Else():
                    m.next = "arguments"
            with m.State("arguments"), m.If(rx.data.valid):
                m.d.sync += [args.word_select(count, 8).eq(byte), count.eq(count + 1)]
                with m.If(count + 1 == expected):
                    m.next = "execute"
            with m.State("execute"):
                m.d.sync += left.eq(1)
                m.next = "reply"
                with m.Switch(command):
                    with m.Case(READ):
                        m.d.comb += self.bus.r_en.eq(1)
                        m.next = "read"
                    with m.Case(WRITE):
                        m.d.comb += self.bus.w_en.eq(1)
                        m.d.sync += reply.eq(ACK)
                    for s in spec.inputs:
                        with m.Case(PUSH | s.id):
                            with m.If(full[s.name]):
                                m.d.sync += reply.eq(FULL)
                            with m.Else():
                                m.d.sync += [full[s.name].eq(1), held[s.name].eq(args[:s.width]),
                                             reply.eq(TAKEN)]
                    for s in spec.outputs:
                        port = getattr(self, s.name)
                        with m.Case(PULL | s.id):
                            with m.If(port.valid):
                                m.d.comb += port.ready.eq(1)
                                m.d.sync += [reply.eq(Cat(Const(BEAT, 8), port.payload)),
                                             left.eq(1 + s.bytes)]
                            with m.Else():
                                m.d.sync += reply.eq(EMPTY)
            with m.State("read"):
                m.d.sync += [reply.eq(self.bus.r_data), left.eq(spec.data_bytes)]
                m.next = "reply"
            with m.State("reply"):
                m.d.comb += [tx.data.valid.eq(1), tx.data.payload.eq(reply[:8])]
                with m.If(tx.data.ready):
                    m.d.sync += [reply.eq(reply >> 8), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "idle"
        return m


class BridgedCore(wiring.Component):
    """``core`` (an ``Engine``, a ``FrontEnd`` or a ``VerilogCore`` of one) behind a ``UartBridge``:
    the serial pins ``rx`` and ``tx`` are its only ports."""

    def __init__(self, core: wiring.Component, *, divisor: int) -> None:
        self._core = core
        self.bridge = UartBridge(core.signature, divisor=divisor)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.core = core = self._core
        m.submodules.bridge = bridge = self.bridge
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]
        spec = bridge.map
        for name in ("bus", *(s.name for s in spec.inputs), *(s.name for s in spec.outputs)):
            wiring.connect(m, getattr(bridge, name), getattr(core, name))
        return m
