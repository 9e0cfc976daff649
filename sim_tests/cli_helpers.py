"""Running the rnnaccel command line inside a test, and checking its one-line errors."""

from __future__ import annotations

from rnnaccel import cli


def run_cli(argv, capsys):
    """``rnnaccel.cli.main(argv)`` with output captured: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str, *needles: str, case_sensitive: bool = True):
    """stderr is exactly one ``rnnaccel: error: ...`` line (no traceback) containing every needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("rnnaccel: error: "), err
    for n in needles:
        if case_sensitive:
            assert n in lines[0], (n, lines[0])
        else:
            assert n.lower() in lines[0].lower(), (n, lines[0])
    assert "Traceback" not in err
