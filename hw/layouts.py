"""Stream payload layouts of the engine, derived from the config."""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from leopard.hw.config import EngineConfig, clog2
from leopard.hw.regmap import Register


def query(cfg: EngineConfig) -> data.ArrayLayout:
    """One query vector: ``D`` signed ``q_bits`` elements."""
    return data.ArrayLayout(signed(cfg.q_bits), cfg.head_dim)


def query_pairs(cfg: EngineConfig) -> data.ArrayLayout:
    """A query's pair sums ``q[2j] + q[2j+1]``, ``⌊D/2⌋`` signed ``q_bits + 1`` elements: with them a lane
    adds a plane's contribution of two elements by selecting one of ``0, q[2j], q[2j+1]`` and their sum."""
    return data.ArrayLayout(signed(cfg.q_bits + 1), cfg.head_dim // 2)


def key_beat(cfg: EngineConfig) -> data.StructLayout:
    """One key and the key-store row it is written to."""
    return data.StructLayout({
        "index": unsigned(cfg.index_bits),
        "key": data.ArrayLayout(signed(cfg.k_bits), cfg.head_dim),
    })


def key_address_bits(cfg: EngineConfig) -> int:
    """Key-store address: ``{key index, plane}``, the plane in the low bits."""
    return cfg.index_bits + plane_bits(cfg)


def plane_bits(cfg: EngineConfig) -> int:
    return max(1, clog2(cfg.k_bits))


def kept_entry(cfg: EngineConfig) -> data.StructLayout:
    return data.StructLayout({
        "valid": 1,
        "query": unsigned(cfg.index_bits),
        "key": unsigned(cfg.index_bits),
        "score": signed(cfg.score_bits),
    })


def kept_beat(cfg: EngineConfig) -> data.StructLayout:
    """The keys kept in one cycle (one entry per lane) and how many queries completed in it."""
    return data.StructLayout({
        "keys": data.ArrayLayout(kept_entry(cfg), cfg.lanes),
        "done": range(cfg.queries_in_flight + 1),
    })


def value_beat(cfg: EngineConfig) -> data.StructLayout:
    """One value row and the V-store row it is written to."""
    return data.StructLayout({
        "index": unsigned(cfg.index_bits),
        "value": data.ArrayLayout(signed(cfg.v_bits), cfg.head_dim),
    })


def buffered_key(cfg: EngineConfig) -> data.StructLayout:
    """A kept key waiting for the softmax pass."""
    return data.StructLayout({"key": unsigned(cfg.index_bits), "score": signed(cfg.score_bits)})


def weighted_key(cfg: EngineConfig) -> data.StructLayout:
    """A kept key with its exponent, waiting for normalization."""
    return data.StructLayout({"key": unsigned(cfg.index_bits), "exp": unsigned(cfg.exp_bits)})


def output_packet(cfg: EngineConfig) -> data.StructLayout:
    """One beat of a query's result packet: a kept key and its probability (``prob_frac_bits``
    fraction bits); the packet's ``last`` beat also carries the output vector (``out_frac_bits``
    fraction bits, ``v`` units). A query with no kept key is one beat with ``has_key`` low."""
    return data.StructLayout({
        "query": unsigned(cfg.index_bits),
        "kept": unsigned(cfg.length_bits),
        "has_key": 1,
        "key": unsigned(cfg.index_bits),
        "prob": unsigned(cfg.prob_bits),
        "last": 1,
        "vector": data.ArrayLayout(signed(cfg.out_bits), cfg.head_dim),
    })


def status_entry(cfg: EngineConfig) -> data.StructLayout:
    return data.StructLayout({
        "valid": 1,
        "kept": 1,
        "query": unsigned(cfg.index_bits),
        "key": unsigned(cfg.index_bits),
        "planes": unsigned(cfg.plane_count_bits),
    })


def status_beat(cfg: EngineConfig) -> data.StructLayout:
    """Every key decided in one cycle (one entry per lane) and how many queries completed in it."""
    return data.StructLayout({
        "keys": data.ArrayLayout(status_entry(cfg), cfg.lanes),
        "done": range(cfg.queries_in_flight + 1),
    })


def register_word(register: Register) -> data.FlexibleLayout:
    """A register's word as a layout of its fields (``regmap``), so RTL takes it apart by field name."""
    fields = {f.name: data.Field(signed(f.width) if f.signed else unsigned(f.width), f.lsb)
              for f in register.fields}
    return data.FlexibleLayout(register.width, fields)
