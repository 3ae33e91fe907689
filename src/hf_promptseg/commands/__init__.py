"""The application layer: each `hf-promptseg` sub-command is a thin module over library code.

A command module defines `add_parser(subparsers)`, which adds its sub-parser with `set_defaults(func=...)`; the
function takes the parsed namespace and returns an exit code. Adding a command is adding its module and its name
here.
"""

COMMANDS: tuple[str, ...] = ("demo", "train", "evaluate", "push", "convert")
