"""`hf-promptseg segment`: masks for point or box prompts on one's own images, as PNG and RLE.

    hf-promptseg segment photo.png --points 120,80 300,200,0 --out seg/      # x,y[,label] per object
    hf-promptseg segment photo.png --boxes 10,10,200,150 --multimask --out seg/
    hf-promptseg segment photos/ --prompts prompts.json --out seg/          # {"a.png": [{"box": [...]}], ...}
    hf-promptseg segment big.tif --points 4000,2500 --window 1024 --out seg/  # native resolution around the prompt

Library: `hf_promptseg.corpus.prompting.segment_images`.
"""

from __future__ import annotations

import argparse
import json
import sys

from hf_promptseg.commands.image_sources import add_image_source_arguments
from hf_promptseg.corpus.prompting import parse_boxes, parse_points, read_prompts, segment_images


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("segment", help="prompted segmentation (points / boxes) of images")
    add_image_source_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder: <image>/object_<k>.png and results.json")
    parser.add_argument("--points", nargs="+", metavar="X,Y[,LABEL]", help="one single-point object each")
    parser.add_argument("--boxes", nargs="+", metavar="X1,Y1,X2,Y2", help="one box object each")
    parser.add_argument("--prompts", help="JSON file: prompts per image id (or a list for every image)")
    parser.add_argument("--multimask", action="store_true", help="keep SAM's 3 candidate masks per object")
    parser.add_argument("--window", type=int, help="segment each prompt in a window of this side (large images)")
    parser.add_argument("--embeddings", help="safetensors file from `hf-promptseg embed`")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.prompts and (args.points or args.boxes):
        raise ValueError("give `--prompts` or `--points`/`--boxes`, not both")
    if args.prompts:
        prompts = read_prompts(args.prompts)
    elif args.points or args.boxes:
        prompts = {"*": parse_points(args.points or []) + parse_boxes(args.boxes or [])}
    else:
        raise ValueError("nothing to segment: give `--points`, `--boxes` or `--prompts`")
    if args.window is not None and args.window < 16:
        raise ValueError(f"`--window` must be at least 16 pixels, got {args.window}")
    summary = segment_images(
        args.input, args.out, prompts, model=args.model, multimask=args.multimask, window=args.window,
        embeddings=args.embeddings, image_column=args.image_column, split=args.split,
    )  # fmt: skip
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}))
    for error in summary["errors"]:
        print(f"skipped {error['image_id']}: {error['error']}", file=sys.stderr)
    return 1 if summary["errors"] and not summary["num_images"] else 0
