"""The host link's framed byte protocol, shared by the host driver and the gateware.

Everything both ends must agree on lives here, once: the frame format, the
command and error codes, the CRC (:data:`CRC`, from Amaranth's CRC catalog:
the host computes it in software, the gateware instantiates the same
parameters), the payload encodings and the per-config sizes
(:class:`LinkLayout`). ``docs/hostlink.md`` describes the protocol byte by
byte.

Frame (both directions)::

    SYNC  cmd  len_lo len_hi  payload[len]  crc_hi crc_lo

``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no
reflection, no final XOR) over ``cmd, len_lo, len_hi, payload``, sent high
byte first, so the CRC over ``cmd .. crc_lo`` of a good frame is zero.
Responses: ``cmd | 0x80`` (ACK, with data) or :data:`NAK` with payload
``(error code, request cmd)``.

Core addressing (multi-core designs, issue 14): a request whose command byte
has :data:`CORE_FLAG` (``0x40``) set is *addressed*: its first payload byte
names a core (``0 .. cores - 1``, or :data:`ALL_CORES` for the commands that
take every core) and the rest is the command's ordinary payload. A frame
without the flag goes to the design's default target (the one core; core 0
of a ``programs`` design; the whole pipeline of a ``layers`` design), so
one-core traffic is unchanged byte for byte. A core that does not exist is a
NAK :attr:`Error.CORE`. INFO of a multi-core design appends the mode and one
:class:`CoreInfo` record per core to the one-core INFO.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from amaranth.lib.crc import catalog as crc_catalog

from ..numeric.config import Config
from ..layout.image import bank_word_bits, bias_rows, bias_word_bits, weight_bank_depth

__all__ = [
    "SYNC",
    "NAK",
    "ACK_FLAG",
    "VERSION",
    "Cmd",
    "Error",
    "ERROR_TEXT",
    "CRC",
    "crc16",
    "encode_frame",
    "Frame",
    "FrameError",
    "parse_frame",
    "LinkLayout",
    "Info",
    "INFO_FORMAT",
    "Counters",
    "COUNTERS_FORMAT",
    "encode_info",
    "decode_info",
    "decode_counters",
    "encode_counters",
    "encode_state_records",
    "weight_bursts",
    "encode_run",
    "decode_run",
    "HEADER_BYTES",
    "TRAILER_BYTES",
    "CORE_FLAG",
    "ALL_CORES",
    "MODES",
    "CoreInfo",
    "CORE_INFO_FORMAT",
    "encode_addressed",
    "default_buffer",
]

SYNC = 0xA5  #: first byte of every frame
ACK_FLAG = 0x80  #: an ACK response's command byte is the request's | ACK_FLAG
NAK = 0xFF  #: command byte of a NAK response (payload: error code, request command)
VERSION = 1  #: protocol version reported by INFO
HEADER_BYTES = 4  #: SYNC, cmd, len_lo, len_hi
TRAILER_BYTES = 2  #: crc_hi, crc_lo
#: Set in a request's command byte: the first payload byte names the core (an *addressed* frame).
CORE_FLAG = 0x40
#: The core byte that names every core: RESET_STATE, CLEAR_COUNTERS, READ_COUNTERS (the design's counters),
#: PING, INFO, RUN in ``layers`` and ``helpers`` mode and WRITE_STATE in ``helpers`` mode (the same state to every
#: core; not WRITE_WEIGHTS, nor a ``programs`` RUN or a ``programs``/``layers`` WRITE_STATE). Equal to
#: :data:`rnnaccel.interface.multicore.BROADCAST` (a test checks it).
ALL_CORES = 0xFF
#: INFO's mode byte: a one-core design, a ``programs``, ``layers`` or ``helpers`` MultiCore.
MODES = ("single", "programs", "layers", "helpers")


class Cmd(enum.IntEnum):
    """Request commands (host to device)."""

    PING = 0x01  #: echo the payload
    INFO = 0x02  #: design identity and sizes (:class:`Info`)
    RESET_STATE = 0x03  #: zero the recurrent state
    WRITE_STATE = 0x04  #: forward WRITE_VEC / WRITE_C accelerator commands (records)
    WRITE_WEIGHTS = 0x05  #: a burst of WRITE_WEIGHT commands to one bank (only without weights in ROM)
    RUN = 0x06  #: T input vectors in, T x H hidden words out
    READ_COUNTERS = 0x07  #: cycle, wait-cycle and step counters, status (:class:`Counters`)
    CLEAR_COUNTERS = 0x08  #: zero the counters and the accelerator's error flag


class Error(enum.IntEnum):
    """NAK error codes (first payload byte of a NAK)."""

    CRC = 1  #: the frame's CRC is wrong
    COMMAND = 2  #: unknown command
    LENGTH = 3  #: length overruns the buffer, or does not suit the command
    RANGE = 4  #: a record field is out of range (opcode, selector, address, or data wider than its format)
    ROM = 5  #: WRITE_WEIGHTS to a design with weights in ROM
    ACCEL = 6  #: the accelerator raised its error flag while executing
    TIMEOUT = 7  #: the frame stopped before its end (inter-byte timeout)
    CORE = 8  #: an addressed frame names a core the design does not have (or ALL_CORES where it needs one)


ERROR_TEXT = {
    Error.CRC: "bad CRC",
    Error.COMMAND: "unknown command",
    Error.LENGTH: "bad length (overruns the buffer or does not suit the command)",
    Error.RANGE: "field out of range (opcode, selector, address or data)",
    Error.ROM: "weights are in ROM on this design",
    Error.ACCEL: "the accelerator flagged an error",
    Error.TIMEOUT: "truncated frame (inter-byte timeout)",
    Error.CORE: "no such core on this design (or a command that needs one core named all)",
}

# ----------------------------------------------------------------------------- CRC

#: The link's CRC, CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, MSB first, no reflection,
#: no final XOR), a byte per step. One definition from Amaranth's CRC catalog for both ends: the host
#: computes with :meth:`~amaranth.lib.crc.Parameters.compute`, the gateware instantiates ``CRC.create()``.
CRC = crc_catalog.CRC16_CCITT_FALSE(data_width=8)


def crc16(data: Iterable[int]) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``; 0 over a frame's cmd .. crc_lo)."""
    return CRC.compute(bytes(data))


