"""The ``leopard`` command line: one subcommand per step of the flow."""

from __future__ import annotations

import argparse
import sys

from leopard.hw.errors import LeopardError
from leopard.hw.files import all_or_nothing
from leopard.scripts import (
    compare_commands,
    demo,
    fpga_commands,
    golden_commands,
    lever_commands,
    model_commands,
    paths,
    rtl_commands,
    run_report,
    scale_commands,
    train_commands,
    verif_commands,
)


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(message: str) -> str:
    """``message`` on one printable line: line breaks and other control or separator characters (inside
    a path or a JSON key, say) shown escaped, ``\\n``, ``\\x1e``."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)


def build_parser() -> Parser:
    parser = Parser(
        prog="leopard",
        description="Learned runtime attention pruning: golden model, RTL, verification, training.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (golden_commands, rtl_commands, train_commands, model_commands, lever_commands,
                   fpga_commands, verif_commands, scale_commands, compare_commands, run_report, demo):
        module.register(commands)
    parser.set_defaults(command_line=main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command: its paths checked first, its output files written all together or not at all;
    user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        paths.check(args)
        with all_or_nothing():
            return args.run(args) or 0
    except LeopardError as error:
        print(f"leopard {args.command}: error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"leopard {args.command}: interrupted", file=sys.stderr)
        return 130
