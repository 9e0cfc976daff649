"""Host link: the accelerator behind a UART, driven by framed commands.

:class:`HostLink` is what goes on a board: UART pins in and out, LED-able
status, and inside it a :class:`FrameEngine` wrapping one
:func:`~rnnaccel.hw.accelerator.make_accelerator` accelerator. The engine is a generic
command/response machine (protocol: :mod:`rnnaccel.interface.protocol`,
``docs/hostlink.md``):

1. :class:`FrameReceiver` hunts for SYNC, reads command and length, stores
   the payload in a byte buffer and checks the CRC; an inter-byte timeout
   ends a truncated frame and the receiver hunts for SYNC again.
2. The engine checks the frame (CRC, command, length) and, for commands
   that carry records, *walks the payload twice*: a check pass that
   validates every field without touching the accelerator, then an execute
   pass that turns records into ``i_cmd`` commands and input words into
   ``i_x`` words. A rejected frame therefore changes nothing.
3. :class:`FrameTransmitter` sends the response (ACK with data, or NAK with
   an error code), taking its payload from a constant table (INFO), a
   snapshot of the counters, the buffer (PING echo) or, during RUN, straight
   from the accelerator's ``o_h`` stream, so outputs need no buffer.

Every frame gets exactly one response; bytes that arrive while the engine is
busy with a frame are not taken (the UART receiver drops them).

A config of several cores puts a :class:`~rnnaccel.hw.multicore.MultiCore` behind the engine; frames
whose command byte has ``CORE_FLAG`` (``0x40``) carry a core number first (*addressed frames*,
``docs/hostlink.md``), the others go to the design's default target.

Modules, each importing only those below it:

- :mod:`.top`: :class:`HostLink` (UART, LEDs, the engine);
- :mod:`.engine`: :class:`FrameEngine` and its FSM (decode, the two passes, the response);
- :mod:`.walker`: the payload walker and the accelerator's command port;
  :mod:`.response`: :class:`FrameTransmitter` and the response payload sources;
- :mod:`.framing`: :class:`FrameReceiver` and the reader that plays the buffered payload back;
- :mod:`.checks`: parameter checks.

The parts below the engine are emitted into the engine's own module (helpers, not
sub-components), so the hierarchy and the Verilog are those of the single module they
were split from.
"""

from .checks import UNKNOWN_DESIGN as UNKNOWN_DESIGN  # INFO's design hash when none is given, as before
from .engine import FrameEngine
from .framing import FRAME_LAYOUT, FrameReceiver
from .response import FrameTransmitter
from .top import HostLink

__all__ = ["FrameReceiver", "FrameTransmitter", "FrameEngine", "HostLink", "FRAME_LAYOUT"]
