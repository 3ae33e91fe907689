"""`hf-promptseg evaluate`: validation metrics of a SAM (optionally with an adapter) or, with `--family dinov`, of
DINOv's in-context tasks on a dataset.

    hf-promptseg evaluate --model run/best/base --adapter run/best --data path/to/COD10K/test --output metrics.json
    hf-promptseg evaluate --family dinov --model run/final --data scenes:100:12345:64 --task both --output m.json

Prints a table and writes JSON. SAM metrics (prompt-free): `cod` (S/E/weighted-F/MAE), `ber` (shadow) or `polyp`
(IoU/Dice). DINOv (`models/dinov/evaluation_dinov.py`): cross-image referring mIoU and generic COCO mask AP /
semantic mIoU from a prompt bank, each beside its pasted-prompt baseline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FAMILIES = ("sam", "dinov")


def format_table(metrics: dict[str, float]) -> str:
    width = max(len(name) for name in metrics)
    return "\n".join(
        f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}"
        for name, value in metrics.items()
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="validation metrics of a SAM / SAM-Adapter or a DINOv")
    parser.add_argument("--family", choices=FAMILIES, default="sam", help="model family (default sam)")
    parser.add_argument(
        "--model", required=True, help="SAM dir or Hub id (the base model for --adapter), or 'demo'; DINOv dir, Hub "
        "id or 'random:<tiny|small|swin-t>'"
    )  # fmt: skip
    parser.add_argument("--adapter", help="PEFT adapter dir or Hub id (SAM-Adapter or LoRA)")
    parser.add_argument(
        "--data", required=True, help="SAM: COD-style folder, imagefolder, parquet, Hub id, synthetic:N; DINOv: "
        "scenes:<count>[:seed[:size]], a COCO instances .json (with --image-dir), parquet or Hub id"
    )  # fmt: skip
    parser.add_argument("--metrics", choices=["cod", "ber", "polyp"], help="SAM metric set (default cod)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--split", default="test", help="split of a Hub dataset")
    parser.add_argument("--output", type=Path, help="write the metrics as JSON here")
    dinov = parser.add_argument_group("DINOv (--family dinov)")
    dinov.add_argument("--task", choices=("referring", "generic", "both"), default="both")
    dinov.add_argument("--image-dir", help="image folder of a COCO instances .json")
    dinov.add_argument("--bank-images", type=int, default=4, help="generic: the first N images give the prompt bank")
    dinov.add_argument("--num-examples", type=int, default=16, help="generic: bank tokens averaged per category")
    dinov.add_argument(
        "--reference-filter", action="store_true", help="referring: pick among the proposals the reference's filter "
        "keeps (predicted IoU > 0.5, NMS, area)"
    )  # fmt: skip
    dinov.add_argument("--seed", type=int, default=0, help="reference choice, prompt drawing and bank sampling")
    parser.set_defaults(func=_run)


def _sam_metrics(args: argparse.Namespace) -> dict[str, float]:
    from hf_promptseg.training.evaluation import evaluate_segmentation

    return evaluate_segmentation(
        args.model, args.data, args.adapter, args.metrics or "cod", args.image_size, args.batch_size, args.split
    )


def _dinov_metrics(args: argparse.Namespace) -> dict[str, float]:
    from hf_promptseg.models.dinov.evaluation_dinov import evaluate_dinov, load_evaluation_data, load_for_evaluation

    for flag, value in (("--adapter", args.adapter), ("--metrics", args.metrics)):
        if value is not None:
            raise ValueError(f"`{flag}` is a SAM option; DINOv takes --task (referring, generic or both)")
    data = load_evaluation_data(args.data, args.image_dir, args.split, args.image_size or 64)
    model, processor = load_for_evaluation(args.model, args.image_size)
    options = {"seed": args.seed, "batch_size": args.batch_size}
    if args.task != "referring":
        options.update(bank_images=args.bank_images, num_examples=args.num_examples)
    if args.task != "generic":
        options.update(reference_filter=args.reference_filter)
    return evaluate_dinov(model, processor, data, task=args.task, **options)


def _run(args: argparse.Namespace) -> int:
    metrics = _dinov_metrics(args) if args.family == "dinov" else _sam_metrics(args)
    print(format_table(metrics))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(metrics, indent=2))
        print(f"wrote {args.output}")
    return 0
