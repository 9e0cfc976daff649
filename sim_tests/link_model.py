"""A Python model of the host-link device, and an exerciser that checks a device against it.

:class:`ReferenceDevice` says, for any byte stream the host sends, what the
device must answer, byte for byte: :func:`split_frames` is the receiver (SYNC
hunt, header, payload, CRC; a frame the line leaves unfinished ends with an
inter-byte timeout) and :meth:`ReferenceDevice.respond` is the engine (the
checks in the order of ``docs/hostlink.md``, the two-pass payload walk, and
the effects of every command on a golden model of the accelerator, its
counters and its weights).

:class:`LinkExerciser` sends requests and damaged traffic through any
transport (the Amaranth simulator on byte streams or UART pins, cocotb on the
generated Verilog) and compares every response with the model's. It sends a
stream frame by frame and waits for each answer, so the device sees exactly
the bytes the model parses, whatever its transport drops while busy. The
hypothesis state machine (``test_hostlink_fsm.py``) and the seeded programs
(:func:`random_program`, also run in Verilator) drive the same methods.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from rnnaccel.interface import protocol
from rnnaccel.interface.protocol import (
    ACK_FLAG,
    ALL_CORES,
    CORE_FLAG,
    COUNTERS_FORMAT,
    NAK,
    SYNC,
    Cmd,
    Error,
    LinkLayout,
    crc16,
    encode_addressed,
    encode_frame,
    encode_info,
    encode_run,
    encode_state_records,
    weight_bursts,
)
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.golden import IntegerModel
from rnnaccel.interface.session import OP, state_commands, weight_commands
from rnnaccel.numeric.model import random_weights

NO_PAYLOAD = (Cmd.INFO, Cmd.RESET_STATE, Cmd.READ_COUNTERS, Cmd.CLEAR_COUNTERS)


# ----------------------------------------------------------------------------- receiver


@dataclass
class Parsed:
    """One frame as the device's receiver sees it.

    ``data`` is every byte from the previous frame's end to this one's end
    (junk before SYNC included). ``complete`` is false for a frame the stream
    leaves unfinished (it ends with the inter-byte timeout); then ``cmd`` is 0
    when the timeout came before the command byte.
    """

    data: bytes
    complete: bool
    cmd: int = 0
    length: int = 0
    payload: bytes = b""
    crc_ok: bool = False


def split_frames(stream: bytes) -> tuple[list[Parsed], bytes]:
    """The frames in ``stream`` (followed by a quiet line), and the junk after the last one."""
    frames: list[Parsed] = []
    start = i = 0
    n = len(stream)
    while i < n:
        if stream[i] != SYNC:
            i += 1
            continue
        j = i + 1
        if j + 3 > n:  # SYNC, maybe cmd, maybe one length byte: then silence
            frames.append(Parsed(stream[start:], False, stream[j] if j < n else 0))
            return frames, b""
        cmd, length = stream[j], stream[j + 1] | stream[j + 2] << 8
        end = j + 3 + length + 2
        if end > n:
            frames.append(Parsed(stream[start:], False, cmd))
            return frames, b""
        frames.append(
            Parsed(
                stream[start:end], True, cmd, length, bytes(stream[j + 3 : j + 3 + length]), crc16(stream[j:end]) == 0
            )
        )
        start = i = end
    return frames, bytes(stream[start:])


# ----------------------------------------------------------------------------- the device


@dataclass
class Expected:
    """A response: command byte and payload; ``counters`` marks a READ_COUNTERS answer checked by fields."""

    cmd: int
    payload: bytes = b""
    counters: bool = False

    @property
    def is_nak(self) -> bool:
        return self.cmd == NAK


@dataclass
class ReferenceDevice:
    """What a fresh device does, frame by frame (``cfg``, ``weights`` loaded, ``info`` as INFO answers)."""

    cfg: object
    weights: object
    info: protocol.Info
    steps: int = 0
    rejected: int = 0
    last_cycles: int = 0
    last_wait: int = 0
    log: list = field(default_factory=list)

    def __post_init__(self):
        self._h_addr = None
        self.layout = LinkLayout(self.cfg)
        self.cap = self.info.buffer_bytes
        self.model = IntegerModel(self.cfg, self.weights)
        self.model.reset()

    # ---------------------------------------------------------------- helpers
    def _nak(self, code, cmd) -> Expected:
        self.rejected += 1
        self.log.append(("nak", Error(code).name, cmd))
        return Expected(NAK, bytes([int(code), cmd]))

    def _ack(self, cmd, payload=b"") -> Expected:
        self.log.append(("ack", Cmd(cmd).name))
        return Expected(cmd | ACK_FLAG, bytes(payload))

    def _units(self, payload, size):
        whole = len(payload) // size
        return [payload[i * size : (i + 1) * size] for i in range(whole)], len(payload) % size

    def _walk_state(self, payload):
        lay, cfg = self.layout, self.cfg
        units, rest = self._units(payload, lay.state_record_bytes)
        for u in units:
            op, sel, addr = u[0], int.from_bytes(u[1:3], "little"), int.from_bytes(u[3:6], "little")
            data = int.from_bytes(u[6:], "little")
            if op == OP["WRITE_VEC"]:
                ok = sel < lay.vector_sels and addr < lay.vector_rows and data >> cfg.q_state.width == 0
            elif op == OP["WRITE_C"]:
                ok = sel == 0 and addr < lay.cell_words and data >> cfg.q_cell.width == 0
            else:
                ok = False
            if not ok:
                return Error.RANGE
        return Error.LENGTH if rest else None

    def _walk_weights(self, payload):
        lay = self.layout
        if len(payload) < 5:
            return Error.LENGTH
        sel, addr = int.from_bytes(payload[:2], "little"), int.from_bytes(payload[2:5], "little")
        if sel > lay.weight_banks:
            return Error.RANGE
        units, rest = self._units(payload[5:], lay.weight_bytes(sel))
        for k, u in enumerate(units):
            if addr + k >= lay.weight_depth(sel) or int.from_bytes(u, "little") >> lay.weight_bits(sel):
                return Error.RANGE
        return Error.LENGTH if rest else None

    def _walk_run(self, payload):
        lay, q = self.layout, self.cfg.q_state
        units, rest = self._units(payload, lay.word_bytes)
        for u in units:
            v = int.from_bytes(u, "little", signed=True)
            if not q.min_raw <= v <= q.max_raw:
                return Error.RANGE
        if rest or len(units) % self.cfg.input_size:
            return Error.LENGTH
        return None

    # ---------------------------------------------------------------- the engine
    def respond(self, fr: Parsed) -> Expected:
        """The answer to one received frame, and its effect on the modelled device."""
        lay, cfg = self.layout, self.cfg
        if not fr.complete:
            return self._nak(Error.TIMEOUT, fr.cmd)
        raw, n, payload = fr.cmd, fr.length, fr.payload
        if not fr.crc_ok:
            return self._nak(Error.CRC, raw)
        cmd = raw & ~CORE_FLAG  # an addressed frame: the core byte first (this one-core device has core 0)
        if cmd not in Cmd._value2member_map_:
            return self._nak(Error.COMMAND, raw)
        core, no_core = 0, False
        if raw & CORE_FLAG:
            no_core = n == 0
            core, n, payload = (payload[0], n - 1, payload[1:]) if n else (0, 0, b"")
        if n > self.cap or (cmd in NO_PAYLOAD and n) or no_core:
            return self._nak(Error.LENGTH, raw)
        if not (core == 0 or (core == ALL_CORES and cmd not in (Cmd.WRITE_STATE, Cmd.WRITE_WEIGHTS, Cmd.RUN))):
            return self._nak(Error.CORE, raw)
        if cmd == Cmd.WRITE_WEIGHTS and cfg.weights_in_rom:
            return self._nak(Error.ROM, raw)
        if cmd == Cmd.RUN and (n == 0 or n > lay.max_steps(self.cap) * lay.step_bytes):
            return self._nak(Error.LENGTH, raw)
        ack = self._ack
        if raw != cmd:

            def ack(_, data=b""):
                return Expected(self._ack(cmd, data).cmd | CORE_FLAG, bytes(data))

        return self._respond_ok(raw, cmd, n, payload, ack)

    def _respond_ok(self, raw, cmd, n, payload, ack) -> Expected:
        """The answer to a frame that passed the checks before the payload walk (``ack`` answers as the
        frame's command byte asks: addressed or not)."""
        lay, cfg = self.layout, self.cfg
        if cmd == Cmd.PING:
            return ack(cmd, payload)
        if cmd == Cmd.INFO:
            return ack(cmd, encode_info(self.info))
        if cmd == Cmd.READ_COUNTERS:
            exp = ack(cmd, struct.pack(COUNTERS_FORMAT, 0, 0, self.steps, 2, self.rejected & 0xFFFF))
            exp.counters = True
            return exp
        if cmd == Cmd.RESET_STATE:
            self.model.reset()
            return ack(cmd)
        if cmd == Cmd.CLEAR_COUNTERS:
            self.steps = self.last_cycles = self.last_wait = 0
            return ack(cmd)
        walk = {Cmd.WRITE_STATE: self._walk_state, Cmd.WRITE_WEIGHTS: self._walk_weights, Cmd.RUN: self._walk_run}
        err = walk[cmd](payload)
        if err is not None:
            return self._nak(err, raw)
        if cmd == Cmd.RUN:
            x = np.frombuffer(
                b"".join(
                    int.from_bytes(payload[i : i + lay.word_bytes], "little", signed=True).to_bytes(
                        8, "little", signed=True
                    )
                    for i in range(0, n, lay.word_bytes)
                ),
                "<i8",
            ).reshape(-1, cfg.input_size)
            y = self.model.run_raw(x)
            self.steps += x.shape[0]
            return ack(cmd, encode_run(y, lay.word_bytes))
        if cmd == Cmd.WRITE_STATE:
            self._apply_state_records(payload)
        # WRITE_WEIGHTS: the exerciser sends bursts of known weight sets and swaps the golden model
        # once a whole set is written (load_weights); rewriting the loaded weights changes nothing.
        return ack(cmd)

    def _apply_state_records(self, payload) -> None:
        """WRITE_VEC / WRITE_C records into the golden model's h and c (the inverse of ``state_commands``)."""
        cfg, lay = self.cfg, self.layout
        if self._h_addr is None:
            ones = np.ones((cfg.num_layers, cfg.hidden_size), np.int64)
            self._h_addr = {}
            for k, (_, sel, addr, _) in enumerate(state_commands(cfg, ones, None)):
                self._h_addr[(sel, addr)] = divmod(k, cfg.hidden_size)
        if self.model.state is None:
            self.model.state = self.model.zero_state(1)
        hp = cfg.padded(cfg.hidden_size)
        units, _ = self._units(payload, lay.state_record_bytes)
        for u in units:
            op, sel, addr = u[0], int.from_bytes(u[1:3], "little"), int.from_bytes(u[3:6], "little")
            data = int.from_bytes(u[6:], "little")
            if op == OP["WRITE_VEC"]:
                where, q, key = self._h_addr.get((sel, addr)), cfg.q_state, "h"
            else:
                layer, e = divmod(addr, hp)
                where, q, key = (
                    (layer, e) if e < cfg.hidden_size and "c" in self.model.state[0] else None,
                    cfg.q_cell,
                    "c",
                )
            if where is None:
                raise NotImplementedError(f"the model does not follow a {key} record at sel {sel}, addr {addr}")
            value = data - (1 << q.width) if data >> (q.width - 1) else data
            self.model.state[where[0]][key][0, where[1]] = value
        self.model._link_window(self.model.state)

    def check_counters(self, payload: bytes) -> None:
        cycles, wait, steps, status, rejected = struct.unpack(COUNTERS_FORMAT, payload)
        assert (steps, status, rejected) == (self.steps, 2, self.rejected & 0xFFFF), (
            f"counters {steps=} {status=} {rejected=}, expected {self.steps}, 2, {self.rejected & 0xFFFF}"
        )
        assert cycles >= self.last_cycles and wait >= self.last_wait, "counters went backwards"
        if self.steps:
            assert cycles >= self.steps, f"{cycles} cycles for {self.steps} steps"
        self.last_cycles, self.last_wait = cycles, wait


# ----------------------------------------------------------------------------- the exerciser


class LinkExerciser:
    """Drives a device through ``transport`` and checks every answer against a :class:`ReferenceDevice`.

    Parameters
    ----------
    transport
        Has ``write``, ``read(n, timeout)``, ``pause(seconds)``, ``period``
        (seconds per clock), ``byte_cycles`` (clocks per byte on the line).
    cfg, weights, info
        The design; ``info`` is what its INFO answers.
    """

    def __init__(self, transport, cfg, weights, info):
        self.tr = transport
        self.cfg = cfg
        self.dev = ReferenceDevice(cfg, weights, info)
        self.lay = self.dev.layout
        self.weights = weights
        self.requests = 0  # valid requests sent
        self.damaged = 0  # frames that are not valid requests (NAKed or timed out)

    # ---------------------------------------------------------------- the line
    def _cycles(self, n):
        return n * self.tr.period

    def _read_response(self, sent_bytes: int, reply_bytes: int) -> tuple[int, bytes]:
        bc = self.tr.byte_cycles
        # the bytes' time on the line twice over, plus compute: a RUN step of a small design is a few
        # hundred cycles for its (hidden * word bytes) output bytes
        budget = self._cycles((sent_bytes + reply_bytes + 16) * bc * 2 + 4000 + 100 * reply_bytes)
        head = self.tr.read(4, budget)
        assert len(head) == 4, f"no answer (got {head.hex() or 'nothing'}) after {self.dev.log[-3:]}"
        assert head[0] == SYNC, f"answer does not start with SYNC: {head.hex()}"
        n = head[2] | head[3] << 8
        rest = self.tr.read(n + 2, budget)
        assert len(rest) == n + 2, f"answer cut short: {len(rest)} of {n + 2} bytes"
        frame = protocol.parse_frame(head + rest)  # checks the CRC
        return frame.cmd, frame.payload

    def _quiet(self, cycles=64) -> None:
        extra = self.tr.read(1, self._cycles(cycles))
        assert not extra, f"unexpected byte {extra.hex()} from the device"

    def send(self, stream: bytes) -> list[Expected]:
        """Send ``stream`` frame by frame; check every answer; return the expected answers."""
        frames, junk = split_frames(bytes(stream))
        out = []
        for fr in frames:
            exp = self.dev.respond(fr)
            self.tr.write(fr.data)
            if not fr.complete:
                self.tr.pause(self._cycles(len(fr.data) * self.tr.byte_cycles + self.dev.info.timeout_cycles + 32))
            cmd, payload = self._read_response(len(fr.data), len(exp.payload))
            assert cmd == exp.cmd, (
                f"answer 0x{cmd:02x} {payload[:8].hex()}, expected 0x{exp.cmd:02x} "
                f"{exp.payload[:8].hex()} ({self.dev.log[-1]})"
            )
            if exp.counters:
                self.dev.check_counters(payload)
            else:
                assert payload == exp.payload, (
                    f"{self.dev.log[-1]}: payload differs ({payload[:16].hex()} vs {exp.payload[:16].hex()})"
                )
            if exp.is_nak or not fr.complete:
                self.damaged += 1
            out.append(exp)
        if junk:
            self.tr.write(junk)
            self.tr.pause(self._cycles(len(junk) * self.tr.byte_cycles + 8))
        self._quiet()
        return out

    def request(self, cmd, payload=b"", core=None) -> Expected:
        """A valid request: exactly one answer, an ACK (``core``: addressed to that core)."""
        (exp,) = self.send(encode_frame(cmd, payload) if core is None else encode_addressed(cmd, core, payload))
        assert not exp.is_nak, f"valid request {Cmd(cmd).name} rejected: {exp.payload.hex()}"
        self.requests += 1
        return exp

    # ---------------------------------------------------------------- valid requests
    def ping(self, data: bytes):
        self.request(Cmd.PING, data)

    def info(self):
        self.request(Cmd.INFO)

    def reset(self):
        self.request(Cmd.RESET_STATE)

    def counters(self):
        self.request(Cmd.READ_COUNTERS)

    def clear(self):
        self.request(Cmd.CLEAR_COUNTERS)

    def run(self, x_raw):
        self.request(Cmd.RUN, encode_run(np.asarray(x_raw, dtype=np.int64), self.lay.word_bytes))

    def write_state(self, h, c, reset_first=True):
        """A whole initial state (the driver's set_state; without the reset for cells whose state is h and c)."""
        if reset_first:
            self.reset()
        cmds = state_commands(self.cfg, h, c)
        per = self.dev.cap // self.lay.state_record_bytes
        for i in range(0, len(cmds), per):
            self.request(Cmd.WRITE_STATE, encode_state_records(self.lay, cmds[i : i + per]))
        # the model followed the records; they must amount to the driver's initial state
        want = IntegerModel(self.cfg, self.weights)
        want.set_state_raw(h, c)
        for got_layer, want_layer in zip(self.dev.model.state, want.state):
            for key in want_layer:
                np.testing.assert_array_equal(got_layer[key], want_layer[key])

    def empty_state_write(self):
        self.request(Cmd.WRITE_STATE)

    def load_weights(self, seed):
        """Load a whole new weight set (designs with weights in RAM); the state is kept."""
        new = random_weights(self.cfg, seed=seed)
        for burst in weight_bursts(self.lay, weight_commands(self.cfg, new), self.dev.cap):
            self.request(Cmd.WRITE_WEIGHTS, burst)
        state = self.dev.model.state
        self.dev.model = IntegerModel(self.cfg, new)
        self.dev.model.state = state
        self.weights = new

    def rewrite_bursts(self, picks):
        """Write some bursts of the weights already loaded (changes nothing)."""
        bursts = weight_bursts(self.lay, weight_commands(self.cfg, self.weights), self.dev.cap)
        for p in picks:
            self.request(Cmd.WRITE_WEIGHTS, bursts[p % len(bursts)])

    def do(self, kind: str, rng: np.random.Generator) -> None:
        """One valid request (or the few a driver call makes) of ``kind``, its parameters from ``rng``."""
        if kind == "ping":
            n = int(rng.integers(0, 9)) if rng.random() < 0.7 else int(rng.integers(0, self.dev.cap + 1))
            self.ping(rng.bytes(n))
        elif kind == "info":
            self.info()
        elif kind == "reset":
            self.reset()
        elif kind == "state":
            self.write_state(*self.state_values(rng), reset_first=bool(rng.integers(0, 2)) or self.cfg.cell != "lstm")
        elif kind == "empty_state":
            self.empty_state_write()
        elif kind == "weights":
            if self.cfg.weights_in_rom:
                self.counters()
            else:
                self.load_weights(int(rng.integers(0, 1 << 16)))
        elif kind == "rewrite":
            if self.cfg.weights_in_rom:
                self.info()
            else:
                self.rewrite_bursts([int(v) for v in rng.integers(0, 64, int(rng.integers(1, 4)))])
        elif kind == "run":
            self.run(self.inputs(rng, int(rng.integers(1, 4))))
        elif kind == "run_longest":
            self.run(self.inputs(rng, self.lay.max_steps(self.dev.cap)))
        elif kind == "counters":
            self.counters()
        elif kind == "clear":
            self.clear()
        elif kind == "addressed":  # a request addressed to the one core (0), or to every core where allowed
            which = int(rng.integers(0, 5))
            if which == 0:
                self.request(Cmd.RUN, encode_run(self.inputs(rng, int(rng.integers(1, 3))), self.lay.word_bytes), 0)
            elif which == 1:
                self.request(Cmd.PING, rng.bytes(int(rng.integers(0, 6))), int(rng.choice([0, ALL_CORES])))
            else:
                cmd = [Cmd.RESET_STATE, Cmd.READ_COUNTERS, Cmd.INFO][which - 2]
                self.request(cmd, b"", int(rng.choice([0, ALL_CORES])))
        else:
            raise ValueError(kind)

    # ---------------------------------------------------------------- valid frames to damage
    def sample_frame(self, rng: np.random.Generator) -> bytes:
        """A valid request's bytes (what the damage rules cut, flip and repeat)."""
        kind = int(rng.integers(0, 5))
        if kind == 0:
            return encode_frame(Cmd.PING, rng.bytes(int(rng.integers(0, 24))))
        if kind == 1:
            return encode_frame(Cmd.RUN, encode_run(self.inputs(rng, int(rng.integers(1, 3))), self.lay.word_bytes))
        if kind == 2:
            h, c = self.state_values(rng)
            return encode_frame(Cmd.WRITE_STATE, encode_state_records(self.lay, state_commands(self.cfg, h, c)[:4]))
        if kind == 3 and not self.cfg.weights_in_rom:
            bursts = weight_bursts(self.lay, weight_commands(self.cfg, self.weights), self.dev.cap)
            return encode_frame(Cmd.WRITE_WEIGHTS, bursts[int(rng.integers(0, len(bursts)))])
        return encode_frame(Cmd(int(rng.choice([Cmd.INFO, Cmd.READ_COUNTERS, Cmd.RESET_STATE]))))

    def inputs(self, rng, steps):
        return quantize(rng.uniform(-1.5, 1.5, size=(steps, self.cfg.input_size)), self.cfg.q_state)

    def state_values(self, rng):
        cfg = self.cfg
        h = quantize(rng.uniform(-0.9, 0.9, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_state)
        c = (
            quantize(rng.uniform(-1.5, 1.5, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_cell)
            if cfg.cell in ("lstm", "sru", "qrnn")
            else None
        )
        return h, c

    # ---------------------------------------------------------------- damaged traffic
    def frame_with_bad_fields(self, rng) -> bytes:
        """A frame with a good CRC that the engine must reject (length, range, command, ROM)."""
        lay, cfg = self.lay, self.cfg
        kind = int(rng.integers(0, 10))
        if kind == 0:  # a payload on a command that takes none
            return encode_frame(Cmd(int(rng.choice(list(NO_PAYLOAD)))), rng.bytes(int(rng.integers(1, 6))))
        if kind == 1:  # RUN: not whole input vectors, or empty
            n = int(rng.integers(0, lay.step_bytes))
            return encode_frame(Cmd.RUN, encode_run(self.inputs(rng, 1), lay.word_bytes)[:n])
        if kind == 2:  # RUN: a word that is not a sign-extended q_state value
            x = bytearray(encode_run(self.inputs(rng, 1), lay.word_bytes))
            free = 8 * lay.word_bytes - cfg.q_state.width
            if free == 0:
                return encode_frame(0x40 + int(rng.integers(0, 0x3F)))
            i = int(rng.integers(0, cfg.input_size)) * lay.word_bytes + lay.word_bytes - 1
            x[i] ^= 0x80 >> int(rng.integers(0, free)) if free <= 8 else 0x80
            return encode_frame(Cmd.RUN, bytes(x))
        if kind == 3:  # WRITE_STATE: a record cut short
            h, c = self.state_values(rng)
            rec = encode_state_records(lay, state_commands(cfg, h, c)[:2])
            return encode_frame(Cmd.WRITE_STATE, rec[: -int(rng.integers(1, lay.state_record_bytes))])
        if kind == 4:  # WRITE_STATE: bad opcode, selector or address
            op, sel, addr, data = state_commands(cfg, *self.state_values(rng))[0]
            which = int(rng.integers(0, 3))
            bad = [
                (int(rng.choice([0, 1, 4, 7, 15])), sel, addr, data),
                (op, lay.vector_sels + int(rng.integers(0, 9)), addr, data),
                (op, sel, lay.vector_rows + int(rng.integers(0, 99)), data),
            ][which]
            return encode_frame(Cmd.WRITE_STATE, encode_state_records(lay, [bad]))
        if kind == 5:  # WRITE_WEIGHTS: ROM design, or bad selector / address / too short
            if cfg.weights_in_rom:
                return encode_frame(Cmd.WRITE_WEIGHTS, rng.bytes(int(rng.integers(0, 12))))
            which = int(rng.integers(0, 3))
            if which == 0:
                return encode_frame(Cmd.WRITE_WEIGHTS, rng.bytes(int(rng.integers(0, 5))))
            sel = lay.weight_banks + 1 + int(rng.integers(0, 5)) if which == 1 else 0
            addr = 0 if which == 1 else lay.weight_depth(0) - int(rng.integers(0, 2))
            words = b"\x00" * lay.weight_bytes(0) * 2
            return encode_frame(Cmd.WRITE_WEIGHTS, sel.to_bytes(2, "little") + addr.to_bytes(3, "little") + words)
        if kind == 6:  # unknown command
            return encode_frame(
                int(rng.choice([0x00, 0x09, 0x10, 0x7F, 0x80, 0x86, 0xA5, 0xFE])), rng.bytes(int(rng.integers(0, 5)))
            )
        if kind == 9:  # addressed: a core this one-core design does not have, all cores where one is needed, none
            which = int(rng.integers(0, 3))
            if which == 0:
                cmd = Cmd(int(rng.choice([c.value for c in Cmd])))
                payload = encode_run(self.inputs(rng, 1), lay.word_bytes) if cmd == Cmd.RUN else b""
                return encode_addressed(cmd, int(rng.integers(1, ALL_CORES)), payload)
            if which == 1:
                return encode_addressed(Cmd.RUN, ALL_CORES, encode_run(self.inputs(rng, 1), lay.word_bytes))
            return encode_frame(int(rng.choice([c.value for c in Cmd])) | CORE_FLAG)
        if kind == 7:  # longer than the buffer (received to its end, then rejected)
            return encode_frame(Cmd.PING, rng.bytes(self.dev.cap + int(rng.integers(1, 9))))
        # RUN longer than its limit
        steps = lay.max_steps(self.dev.cap) + 1
        if steps * lay.step_bytes > self.dev.cap:
            return encode_frame(Cmd.RUN, b"\x00" * (self.dev.cap + 1))
        return encode_frame(Cmd.RUN, encode_run(self.inputs(rng, steps), lay.word_bytes))

    def damage(self, kind: str, rng: np.random.Generator) -> None:
        """Damaged traffic of one kind, then a check that the device still answers a request."""
        frame = self.sample_frame(rng)
        if kind == "garbage":  # random bytes with SYNC in them
            data = bytearray(rng.bytes(int(rng.integers(1, 40))))
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(0, len(data)))] = SYNC
            self.send(bytes(data))
        elif kind == "flip":  # one bit flipped anywhere in a valid frame
            data = bytearray(frame)
            bit = int(rng.integers(0, 8 * len(data)))
            data[bit // 8] ^= 1 << (bit % 8)
            self.send(bytes(data))
        elif kind == "truncate":  # a valid frame cut short
            self.send(frame[: int(rng.integers(1, len(frame)))])
        elif kind == "length":  # the length field says more or less than was sent
            data = bytearray(frame)
            n = (data[2] | data[3] << 8) + int(rng.choice([-3, -2, -1, 1, 2, 5]))
            n = max(n, 0) if n != (data[2] | data[3] << 8) else n + 1
            data[2:4] = (n & 0xFFFF).to_bytes(2, "little")
            self.send(bytes(data))
        elif kind == "prefix":  # a frame followed by a prefix of itself
            self.send(frame + frame[: int(rng.integers(1, len(frame)))])
        elif kind == "fields":  # good CRC, fields the engine must reject
            self.send(self.frame_with_bad_fields(rng))
        else:
            raise ValueError(kind)

    def check_alive(self) -> None:
        """The device answers a valid request and its counters agree with the model."""
        self.counters()


DAMAGE_KINDS = ("garbage", "flip", "truncate", "length", "prefix", "fields")
#: valid request kinds of :meth:`LinkExerciser.do`
REQUEST_KINDS = (
    "ping",
    "info",
    "reset",
    "state",
    "empty_state",
    "weights",
    "rewrite",
    "run",
    "run_longest",
    "counters",
    "clear",
    "addressed",
)


def random_program(ex: LinkExerciser, rng: np.random.Generator, actions: int) -> None:
    """A seeded random sequence of valid requests and damaged traffic (for transports without hypothesis)."""
    for _ in range(actions):
        if rng.random() < 0.3:
            ex.damage(DAMAGE_KINDS[int(rng.integers(0, len(DAMAGE_KINDS)))], rng)
        else:
            kind = REQUEST_KINDS[int(rng.integers(0, len(REQUEST_KINDS)))]
            if kind == "run_longest" and rng.random() < 0.7:
                kind = "run"  # a long RUN is many simulated cycles: fewer of them
            ex.do(kind, rng)
    ex.check_alive()