# ----------------------------------------------------------------------------- frames


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """A complete frame: SYNC, cmd, length (LE), payload, CRC (high byte first)."""
    payload = bytes(payload)
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"command must be a byte, not {cmd!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the 16-bit length field")
    body = bytes([cmd]) + struct.pack("<H", len(payload)) + payload
    crc = crc16(body)
    return bytes([SYNC]) + body + bytes([crc >> 8, crc & 0xFF])


@dataclass(frozen=True)
class Frame:
    cmd: int
    payload: bytes

    @property
    def is_nak(self) -> bool:
        return self.cmd == NAK

    @property
    def error(self) -> Error | int | None:
        """The NAK's error code (an :class:`Error` when known)."""
        if not self.is_nak or not self.payload:
            return None
        code = self.payload[0]
        return Error(code) if code in Error._value2member_map_ else code

    @property
    def request(self) -> int | None:
        """For a NAK: the command byte of the rejected request."""
        return self.payload[1] if self.is_nak and len(self.payload) > 1 else None


def encode_addressed(cmd: int, core: int, payload: bytes = b"") -> bytes:
    """An addressed request: ``cmd | CORE_FLAG``, the core byte, then the command's payload."""
    if not 0 <= int(core) <= 0xFF:
        raise ValueError(f"core must be a byte (0 .. 255), not {core!r}")
    if not 0 <= cmd < CORE_FLAG:
        raise ValueError(f"command {cmd!r} cannot be addressed (it is not below {CORE_FLAG:#x})")
    return encode_frame(cmd | CORE_FLAG, bytes([int(core)]) + bytes(payload))


