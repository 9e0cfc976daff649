"""Host driver for an accelerator behind the UART host link.

:class:`LinkClient` speaks the framed protocol (:mod:`rnnaccel.interface.protocol`,
``docs/hostlink.md``) over a pluggable byte transport:

* a serial port by name (``LinkClient("/dev/ttyUSB1", cfg)``), through
  pyserial (:class:`SerialTransport`); a missing or unreadable port is a
  :class:`PortError`, one line;
* :class:`AmaranthTransport`, the gateware in the Amaranth simulator, at the
  bit level through a :class:`~rnnaccel.hw.hostlink.HostLink`'s UART pins or
  byte by byte into a :class:`~rnnaccel.hw.hostlink.FrameEngine`;
* anything else with the same four methods (the cocotb tests use one).

A transport has ``write(data)``, ``read(n, timeout) -> bytes`` (fewer bytes
when ``timeout`` seconds pass), ``reset_input_buffer()`` and
``pause(seconds)`` (keep the line quiet). Simulated transports measure
seconds in simulated time and may set ``baud``, ``default_timeout`` and
``resync_time`` attributes, which the driver then uses as its defaults.

``run`` returns exactly what the golden backend returns for the same raw
inputs (:func:`rnnaccel.interface.session.golden_session`); :func:`infer` is the one call
``rnnaccel infer`` needs.

Multi-core designs (issue 14): the commands take an optional ``core``; without
it a frame goes to the design's default target (the one core, core 0 of a
``programs`` design, the whole stack of a ``layers`` or ``helpers`` design), with it the
frame is addressed to that core (``docs/hostlink.md``). A ``programs`` session
(:mod:`rnnaccel.interface.multicore`) runs with :meth:`LinkClient.programs_session`
or :meth:`LinkClient.run_cores` and returns what
:func:`~rnnaccel.interface.multicore.programs_golden` returns.
"""

from __future__ import annotations

import os
import time
from collections import deque

import numpy as np

from ..numeric.config import Config
from ..flow.rtl import programs_design_hash  # re-exported: INFO's design hash of a programs design
from ..numeric.fixedpoint import QFormat, quantize, to_float
from ..interface import protocol
from ..interface.session import execute
from ..interface.protocol import (
    ACK_FLAG,
    ALL_CORES,
    CORE_FLAG,
    ERROR_TEXT,
    NAK,
    SYNC,
    Cmd,
    Error,
    Frame,
    Info,
    LinkLayout,
    crc16,
    decode_counters,
    decode_info,
    decode_run,
    encode_addressed,
    encode_frame,
    encode_run,
    encode_state_records,
    weight_bursts,
)

__all__ = [
    "DEFAULT_BAUD",
    "LinkError",
    "PortError",
    "LinkTimeout",
    "DeviceError",
    "MismatchError",
    "SerialTransport",
    "SimulatedTransport",
    "AmaranthTransport",
    "LinkClient",
    "infer",
    "infer_programs",
    "programs_design_hash",
]

DEFAULT_BAUD = 115200


class LinkError(RuntimeError):
    """Any failure of the host link; the message is one line."""


class PortError(LinkError):
    """The serial port is missing, busy or unreadable (or pyserial is not installed)."""


class LinkTimeout(LinkError):
    """The device did not answer in time."""


class DeviceError(LinkError):
    """The device answered with a NAK.

    Attributes
    ----------
    code : Error or int
        The error code.
    command : int
        The rejected request's command byte.
    """

    def __init__(self, code, command, core=None):
        self.code, self.command, self.core = code, command, core
        name = _cmd_name(command)
        text = ERROR_TEXT.get(code, f"error code {int(code)}")
        super().__init__(f"device rejected {name}{'' if core is None else f' for core {core}'}: {text}")


def _cmd_name(command: int) -> str:
    base = command & ~CORE_FLAG
    if base in Cmd._value2member_map_:
        return Cmd(base).name
    return f"0x{command:02x}"


class MismatchError(LinkError):
    """The device holds another design (config or weights) than the host expects."""


# ----------------------------------------------------------------------------- transports


