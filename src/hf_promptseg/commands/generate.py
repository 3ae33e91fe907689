"""`hf-promptseg generate`: automatic masks for an image, a folder, a glob or a `datasets` dataset.

    hf-promptseg generate photos/ --out masks/                      # embedded demo SAM, COCO JSON + parquet
    hf-promptseg generate big.tif --model sam-dir --tile-size 1024 --tile-overlap 128 --out masks/
    hf-promptseg generate photos/ --out masks/ --num-processes 2    # torchrun, one shard per process

Library: `hf_promptseg.corpus.generation.generate_corpus` (resumable, per-image atomic results, sharding).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from hf_promptseg.commands.image_sources import add_image_source_arguments
from hf_promptseg.corpus.generation import generate_corpus
from hf_promptseg.corpus.tiling import validate_tiling

_FLAGS = (
    ("--points-per-side", "points_per_crop", int, "grid points per side (transformers' `points_per_crop`)"),
    ("--points-per-batch", "points_per_batch", int, "points decoded per model call"),
    ("--pred-iou-thresh", "pred_iou_thresh", float, "minimum predicted IoU (default 0.88; demo SAM 0.6)"),
    ("--stability-score-thresh", "stability_score_thresh", float, "minimum stability (0.95; demo SAM 0.85)"),
    ("--stability-score-offset", "stability_score_offset", float, "logit offset of the stability score"),
    ("--mask-threshold", "mask_threshold", float, "logit threshold of the masks"),
    ("--box-nms-thresh", "crops_nms_thresh", float, "box IoU of the NMS (transformers' `crops_nms_thresh`)"),
    ("--crops-n-layers", "crops_n_layers", int, "extra layers of zoomed-in crops"),
    ("--crop-overlap-ratio", "crop_overlap_ratio", float, "overlap of those crops"),
    ("--crop-n-points-downscale-factor", "crop_n_points_downscale_factor", int, "fewer points in deeper crops"),
    ("--batch-size", "batch_size", int, "point batches per model call"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="automatic mask generation over images (COCO JSON + parquet)")
    add_image_source_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder (rerunning it resumes)")
    parser.add_argument("--tile-size", type=int, help="run on tiles of this side (pixels) at native resolution")
    parser.add_argument("--tile-overlap", type=int, default=64, help="overlap of neighbouring tiles (pixels)")
    parser.add_argument("--overlays", action="store_true", help="also write PNG overlays")
    parser.add_argument("--embeddings", help="safetensors file from `hf-promptseg embed` (skips the encoder)")
    parser.add_argument("--num-processes", type=int, default=1, help="launch this many processes with torchrun")
    for flag, dest, kind, text in _FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, help=text, metavar="N" if kind is int else "X")
    parser.set_defaults(func=_run)


def _launch(args: argparse.Namespace) -> int:
    """Re-run this command under `torchrun` with `--num-processes` workers (CPU: `ACCELERATE_USE_CPU=1`)."""
    import torch

    argv = ["generate", *_rebuild(args)]
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               str(args.num_processes), "-m", "hf_promptseg", *argv]  # fmt: skip
    return subprocess.run(command, env=env, check=False).returncode


def _rebuild(args: argparse.Namespace) -> list[str]:
    argv = [args.input, "--out", args.out]
    for name in ("model", "image_column", "split", "tile_size", "embeddings"):
        if getattr(args, name) is not None:
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    argv += ["--tile-overlap", str(args.tile_overlap)] + (["--overlays"] if args.overlays else [])
    for flag, dest, _, _ in _FLAGS:
        if getattr(args, dest) is not None:
            argv += [flag, str(getattr(args, dest))]
    return argv


def _run(args: argparse.Namespace) -> int:
    if args.num_processes < 1:
        raise ValueError(f"`--num-processes` must be >= 1, got {args.num_processes}")
    if args.tile_size is not None:
        validate_tiling(args.tile_size, args.tile_overlap, prefix="--")
    if args.num_processes > 1 and "LOCAL_RANK" not in os.environ:
        return _launch(args)
    summary = generate_corpus(
        args.input,
        args.out,
        model=args.model,
        image_column=args.image_column,
        split=args.split,
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
        overlays=args.overlays,
        embeddings=args.embeddings,
        **{dest: getattr(args, dest) for _, dest, _, _ in _FLAGS},
    )
    if summary:  # the main process
        print(json.dumps({k: v for k, v in summary.items() if k != "errors"}))
        for error in summary["errors"]:
            print(f"skipped {error['image_id']}: {error['error']}", file=sys.stderr)
        if summary["errors"] and not summary["num_images"]:
            return 1
    return 0
