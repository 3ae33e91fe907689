"""`hf-promptseg convert FAMILY CHECKPOINT OUT_DIR`: original checkpoints to Hugging Face directories.

Each family that ships a converter adds its sub-command (`ModelFamily.add_convert_command`).
"""

from __future__ import annotations

import argparse

from hf_promptseg.families import families


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert an original checkpoint to a Hugging Face directory")
    family_parsers = parser.add_subparsers(dest="family", required=True, metavar="FAMILY")
    for family in families():
        if family.add_convert_command is not None:
            family.add_convert_command(family_parsers)