class FrameError(ValueError):
    """Bytes that are not one well-formed frame."""


def parse_frame(data: bytes) -> Frame:
    """Parse exactly one frame (SYNC .. CRC); :class:`FrameError` otherwise."""
    data = bytes(data)
    if len(data) < HEADER_BYTES + TRAILER_BYTES or data[0] != SYNC:
        raise FrameError(f"not a frame: {data[:8].hex()}...")
    n = data[2] | data[3] << 8
    if len(data) != HEADER_BYTES + n + TRAILER_BYTES:
        raise FrameError(f"frame length field says {n} payload bytes, got {len(data) - 6}")
    if crc16(data[1:]) != 0:
        raise FrameError("bad CRC")
    return Frame(data[1], data[4 : 4 + n])


# ----------------------------------------------------------------------------- sizes


def _nbytes(bits: int) -> int:
    return (bits + 7) // 8


@dataclass(frozen=True)
class LinkLayout:
    """Byte sizes and limits of the link for one config (both ends compute the same).

    Attributes
    ----------
    word_bytes : int
        Bytes of one q_state word in RUN payloads and responses (two's
        complement, sign-extended, little endian).
    state_data_bytes, state_record_bytes : int
        A WRITE_STATE record is ``op (1), sel (2), addr (3), data (state_data_bytes)``.
    vector_rows, cell_words : int
        Valid ``addr`` bounds of WRITE_VEC (rows of every vector bank) and WRITE_C.
    vector_sels : int
        Valid WRITE_VEC ``sel`` bound (``pe_cols * tile``).
    weight_banks : int
        Number of weight banks (``pe_rows * pe_cols``); ``sel == weight_banks`` is the bias memory.
    """

    cfg: Config

    @property
    def hw(self) -> Config:
        """The design's capacities: ``cfg`` at its largest run-time sizes (itself without ``max_*`` fields)."""
        return self.cfg.at_max()

    @property
    def word_bytes(self) -> int:
        return _nbytes(self.cfg.q_state.width)

    @property
    def param_bits(self) -> int:
        """Widest ``SET_PARAM`` value (run-time dimensions; 0 without)."""
        if not self.cfg.runtime_dims:
            return 0
        from ..layout.runtime import param_bits

        return max(param_bits(self.cfg).values())

    @property
    def params(self) -> int:
        """``SET_PARAM`` selectors of the design (0 without run-time dimensions)."""
        if not self.cfg.runtime_dims:
            return 0
        from ..layout.runtime import param_names

        return len(param_names(self.cfg))

    @property
    def state_data_bytes(self) -> int:
        return _nbytes(max(self.cfg.q_state.width, self.cfg.q_cell.width, self.param_bits))

    @property
    def state_record_bytes(self) -> int:
        return 6 + self.state_data_bytes

    @property
    def vector_rows(self) -> int:
        from ..layout.image import vector_depth

        return vector_depth(self.hw)

    @property
    def vector_sels(self) -> int:
        return self.cfg.pe_cols * self.cfg.tile

    @property
    def cell_words(self) -> int:
        return self.hw.num_layers * self.hw.padded(self.hw.hidden_size)

    @property
    def weight_banks(self) -> int:
        return self.cfg.pe_rows * self.cfg.pe_cols

    def weight_bits(self, sel: int) -> int:
        """Width of one word of weight bank ``sel`` (or of the bias memory)."""
        if sel == self.weight_banks:
            return bias_word_bits(self.cfg)
        return bank_word_bits(self.cfg)  # a memory word: SPRAM banks pack 16 bits of weights

    def weight_bytes(self, sel: int) -> int:
        return _nbytes(self.weight_bits(sel))

    def weight_depth(self, sel: int) -> int:
        """Words of weight bank ``sel`` (or rows of the bias memory)."""
        if sel == self.weight_banks:
            return bias_rows(self.hw)
        return weight_bank_depth(self.hw)

    @property
    def step_bytes(self) -> int:
        """RUN payload bytes per time step."""
        return self.cfg.input_size * self.word_bytes

    @property
    def out_step_bytes(self) -> int:
        return self.cfg.hidden_size * self.word_bytes

    @property
    def max_step_bytes(self) -> int:
        """RUN payload bytes per step of the design's largest model (run-time dimensions; else ``step_bytes``)."""
        return self.hw.input_size * self.word_bytes

    @property
    def max_out_step_bytes(self) -> int:
        return self.hw.hidden_size * self.word_bytes

    def min_buffer(self) -> int:
        """The smallest payload buffer that can carry every command."""
        return max(
            self.max_step_bytes,
            self.state_record_bytes,
            5 + max(self.weight_bytes(s) for s in range(self.weight_banks + 1)),
        )

    def default_buffer(self) -> int:
        """Default payload buffer: at least 512 bytes (one iCE40 block RAM), a power of two."""
        return default_buffer(self.min_buffer())

    def max_steps(self, buffer_bytes: int) -> int:
        """Most time steps one RUN frame may carry (its response must fit the 16-bit length too)."""
        return min(buffer_bytes // self.step_bytes, 0xFFFF // self.out_step_bytes)


def default_buffer(min_bytes: int) -> int:
    """The payload buffer for a design that needs ``min_bytes``: at least 512 (one iCE40 block RAM), a power
    of two, at most 32 KiB."""
    need = max(512, min_bytes)
    return min(1 << math.ceil(math.log2(need)), 0x8000)


# ----------------------------------------------------------------------------- INFO and counters

#: version, flags, config hash, design hash, input, hidden, layers, word bytes, state width, state frac,
#: state record bytes, buffer bytes, max steps, clock Hz, baud, timeout cycles
INFO_FORMAT = "<BB8s8sHHBBBBBHHIII"
COUNTERS_FORMAT = "<IIIBH"  #: cycles, wait_cycles, steps, status, rejected frames
#: One core of a multi-core INFO: flags (bit 0 weights in ROM), config hash, input, hidden, layers, word bytes,
#: state width, state frac, state record bytes, most steps per RUN frame addressed to it
CORE_INFO_FORMAT = "<B8sHHBBBBBH"


@dataclass(frozen=True)
class CoreInfo:
    """One core as INFO describes it (its own one-core config; ``max_steps``: of a RUN addressed to it)."""

    weights_in_rom: bool
    config_hash: str
    input_size: int
    hidden_size: int
    num_layers: int
    word_bytes: int
    state_width: int
    state_frac: int
    state_record_bytes: int
    max_steps: int


@dataclass(frozen=True)
class Info:
    """What INFO returns: enough to check the design and to size every frame."""

    version: int
    weights_in_rom: bool
    config_hash: str
    design_hash: str
    input_size: int
    hidden_size: int
    num_layers: int
    word_bytes: int
    state_width: int
    state_frac: int
    state_record_bytes: int
    buffer_bytes: int
    max_steps: int
    clk_freq: int
    baud: int
    timeout_cycles: int
    #: ``single`` (one core: INFO is the 43 bytes above), ``programs`` or ``layers`` (a MultiCore)
    mode: str = "single"
    #: a multi-core design's cores (empty for one core: :attr:`core_infos` derives it)
    cores: tuple[CoreInfo, ...] = ()

    @property
    def timeout_seconds(self) -> float | None:
        """The device's inter-byte timeout, when it knows its clock."""
        return self.timeout_cycles / self.clk_freq if self.clk_freq else None

    @property
    def n_cores(self) -> int:
        return max(1, len(self.cores))

    @property
    def core_infos(self) -> tuple[CoreInfo, ...]:
        """Every core (for a one-core design, the one core from the base fields)."""
        if self.cores:
            return self.cores
        return (
            CoreInfo(
                self.weights_in_rom,
                self.config_hash,
                self.input_size,
                self.hidden_size,
                self.num_layers,
                self.word_bytes,
                self.state_width,
                self.state_frac,
                self.state_record_bytes,
                self.max_steps,
            ),
        )


def encode_info(info: Info) -> bytes:
    """INFO's payload: the 43 one-core bytes; a multi-core design appends cores, mode and a record per core."""
    return _encode_base_info(info) + _encode_cores(info)


def _encode_cores(info: Info) -> bytes:
    if info.mode == "single":
        if info.cores:
            raise ValueError("a one-core INFO has no core records")
        return b""
    if info.mode not in MODES or not 1 <= len(info.cores) <= 0xFE:
        raise ValueError(f"multi-core INFO: mode {info.mode!r} with {len(info.cores)} cores")
    out = bytes([len(info.cores), MODES.index(info.mode)])
    for c in info.cores:
        out += struct.pack(
            CORE_INFO_FORMAT,
            int(c.weights_in_rom),
            bytes.fromhex(c.config_hash),
            c.input_size,
            c.hidden_size,
            c.num_layers,
            c.word_bytes,
            c.state_width,
            c.state_frac,
            c.state_record_bytes,
            c.max_steps,
        )
    return out


def _encode_base_info(info: Info) -> bytes:
    return struct.pack(
        INFO_FORMAT,
        info.version,
        int(info.weights_in_rom),
        bytes.fromhex(info.config_hash),
        bytes.fromhex(info.design_hash),
        info.input_size,
        info.hidden_size,
        info.num_layers,
        info.word_bytes,
        info.state_width,
        info.state_frac,
        info.state_record_bytes,
        info.buffer_bytes,
        info.max_steps,
        info.clk_freq,
        info.baud,
        info.timeout_cycles,
    )


def decode_info(payload: bytes) -> Info:
    size = struct.calcsize(INFO_FORMAT)
    if len(payload) < size:
        raise FrameError(f"INFO payload of {len(payload)} bytes, expected {size}")
    f = struct.unpack(INFO_FORMAT, bytes(payload[:size]))
    mode, cores = "single", ()
    rest = bytes(payload[size:])
    if rest:
        n = rest[0]
        csize = struct.calcsize(CORE_INFO_FORMAT)
        if len(rest) < 2 + n * csize or n == 0 or rest[1] >= len(MODES) or rest[1] == 0:
            raise FrameError(f"INFO payload of {len(payload)} bytes: bad multi-core records")
        mode = MODES[rest[1]]
        cores = tuple(
            _core_info(struct.unpack(CORE_INFO_FORMAT, rest[2 + i * csize : 2 + (i + 1) * csize])) for i in range(n)
        )
    return Info(
        version=f[0],
        weights_in_rom=bool(f[1] & 1),
        config_hash=f[2].hex(),
        design_hash=f[3].hex(),
        input_size=f[4],
        hidden_size=f[5],
        num_layers=f[6],
        word_bytes=f[7],
        state_width=f[8],
        state_frac=f[9],
        state_record_bytes=f[10],
        buffer_bytes=f[11],
        max_steps=f[12],
        clk_freq=f[13],
        baud=f[14],
        timeout_cycles=f[15],
        mode=mode,
        cores=cores,
    )


def _core_info(f) -> CoreInfo:
    return CoreInfo(bool(f[0] & 1), f[1].hex(), *f[2:])


@dataclass(frozen=True)
class Counters:
    cycles: int
    wait_cycles: int
    steps: int
    status: int  #: accelerator status: bit 0 busy, 1 idle, 2 error
    rejected: int  #: frames answered with a NAK since reset (wraps at 2^16)

    @property
    def busy(self) -> bool:
        return bool(self.status & 1)

    @property
    def idle(self) -> bool:
        return bool(self.status >> 1 & 1)

    @property
    def error(self) -> bool:
        return bool(self.status >> 2 & 1)

    def as_dict(self) -> dict:
        return {
            "cycles": self.cycles,
            "wait_cycles": self.wait_cycles,
            "steps": self.steps,
            "status": self.status,
            "busy": self.busy,
            "idle": self.idle,
            "error": self.error,
            "rejected": self.rejected,
        }


def encode_counters(c: Counters) -> bytes:
    return struct.pack(COUNTERS_FORMAT, c.cycles, c.wait_cycles, c.steps, c.status, c.rejected)


def decode_counters(payload: bytes) -> Counters:
    size = struct.calcsize(COUNTERS_FORMAT)
    if len(payload) != size:
        raise FrameError(f"READ_COUNTERS payload of {len(payload)} bytes, expected {size}")
    return Counters(*struct.unpack(COUNTERS_FORMAT, bytes(payload)))


# ----------------------------------------------------------------------------- payloads


def encode_state_records(layout: LinkLayout, cmds: Sequence[tuple[int, int, int, int]]) -> bytes:
    """WRITE_STATE payload: one record per (op, sel, addr, data) accelerator command."""
    d = layout.state_data_bytes
    out = bytearray()
    for op, sel, addr, data in cmds:
        out += (
            bytes([op])
            + int(sel).to_bytes(2, "little")
            + int(addr).to_bytes(3, "little")
            + int(data).to_bytes(d, "little")
        )
    return bytes(out)


def weight_bursts(layout: LinkLayout, cmds: Sequence[tuple[int, int, int, int]], buffer_bytes: int) -> list[bytes]:
    """WRITE_WEIGHTS payloads: runs of consecutive addresses of one bank, each ``sel (2), addr (3), words``.

    ``cmds`` are ``rnnaccel.interface.session.weight_commands`` tuples; every payload fits ``buffer_bytes``.
    """
    out: list[bytes] = []
    cur: bytearray | None = None
    cur_sel = next_addr = -1
    for _, sel, addr, data in cmds:
        wb = layout.weight_bytes(sel)
        if cur is None or sel != cur_sel or addr != next_addr or len(cur) + wb > buffer_bytes:
            if cur is not None:
                out.append(bytes(cur))
            cur = bytearray(int(sel).to_bytes(2, "little") + int(addr).to_bytes(3, "little"))
            cur_sel = sel
        cur += int(data).to_bytes(wb, "little")
        next_addr = addr + 1
    if cur is not None:
        out.append(bytes(cur))
    return out


def encode_run(x_raw: np.ndarray, word_bytes: int) -> bytes:
    """RUN payload: raw q_state inputs (T, input), row after row, sign-extended little-endian words."""
    x = np.asarray(x_raw, dtype=np.int64).reshape(-1)
    dt = {1: "<i1", 2: "<i2", 4: "<i4", 8: "<i8"}.get(word_bytes)
    if dt is not None:
        return x.astype(dt).tobytes()
    return b"".join(int(v).to_bytes(word_bytes, "little", signed=True) for v in x)


def decode_run(payload: bytes, steps: int, hidden: int, word_bytes: int) -> np.ndarray:
    """RUN response: (steps, hidden) raw q_state integers."""
    w = word_bytes
    if len(payload) != steps * hidden * w:
        raise FrameError(f"RUN response of {len(payload)} bytes, expected {steps * hidden * w}")
    dt = {1: "<i1", 2: "<i2", 4: "<i4", 8: "<i8"}.get(w)
    if dt is not None:
        vals = np.frombuffer(bytes(payload), dtype=dt).astype(np.int64)
    else:
        vals = np.array(
            [int.from_bytes(payload[i : i + w], "little", signed=True) for i in range(0, len(payload), w)],
            dtype=np.int64,
        )
    return vals.reshape(steps, hidden)