class SerialTransport:
    """A serial port through pyserial (8N1)."""

    def __init__(self, port: str, baud: int = DEFAULT_BAUD):
        try:
            import serial
        except ImportError:
            raise PortError("pyserial is not installed: pip install 'rnnaccel[boards]'") from None
        self._serial_mod = serial
        self.port, self.baud = str(port), baud
        try:
            self._ser = serial.Serial(
                self.port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=1.0, write_timeout=None
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"cannot open serial port {self.port!r}: {_one_line(exc)}") from None

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except (self._serial_mod.SerialException, OSError) as exc:
            raise PortError(f"serial port {self.port!r}: {_one_line(exc)}") from None

    def write(self, data: bytes) -> None:
        self._guard(self._ser.write, bytes(data))
        self._guard(self._ser.flush)

    def read(self, n: int, timeout: float) -> bytes:
        if self._ser.timeout != timeout:
            self._ser.timeout = timeout
        return bytes(self._guard(self._ser.read, n))

    def reset_input_buffer(self) -> None:
        self._guard(self._ser.reset_input_buffer)

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        self._ser.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class SimulatedTransport:
    """Byte queues and link timing shared by transports into a simulated device.

    ``byte_cycles`` is a byte's time on the line in clock cycles; the device
    answers within a few passes over its ``buffer_bytes`` buffer (plus the
    bytes' time on the line, which the driver adds from :attr:`baud`), and
    forgets a truncated frame after ``timeout_cycles``. Subclasses move
    ``_tx`` into the device, append what it sends to ``_rx`` and implement
    :meth:`_wait_for`.
    """

    def __init__(self, clk_freq: float, byte_cycles: int, buffer_bytes: int, timeout_cycles: int):
        self.clk_freq = clk_freq
        self.period = 1.0 / clk_freq
        self.byte_cycles = byte_cycles
        self.baud = clk_freq * 10 / byte_cycles
        self.default_timeout = (4 * buffer_bytes + 2000) * self.period
        self.resync_time = 2 * timeout_cycles * self.period
        self._tx: deque[int] = deque()
        self._rx = bytearray()

    def _wait_for(self, n: int, timeout: float) -> None:
        """Let simulated time pass until ``n`` bytes arrived or ``timeout`` seconds passed."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        self._tx.extend(bytes(data))

    def read(self, n: int, timeout: float) -> bytes:
        self._wait_for(n, timeout)
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def reset_input_buffer(self) -> None:
        self._rx.clear()


class AmaranthTransport(SimulatedTransport):
    """The host link gateware in the Amaranth simulator, as a byte transport.

    Parameters
    ----------
    dut : HostLink or FrameEngine
        A :class:`~rnnaccel.hw.hostlink.HostLink` is driven through its UART
        pins, bit by bit (the real receiver and transmitter); a
        :class:`~rnnaccel.hw.hostlink.FrameEngine` byte by byte through its
        streams (fast: one byte per cycle).
    vcd : str, optional
        Write a waveform file (call :meth:`close` to finish it).

    Time is simulated: ``read(n, timeout)`` advances the simulation until
    ``n`` bytes arrived or ``timeout`` simulated seconds passed.
    """

    def __init__(self, dut, *, vcd: str | None = None):
        from amaranth.sim import Simulator

        from ..hw.hostlink import FrameEngine, HostLink

        if isinstance(dut, HostLink):
            self._pins = True
            self.divisor = dut.divisor
        elif isinstance(dut, FrameEngine):
            self._pins = False
            self.divisor = 1
        else:
            raise TypeError(f"dut must be a HostLink or a FrameEngine, not {dut!r}")
        info = dut.info
        self.dut = dut
        # a byte on the line: 10 bits (+1 cycle of the transmitter) with pins, one cycle without
        super().__init__(
            info.clk_freq or 1_000_000,
            10 * self.divisor + 1 if self._pins else 1,
            info.buffer_bytes,
            info.timeout_cycles,
        )
        self._now = 0.0
        self._sim = Simulator(dut)
        self._sim.add_clock(self.period)
        if self._pins:
            self._sim.add_testbench(self._drive_pin, background=True)
            self._sim.add_testbench(self._watch_pin, background=True)
        else:
            self._sim.add_testbench(self._streams, background=True)
        self._vcd = None
        if vcd:
            self._vcd = self._sim.write_vcd(vcd)
            self._vcd.__enter__()

    # ---------------------------------------------------------------- simulated line
    @staticmethod
    async def _ticks(ctx, n):
        for _ in range(n):
            await ctx.tick()

    async def _drive_pin(self, ctx):
        rx, d = self.dut.rx, self.divisor
        ctx.set(rx, 1)
        while True:
            if not self._tx:
                await self._ticks(ctx, d)
                continue
            byte = self._tx.popleft()
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                ctx.set(rx, bit)
                await self._ticks(ctx, d)

    async def _watch_pin(self, ctx):
        tx, d = self.dut.tx, self.divisor
        while True:
            await ctx.negedge(tx)
            await self._ticks(ctx, max(1, d // 2))  # middle of the start bit
            if ctx.get(tx):
                continue
            byte = 0
            for i in range(8):
                await self._ticks(ctx, d)
                byte |= ctx.get(tx) << i
            await self._ticks(ctx, d)
            if ctx.get(tx):  # stop bit
                self._rx.append(byte)

    async def _streams(self, ctx):
        i_rx, o_tx = self.dut.i_rx, self.dut.o_tx
        ctx.set(o_tx.ready, 1)
        while True:
            offered = bool(self._tx)  # bytes written while the simulation is paused wait for the next cycle
            ctx.set(i_rx.valid, offered)
            if offered:
                ctx.set(i_rx.payload, self._tx[0])
            _, _, in_ready, out_valid, out_byte = await ctx.tick().sample(i_rx.ready, o_tx.valid, o_tx.payload)
            if offered and in_ready:
                self._tx.popleft()
            if out_valid:
                self._rx.append(out_byte)

    def _advance(self, seconds: float) -> None:
        self._now += seconds
        self._sim.run_until(self._now)

    # ---------------------------------------------------------------- transport interface
    @property
    def cycles(self) -> int:
        """Simulated clock cycles so far."""
        return int(round(self._now / self.period))

    def _wait_for(self, n: int, timeout: float) -> None:
        deadline = self._now + timeout
        chunk = max(8, self.byte_cycles) * self.period
        while len(self._rx) < n and self._now < deadline:
            self._advance(min(chunk, max(deadline - self._now, self.period)))

    def pause(self, seconds: float) -> None:
        """Let the simulation run ``seconds`` with nothing more sent (bytes already queued still go out)."""
        self._advance(seconds)

    def run_cycles(self, cycles: int) -> None:
        self._advance(cycles * self.period)

    def close(self) -> None:
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None


# ----------------------------------------------------------------------------- the driver


class _NoResponse(Exception):
    def __init__(self, partial: bool):
        self.partial = partial


class _Corrupt(Exception):
    pass


class LinkClient:
    """An accelerator behind the host link.

    Parameters
    ----------
    port_or_transport : str, os.PathLike or transport
        A serial port name, or a transport object (see the module docstring).
    cfg : Config or list of Config, optional
        The model's config. When given, the device's config hash must match
        (:class:`MismatchError`); :meth:`set_state` and :meth:`load_weights`
        need it. A ``layers`` config of several cores is the whole stack; a
        list gives a ``programs`` design's configs, one per core (each core's
        config hash must match).
    baud : int
        Serial bit rate (ignored by transports that know their own).
    timeout : float, optional
        Seconds to wait for a response beyond the time its bytes take on the
        line (default 1 s, or the transport's ``default_timeout``).
    retries : int
        Resends after a timeout or a NAK for a bad CRC or a truncated frame
        (never after part of a RUN response arrived).
    hardware : Config, optional
        The design's config when the device was built for another one with run-time dimensions
        (``max_*`` fields, issue 12): the device's hash must be that config's, ``cfg`` (one core) must fit
        it (:func:`rnnaccel.layout.runtime.model_on_design`, :class:`MismatchError` otherwise), and opening
        the link loads the model's layout (``SET_PARAM`` records in WRITE_STATE frames).

    Raises
    ------
    PortError, LinkTimeout, MismatchError
        On opening: no port, no answer, another design.
    """

    def __init__(
        self,
        port_or_transport,
        cfg: Config | list[Config] | None = None,
        baud: int = DEFAULT_BAUD,
        *,
        timeout: float | None = None,
        retries: int = 2,
        hardware: Config | None = None,
    ):
        device_cfg = cfg
        if hardware is not None:
            from ..layout.runtime import DoesNotFit, model_on_design

            if not isinstance(cfg, Config) or cfg.cores != 1:
                raise TypeError("hardware= runs one one-core model: give its Config as cfg")
            try:
                cfg = model_on_design(cfg, hardware)
            except DoesNotFit as exc:
                raise MismatchError(f"the model does not fit the device's design: {exc}") from None
            device_cfg = hardware
        cfgs = None
        if isinstance(cfg, (list, tuple)):
            if not cfg or not all(isinstance(c, Config) for c in cfg):
                raise TypeError(f"cfg must be a Config, a list of Configs (one per core) or None, not {cfg!r}")
            from ..interface.multicore import core_models

            cfgs = [c for c, _ in core_models([(c, None) for c in cfg])]
            cfg = None
        elif cfg is not None and not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, a list of Configs (one per core) or None, not {cfg!r}")
        elif cfg is not None and cfg.cores > 1:
            from ..interface.multicore import core_models, stack_models

            if cfg.core_mode in ("layers", "helpers"):
                cfgs = [c for c, _ in stack_models(cfg, None)]
            else:  # the same model on every core: checked core by core
                cfgs = [c for c, _ in core_models([(cfg, None)] * cfg.cores)]
                cfg = None
        elif cfg is not None:
            cfgs = [cfg]
        if isinstance(port_or_transport, (str, os.PathLike)):
            self._transport = SerialTransport(os.fspath(port_or_transport), baud)
            self._owns = True
        else:
            for method in ("write", "read", "reset_input_buffer", "pause"):
                if not callable(getattr(port_or_transport, method, None)):
                    raise TypeError(f"transport {port_or_transport!r} has no {method}() method")
            self._transport = port_or_transport
            self._owns = False
        self.cfg = cfg
        self.core_cfgs = cfgs  #: each core's one-core config (None when no config was given)
        self._layout = LinkLayout(cfg) if cfg is not None and cfg.cores == 1 else None
        self._baud = float(getattr(self._transport, "baud", baud))
        self._timeout = float(timeout if timeout is not None else getattr(self._transport, "default_timeout", 1.0))
        self._resync = float(getattr(self._transport, "resync_time", 0.1))
        self._retries = retries
        self._info: Info | None = None
        try:
            info = self.info()
            if cfg is not None and info.config_hash != device_cfg.hash:
                raise MismatchError(
                    f"the device runs config {info.config_hash}, the "
                    f"{'design' if hardware is not None else 'model'}'s config is {device_cfg.hash} "
                    f"(input {info.input_size}, hidden {info.hidden_size} on the device)"
                )
            if cfg is not None and cfg.runtime_dims:  # the model's own layout into the design's registers
                from ..interface.session import param_commands

                self.write_commands(param_commands(cfg))
            if cfg is not None and cfg.cores > 1 and (info.mode, info.n_cores) != (cfg.core_mode, cfg.cores):
                raise MismatchError(
                    f"the device is a {info.mode} design of {info.n_cores} cores, "
                    f"the model {cfg.core_mode} of {cfg.cores}"
                )
            if self.cfg is None and cfgs is not None:
                have = [c.config_hash for c in info.core_infos]
                want = [c.hash for c in cfgs]
                if have != want:
                    raise MismatchError(
                        f"the device's cores run configs {', '.join(have)}, the models' are {', '.join(want)}"
                    )
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- plumbing
    def close(self) -> None:
        if self._owns:
            self._transport.close()
            self._owns = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def transport(self):
        return self._transport

    def _line_time(self, nbytes: int) -> float:
        return nbytes * 10.0 / self._baud * 1.5

    def resync(self) -> None:
        """Keep the line quiet longer than the device's inter-byte timeout, then drop stale input."""
        self._transport.pause(self._resync)
        self._transport.reset_input_buffer()

    def _read_exact(self, n: int, extra: float = 0.0) -> bytes:
        out = bytearray()
        while len(out) < n:
            want = n - len(out)
            got = self._transport.read(want, self._timeout + extra + self._line_time(want))
            if not got:
                raise _NoResponse(partial=True)
            out += got
            extra = 0.0
        return bytes(out)

    def _receive(self, cmd: int, first_wait: float) -> Frame:
        """The response to ``cmd``: skips bytes before SYNC and NAKs of other requests."""
        wait = first_wait
        while True:
            b = self._transport.read(1, self._timeout + wait)
            if not b:
                raise _NoResponse(partial=False)
            wait = 0.0
            if b[0] != SYNC:
                continue
            head = self._read_exact(3)
            rcmd, n = head[0], head[1] | head[2] << 8
            if rcmd not in (cmd | ACK_FLAG, NAK):
                continue
            body = self._read_exact(n + 2)
            if crc16(head + body) != 0:
                raise _Corrupt()
            frame = Frame(rcmd, body[:n])
            if frame.is_nak and frame.request != cmd:
                continue  # the answer to earlier junk on the line
            return frame

    def _exchange(self, cmd: int, payload: bytes = b"", *, idempotent: bool = True, core: int | None = None) -> bytes:
        """One request and its answer; ``core``: an addressed frame (``cmd | CORE_FLAG``, the core byte first)."""
        if core is None:
            frame = encode_frame(cmd, payload)
        else:
            frame = encode_addressed(cmd, core, payload)
            cmd = cmd | CORE_FLAG
        name = _cmd_name(cmd) + ("" if core is None else f" (core {core})")
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            self._transport.reset_input_buffer()
            self._transport.write(frame)
            try:
                resp = self._receive(cmd, self._line_time(len(frame)))
            except _NoResponse as exc:
                if last or (exc.partial and not idempotent):
                    raise LinkTimeout(
                        f"no {'complete ' if exc.partial else ''}answer to {name} from the device"
                        f"{'' if exc.partial else ' (is the board programmed, the port and baud right?)'}"
                    ) from None
                self.resync()
                continue
            except _Corrupt:
                if last or not idempotent:
                    raise LinkError(f"corrupted response to {name} (bad CRC)") from None
                self.resync()
                continue
            if resp.is_nak:
                if resp.error in (Error.CRC, Error.TIMEOUT) and not last:
                    self.resync()
                    continue
                raise DeviceError(resp.error, cmd, core)
            return resp.payload
        raise AssertionError("unreachable")

    def _need_cfg(self, what: str, core: int | None = None) -> LinkLayout:
        """The layout of the frames' target: the one core, or core ``core`` (default 0) of a multi-core design."""
        if self.core_cfgs is None:
            raise LinkError(f"{what} needs the model's config: LinkClient(port, cfg=...)")
        if core is None and self._layout is not None:
            return self._layout
        i = 0 if core is None or (core == ALL_CORES and self._stack) else int(core)  # helpers: one layout
        if not 0 <= i < len(self.core_cfgs):
            raise ValueError(f"{what}: core {core!r}, the design has cores 0..{len(self.core_cfgs) - 1}")
        return LinkLayout(self.core_cfgs[i])

    @property
    def _stack(self) -> bool:
        """One stack over the cores (``layers`` or ``helpers``): state and weights go core by core."""
        return self.device.mode in ("layers", "helpers")

    @property
    def n_cores(self) -> int:
        """The device's cores (INFO)."""
        return self.device.n_cores

    # ---------------------------------------------------------------- commands
    def ping(self, data: bytes = b"") -> bytes:
        """Echo ``data`` through the device (a link check); returns the echo."""
        echo = self._exchange(Cmd.PING, bytes(data))
        if echo != bytes(data):
            raise LinkError(f"PING echo differs ({len(echo)} bytes back for {len(data)})")
        return echo

    def info(self) -> Info:
        """The device's identity and sizes (:class:`~rnnaccel.interface.protocol.Info`)."""
        info = decode_info(self._exchange(Cmd.INFO))
        if info.version != protocol.VERSION:
            raise MismatchError(
                f"device speaks host-link protocol version {info.version}, this driver {protocol.VERSION}"
            )
        self._info = info
        if info.timeout_seconds:
            self._resync = max(self._resync, 2 * info.timeout_seconds)
        return info

    @property
    def device(self) -> Info:
        """The INFO read when the link was opened."""
        assert self._info is not None
        return self._info

    def check_weights(self, weights) -> None:
        """For a design with weights in ROM: :class:`MismatchError` unless they are ``weights`` (a list, one
        per core, for a ``programs`` design)."""
        from ..flow.rtl import design_hash

        cfg = self.cfg
        if cfg is None and self.core_cfgs is not None:  # a programs design: weights per core
            want = programs_design_hash(list(zip(self.core_cfgs, weights)))
        elif cfg is None:
            raise LinkError("check_weights needs the model's config: LinkClient(port, cfg=...)")
        else:
            want = design_hash(cfg, weights)
        if self.device.design_hash != want:
            raise MismatchError(
                f"the device holds other weights (design {self.device.design_hash}, the model's is {want})"
            )

    def reset(self, core: int | None = None) -> None:
        """Zero the recurrent state (of core ``core``; by default the one core, core 0 of a ``programs``
        design, every core of a ``layers`` design; :data:`~rnnaccel.interface.protocol.ALL_CORES`: every core)."""
        self._exchange(Cmd.RESET_STATE, core=core)

    def clear_counters(self, core: int | None = None) -> None:
        """Zero the cycle, wait and step counters and the accelerator's error flag (of ``core``, as :meth:`reset`)."""
        self._exchange(Cmd.CLEAR_COUNTERS, core=core)

    def counters(self, core: int | None = None) -> dict:
        """Cycles, wait cycles, steps, status bits and the count of rejected frames: core ``core``'s, or by
        default the target's (a ``layers`` design's: cycles with some core busy, the first core's wait
        cycles, the last core's steps)."""
        return decode_counters(self._exchange(Cmd.READ_COUNTERS, core=core)).as_dict()

    def write_commands(self, cmds, core: int | None = None) -> None:
        """Forward (op, sel, addr, data) WRITE_VEC / WRITE_C commands (WRITE_STATE frames) to ``core``."""
        lay = self._need_cfg("write_commands", core)
        per = self.device.buffer_bytes // lay.state_record_bytes
        cmds = list(cmds)
        for i in range(0, len(cmds), per):
            self._exchange(Cmd.WRITE_STATE, encode_state_records(lay, cmds[i : i + per]), core=core)

    def set_state(self, h=None, c=None, core: int | None = None) -> None:
        """Reset, then write an initial state: raw integers of shape (layers, hidden); c may be None.

        ``layers`` design without ``core``: the whole stack's state, each core's layers written to it;
        ``helpers``: the whole state, one set of records to every core at once (``ALL_CORES``).
        """
        from ..interface.session import state_commands

        if core is None and self.core_cfgs is not None and self._stack:
            from ..interface.multicore import layer_state_commands

            cmds = layer_state_commands(self.cfg, h, c)
            self.reset()
            for target in dict.fromkeys(cmd[0] for cmd in cmds):  # each target core (or BROADCAST), in order
                self.write_commands([cmd[1:] for cmd in cmds if cmd[0] == target], core=target)
            return
        lay = self._need_cfg("set_state", core)
        self.reset(core)
        self.write_commands(state_commands(lay.cfg, h, c), core)

    def load_weights(self, weights, core: int | None = None) -> None:
        """Load every weight bank and the bias memory (designs without weights in ROM) of ``core``; a
        ``layers`` design without ``core``: the stack's weights, each core's layers to it (``helpers``: each
        core's row slice)."""
        from ..interface.session import weight_commands
        from ..numeric.model import check_weights

        if core is None and self.core_cfgs is not None and self._stack:
            from ..interface.multicore import stack_models

            check_weights(self.cfg, weights)
            for i, (cfg_i, w_i) in enumerate(stack_models(self.cfg, weights)):
                if not cfg_i.weights_in_rom:
                    self.load_weights(w_i, core=i)
            return
        lay = self._need_cfg("load_weights", core)
        check_weights(lay.cfg, weights)
        for payload in weight_bursts(lay, weight_commands(lay.cfg, weights), self.device.buffer_bytes):
            self._exchange(Cmd.WRITE_WEIGHTS, payload, core=core)

    def _q_state(self, core: int | None = None) -> QFormat:
        if self.cfg is not None:
            return self.cfg.q_state
        if core is not None and 0 <= core < len(self.device.core_infos):
            ci = self.device.core_infos[core]
            return QFormat(ci.state_width, ci.state_frac)
        return QFormat(self.device.state_width, self.device.state_frac)

    def _run_geometry(self, core: int | None):
        """(input size, hidden size, word bytes, most steps per frame) of a RUN to ``core``."""
        dev = self.device
        if core is None and self.cfg is not None and self.cfg.runtime_dims:  # the loaded model's sizes
            lay = self._layout
            return self.cfg.input_size, self.cfg.hidden_size, lay.word_bytes, lay.max_steps(dev.buffer_bytes)
        if core is None or dev.mode != "programs" or not 0 <= core < dev.n_cores:
            return dev.input_size, dev.hidden_size, dev.word_bytes, dev.max_steps
        ci = dev.core_infos[core]
        return ci.input_size, ci.hidden_size, ci.word_bytes, ci.max_steps

    def run(self, x, core: int | None = None) -> np.ndarray:
        """Stream raw q_state inputs (T, input) through the accelerator; returns raw (T, hidden).

        State carries over from the previous call (as in the golden model);
        long sequences go out in several RUN frames. ``core``: a ``programs`` design's core (default 0);
        a ``layers`` design runs the whole pipeline whatever it names.
        """
        n_in, hidden, word_bytes, max_steps = self._run_geometry(core)
        x = np.asarray(x)
        if x.dtype.kind not in "iu":
            raise TypeError(f"run takes raw q_state integers, not {x.dtype} (use run_float for float inputs)")
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(f"inputs must have shape (T, {n_in}), not {x.shape}")
        q = self._q_state(core)
        if x.size and (x.min() < q.min_raw or x.max() > q.max_raw):
            raise ValueError(f"raw inputs must lie in [{q.min_raw}, {q.max_raw}] ({q})")
        outs = []
        step = max(1, max_steps)
        for i in range(0, x.shape[0], step):
            chunk = x[i : i + step]
            resp = self._exchange(Cmd.RUN, encode_run(chunk, word_bytes), idempotent=False, core=core)
            outs.append(decode_run(resp, chunk.shape[0], hidden, word_bytes))
        return np.concatenate(outs) if outs else np.zeros((0, hidden), dtype=np.int64)

    def run_float(self, x, core: int | None = None) -> np.ndarray:
        """:meth:`run` for float inputs: quantized to q_state, results dequantized (float64)."""
        q = self._q_state(core)
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs contain NaN or infinite values")
        return to_float(self.run(quantize(x, q), core), q)

    # ---------------------------------------------------------------- programs sessions
    def run_cores(self, xs: dict) -> dict:
        """Raw inputs ``{core: (T_i, input_i)}`` through their cores (one after the other, over the link);
        returns ``{core: (T_i, hidden_i)}``, as :func:`~rnnaccel.interface.multicore.programs_golden`."""
        return {int(core): self.run(np.asarray(x), core=int(core)) for core, x in xs.items()}

    def reset_core(self, core: int) -> None:
        """The programs-session operation ``("reset", core)``."""
        self.reset(core=int(core))

    def state_core(self, core: int, h, c) -> None:
        """The programs-session operation ``("state", core, h, c)``."""
        self.set_state(h, c, core=int(core))

    def programs_session(self, ops) -> list[dict]:
        """Execute a programs session (:func:`rnnaccel.interface.multicore.execute_programs`): one
        ``{core: (T, H)}`` per ``run``, what :func:`~rnnaccel.interface.multicore.programs_golden` returns."""
        from ..interface.multicore import execute_programs

        return execute_programs(ops, self, self.n_cores)

    def state(self, h, c) -> None:
        """The session operation ``("state", h, c)``: :meth:`set_state`."""
        self.set_state(h, c)

    def session(self, ops) -> list[np.ndarray]:
        """Execute a host session (:func:`rnnaccel.interface.session.execute`): one raw (T, H) array per ``run``."""
        return execute(ops, self)


def infer(
    model_dir, port, x, *, baud: int = DEFAULT_BAUD, raw: bool = False, hardware: Config | None = None
) -> np.ndarray:
    """Run float inputs through the board: what ``rnnaccel infer DIR --port P --inputs X.npy`` does.

    ``x`` is (T, input) or (N, T, input) float; every sequence starts from
    the zero state. Checks that the board runs the model's config (and, with
    weights in ROM, its weights), loads the weights when they are not in ROM,
    and returns the last layer's hidden states, dequantized float32 (raw
    q_state integers with ``raw=True``), like ``rnnaccel run``. ``port`` may
    also be a transport object. ``hardware``: the config the board's design was generated for, when it
    has run-time dimensions and the model is another (smaller) one (:class:`LinkClient`).

    Raises
    ------
    PortError
        The port is missing or unreadable (one line).
    LinkError
        Any other link failure (no answer, other design, NAK).
    rnnaccel.numeric.model.ModelError, ValueError
        A bad model directory or inputs.
    """
    from ..numeric.model import load_model

    cfg, weights = load_model(model_dir)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (2, 3) or x.shape[-1] != cfg.input_size:
        raise ValueError(
            f"inputs of shape {x.shape}; the model needs (T, {cfg.input_size}) or (N, T, {cfg.input_size})"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs contain NaN or infinite values")
    single = x.ndim == 2
    xq = quantize(x[None] if single else x, cfg.q_state)
    with LinkClient(port, cfg, baud, hardware=hardware) as dev:
        if dev.cfg.weights_in_rom:
            dev.check_weights(weights)
        else:
            dev.load_weights(weights)
        ys = []
        for seq in xq:
            dev.reset()
            ys.append(dev.run(seq))
    y = np.stack(ys)
    y = y[0] if single else y
    return y.astype(np.int64) if raw else to_float(y, cfg.q_state).astype(np.float32)


def infer_programs(model_dirs, port, xs, *, baud: int = DEFAULT_BAUD, raw: bool = False) -> list[np.ndarray]:
    """:func:`infer` on a multi-programming board: model ``model_dirs[i]`` on core ``i``, inputs ``xs[i]``
    ((T, input_i) or (N, T, input_i) float each); what ``rnnaccel infer DIR0 DIR1 ... --port P --inputs X0 X1
    ...`` does. The device's cores must run the models' configs (and, with weights in ROM, their weights:
    checked for the design as a whole); weights not in ROM are loaded core by core. Every sequence starts from
    the zero state of its core; returns one array per model, like :func:`infer`."""
    from ..numeric.model import load_model

    if len(model_dirs) != len(xs):
        raise ValueError(f"{len(model_dirs)} models but {len(xs)} input sets: give one input set per model")
    models = [load_model(d) for d in model_dirs]
    batches = []
    for i, ((cfg, _), x) in enumerate(zip(models, xs)):
        if cfg.cores != 1:
            raise ValueError(f"model {i}: cores = {cfg.cores}; a programs board runs one-core models, one per core")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim not in (2, 3) or x.shape[-1] != cfg.input_size:
            raise ValueError(
                f"inputs {i} of shape {x.shape}; model {i} needs (T, {cfg.input_size}) or (N, T, {cfg.input_size})"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError(f"inputs {i} contain NaN or infinite values")
        batches.append((x.ndim == 2, quantize(x[None] if x.ndim == 2 else x, cfg.q_state)))
    outs = []
    with LinkClient(port, [c for c, _ in models], baud) as dev:
        if dev.device.mode != "programs" or dev.n_cores != len(models):
            raise MismatchError(
                f"the device is a {dev.device.mode} design of {dev.n_cores} cores, not {len(models)} programs"
            )
        if any(c.weights_in_rom for c, _ in models):  # the ROM cores' weights, through the design hash
            dev.check_weights([w for _, w in models])
        for core, (cfg, w) in enumerate(models):
            if not cfg.weights_in_rom:
                dev.load_weights(w, core=core)
        for core, ((cfg, _), (single, xq)) in enumerate(zip(models, batches)):
            ys = []
            for seq in xq:
                dev.reset(core)
                ys.append(dev.run(seq, core=core))
            y = np.stack(ys)
            y = y[0] if single else y
            outs.append(y.astype(np.int64) if raw else to_float(y, cfg.q_state).astype(np.float32))
    return outs
