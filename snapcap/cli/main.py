"""The ``snapcap`` command (also ``python -m snapcap``): the parser and the entry point."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Sequence

from snapcap import __version__
from snapcap.cli import caption, capture, compare, dataset, doctor, reconstruct, simulate, train
from snapcap.cli import eval as evaluate
from snapcap.distributed import finish
from snapcap.errors import SnapcapError

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS = (compare, simulate, dataset, reconstruct, train, caption, evaluate, capture, doctor)
"""The command modules, in ``--help`` order; each has ``add_parser(subparsers)``."""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, its choices read from the registries now."""
    parser = argparse.ArgumentParser(
        prog="snapcap", description="Video snapshot compressive imaging: simulate, reconstruct, caption."
    )
    parser.add_argument("--version", action="version", version=f"snapcap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a :class:`SnapcapError` is one line on stderr and exit status 2."""
    if hasattr(signal, "SIGXFSZ"):  # past a file-size limit (ulimit -f), a write fails with EFBIG instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        finish()  # under torchrun: the ranks leave together
        return code
    except SnapcapError as exc:
        print(f"snapcap {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused a read or write (full disk, file-size limit, permissions...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"snapcap {args.command}: error: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"snapcap {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
