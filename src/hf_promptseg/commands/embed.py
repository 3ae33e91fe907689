"""`hf-promptseg embed`: precompute SAM image embeddings of an image set for `generate` / `segment --embeddings`.

    hf-promptseg embed photos/ --out emb.safetensors [--model sam-dir]

Library: `hf_promptseg.corpus.embedding.embed_images`.
"""

from __future__ import annotations

import argparse
import json

from hf_promptseg.commands.image_sources import add_image_source_arguments
from hf_promptseg.corpus.embedding import embed_images


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("embed", help="precompute image embeddings into a safetensors file")
    add_image_source_arguments(parser)
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    summary = embed_images(args.input, args.out, args.model, args.image_column, args.split)
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}))
    return 1 if summary["errors"] and not summary["num_images"] else 0  # every image unreadable: as `segment`
