"""The image-source arguments that `generate`, `segment` and `embed` share (all read `corpus.inputs.list_images`)."""

from __future__ import annotations

import argparse


def add_image_source_arguments(parser: argparse.ArgumentParser) -> None:
    """`INPUT`, `--model`, `--image-column` and `--split`."""
    parser.add_argument("input", help="image file, folder, glob ('photos/*.jpg'), dataset dir/file or Hub dataset id")
    parser.add_argument("--model", help="SAM dir or Hub id (default: the embedded demo SAM)")
    parser.add_argument("--image-column", help="image column of a dataset input")
    parser.add_argument("--split", help="split of a dataset input (default: train, or its only split)")
