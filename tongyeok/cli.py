"""The ``tongyeok`` command: one entry point, one subcommand per job.

Each command group lives in ``tongyeok/commands/`` and imports its heavy dependencies (torch,
onnxruntime) only when it runs, so that ``tongyeok --help`` is instant and the serving commands
never load torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from contract.version import __version__
from tongyeok.commands import bench, export, keys, serve, train, translate

DESCRIPTION = "Tongyeok (통역): train, evaluate and serve Transformer machine translation."
GROUPS = (train, translate, export, bench, serve, keys)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tongyeok", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"tongyeok {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as exc:  # our typed errors carry user-facing messages
        print(f"tongyeok {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
