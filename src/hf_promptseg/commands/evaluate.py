"""`hf-promptseg evaluate`: prompt-free validation metrics of a SAM (optionally with an adapter) on a dataset.

    hf-promptseg evaluate --model run/best/base --adapter run/best --data path/to/COD10K/test --output metrics.json

Prints a table and writes JSON. Metrics: `cod` (S/E/weighted-F/MAE), `ber` (shadow) or `polyp` (IoU/Dice).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hf_promptseg.training.evaluation import evaluate_segmentation


def format_table(metrics: dict[str, float]) -> str:
    width = max(len(name) for name in metrics)
    return "\n".join(f"{name:<{width}}  {value:.4f}" for name, value in metrics.items())


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="prompt-free validation metrics of a SAM / SAM-Adapter")
    parser.add_argument("--model", required=True, help="SAM dir or Hub id (the base model for --adapter), or 'demo'")
    parser.add_argument("--adapter", help="PEFT adapter dir or Hub id (SAM-Adapter or LoRA)")
    parser.add_argument("--data", required=True, help="COD-style folder, imagefolder, parquet, Hub id, synthetic:N")
    parser.add_argument("--metrics", default="cod", choices=["cod", "ber", "polyp"])
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--split", default="test", help="split of a Hub dataset")
    parser.add_argument("--output", type=Path, help="write the metrics as JSON here")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    metrics = evaluate_segmentation(
        args.model, args.data, args.adapter, args.metrics, args.image_size, args.batch_size, args.split
    )
    print(format_table(metrics))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(metrics, indent=2))
        print(f"wrote {args.output}")
    return 0
