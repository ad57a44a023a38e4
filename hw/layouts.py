"""Stream payload layouts of the engine, derived from the config."""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from .config import EngineConfig, clog2


def query(cfg: EngineConfig) -> data.ArrayLayout:
    """One query vector: ``D`` signed ``q_bits`` elements."""
    return data.ArrayLayout(signed(cfg.q_bits), cfg.head_dim)


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
