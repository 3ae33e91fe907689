"""`hf-promptseg` command line. Each feature module contributes its sub-command through a `add_cli_parser` hook."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# "module:function" hooks; each receives the sub-parsers object of its group and adds one command with
# `set_defaults(func=...)`. The function gets the parsed namespace and returns an exit code.
CONVERT_COMMANDS: list[str] = [
    "hf_promptseg.models.sam.convert_sam_checkpoint:add_cli_parser",
    "hf_promptseg.models.sam_adapter.convert_sam_adapter_checkpoint:add_cli_parser",
    "hf_promptseg.models.dinov.convert_dinov_checkpoint:add_cli_parser",
]
TOP_LEVEL_COMMANDS: list[str] = [
    "hf_promptseg.hub:add_cli_parser",
    "hf_promptseg.demo:add_cli_parser",
    "hf_promptseg.train:add_cli_parser",
    "hf_promptseg.evaluation:add_cli_parser",
]


def _apply(hooks: Sequence[str], subparsers: argparse._SubParsersAction) -> None:
    for hook in hooks:
        module_name, function_name = hook.split(":")
        getattr(importlib.import_module(module_name), function_name)(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-promptseg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    convert = commands.add_parser("convert", help="convert an original checkpoint to a Hugging Face directory")
    _apply(CONVERT_COMMANDS, convert.add_subparsers(dest="family", required=True, metavar="FAMILY"))
    _apply(TOP_LEVEL_COMMANDS, commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra_args = parser.parse_known_args(argv)
    if extra_args and not getattr(args, "accepts_extra_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra_args)}")
    args.extra_args = extra_args
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        print(f"hf-promptseg {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
