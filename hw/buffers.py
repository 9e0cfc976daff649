"""Vector storage: T-word segments in ``pe_cols`` banks (:mod:`rnnaccel.layout.image`).

Each bank is a simple dual-port memory (one synchronous read port, one write
port with per-word write enables), so it maps to block RAM. The MVU reads one
segment per bank per tile; the gate unit, the input loader and the host write
single words through the lane mask.
"""

from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config
from ..layout.image import vector_depth, vector_slots

__all__ = ["VectorStore", "element_location", "state_ram_attrs"]

#: Below this many bits a state memory is left to the synthesizer (flip-flops or LUT RAM):
#: a shallow, wide memory would otherwise take one block RAM per 16 (iCE40) or 36 (ECP5) bits of width.
SMALL_MEMORY_BITS = 4096


def state_ram_attrs(width: int, depth: int) -> dict:
    """Memory attributes for vector/projection/state memories.

    Block RAM when the memory is big, or when it is narrow enough to cost few block RAMs (at most
    64 bits wide, four iCE40 EBRs) and deep enough (4 rows or more) to be worth one; very shallow
    wide memories are left to the synthesizer (flip-flops or LUT RAM), where they are cheaper.
    """
    if width * depth >= SMALL_MEMORY_BITS or (width <= 64 and depth >= 4):
        return {"ram_style": "block"}
    return {}


def element_location(cfg: Config, slot: str, element: int) -> tuple[int, int, int]:
    """(bank, row, lane) of word ``element`` of vector slot ``slot``."""
    s = vector_slots(cfg)[slot]
    seg = element // cfg.tile
    return seg % cfg.pe_cols, s.base + seg // cfg.pe_cols, element % cfg.tile


class VectorStore(wiring.Component):
    """``pe_cols`` banks of ``vector_depth(cfg)`` rows of T ``q_state`` words.

    Members
    -------
    rd_addr : In(pe_cols rows), rd_en : In(1), rd_data : Out(pe_cols x T words)
        One synchronous read port per bank (data one cycle after the address).
    wr_en, wr_bank, wr_row, wr_mask, wr_data : In
        Write of the lanes in ``wr_mask`` of row ``wr_row`` of bank ``wr_bank``.
    rd2_addr, rd2_en, rd2_data (``second_read=True`` only)
        A second read port (the gate unit's, while the MVU reads the first): each bank's memory is then
        built with two read ports (in block RAM, one copy per read port).
    """

    def __init__(self, cfg: Config, *, second_read: bool = False):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        self._cfg = cfg
        self._depth = vector_depth(cfg)
        self._second = bool(second_read)
        T, xs = cfg.tile, cfg.q_state.width
        second = {}
        if self._second:
            second = {
                "rd2_addr": In(data.ArrayLayout(range(self._depth), cfg.pe_cols)),
                "rd2_en": In(1),
                "rd2_data": Out(data.ArrayLayout(data.ArrayLayout(signed(xs), T), cfg.pe_cols)),
            }
        super().__init__(
            second
            | {
                "rd_addr": In(data.ArrayLayout(range(self._depth), cfg.pe_cols)),
                "rd_en": In(1),
                "rd_data": Out(data.ArrayLayout(data.ArrayLayout(signed(xs), T), cfg.pe_cols)),
                "wr_en": In(1),
                "wr_bank": In(range(cfg.pe_cols)),
                "wr_row": In(range(self._depth)),
                "wr_mask": In(T),
                "wr_data": In(data.ArrayLayout(signed(xs), T)),
            }
        )

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        cfg = self._cfg
        T, xs = cfg.tile, cfg.q_state.width
        m = Module()
        for q in range(cfg.pe_cols):
            mem = memory.Memory(
                shape=unsigned(T * xs), depth=self._depth, init=[], attrs=state_ram_attrs(T * xs, self._depth)
            )
            m.submodules[f"bank{q}"] = mem
            rp = mem.read_port()
            wp = mem.write_port(granularity=xs)
            m.d.comb += [
                rp.addr.eq(self.rd_addr[q]),
                rp.en.eq(self.rd_en),
                self.rd_data[q].eq(rp.data),
                wp.addr.eq(self.wr_row),
                wp.data.eq(self.wr_data.as_value()),
                wp.en.eq(self.wr_mask & (self.wr_en & (self.wr_bank == q)).replicate(T)),
            ]
            if self._second:
                rp2 = mem.read_port()
                m.d.comb += [rp2.addr.eq(self.rd2_addr[q]), rp2.en.eq(self.rd2_en), self.rd2_data[q].eq(rp2.data)]
        return m
