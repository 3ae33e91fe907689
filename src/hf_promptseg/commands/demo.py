"""`hf-promptseg demo`: promptable segmentation end to end, offline, on the embedded default models.

The demo segments a bundled procedural scene from single-point and box prompts with the embedded SAM
(`hf_promptseg.assets`), runs `pipeline("mask-generation")` on it, writes overlay PNGs and `summary.json`, and
measures mean IoU from one positive point and from a box on held-out scenes drawn from `--seed`. Any SAM repo or
directory takes the same path (`--model facebook/sam-vit-base` for users with internet). Then the embedded DINOv
finds, in other scenes, the objects that mask / scribble / box / point prompts show on a reference scene
(`dinov_referring.png`) and every object of the categories of a prompt bank (`dinov_generic.png`).

Example:

```python
from hf_promptseg.commands.demo import run_demo

summary = run_demo(out_dir="demo_output", num_eval_scenes=8)
print(summary["mean_iou_point"], summary["mean_iou_box"])
```
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import pipeline

from hf_promptseg.assets import DEMO_SAM_CARD_SEED, DEMO_SAM_MASK_GENERATION_THRESHOLDS, demo_sam_path
from hf_promptseg.data.scenes import Scene, make_scene, make_scenes
from hf_promptseg.models.dinov.demo_dinov import run_dinov_demo
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter, evaluate_prompted_segmentation
from hf_promptseg.utils.masks import mask_iou
from hf_promptseg.utils.overlays import overlay
from hf_promptseg.utils.prompt_geometry import bounding_box, interior_point

DEMO_SCENE_SEED = 20261125
DEFAULT_EVAL_SCENES = 64
OUTPUT_IMAGES = ("scene", "point_prompts", "box_prompts", "mask_generation")


def bundled_scene() -> Scene:
    """The demo's own picture: a fixed procedural scene (regenerated from its seed, so nothing binary is shipped)."""
    return make_scene(DEMO_SCENE_SEED, height=360, width=480, num_objects=(4, 6))


def run_demo(
    model: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = "demo_output",
    seed: int = DEMO_SAM_CARD_SEED,
    num_eval_scenes: int = DEFAULT_EVAL_SCENES,
    points_per_side: int = 16,
    device: str = "cpu",
    pred_iou_thresh: float | None = None,
    stability_score_thresh: float | None = None,
    dinov_model: str | os.PathLike | None = None,
    with_dinov: bool = True,
) -> dict[str, Any]:
    """Run the demo and return its summary (also written to `out_dir/summary.json`).

    Mask-generation thresholds default to the pipeline's (0.88 / 0.95, tuned for released SAMs) except for the
    embedded model, whose IoU head is calibrated lower (0.6 / 0.85).
    """
    if num_eval_scenes < 1:
        raise ValueError(f"`num_eval_scenes` must be positive, got {num_eval_scenes}")
    if points_per_side < 1:
        raise ValueError(f"`points_per_side` must be positive, got {points_per_side}")
    start = time.perf_counter()
    embedded = model is None
    model = str(model or demo_sam_path())
    thresholds = dict(DEMO_SAM_MASK_GENERATION_THRESHOLDS) if embedded else {}
    if pred_iou_thresh is not None:
        thresholds["pred_iou_thresh"] = pred_iou_thresh
    if stability_score_thresh is not None:
        thresholds["stability_score_thresh"] = stability_score_thresh
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    segmenter = PromptedSegmenter(model, device=device)
    image_size = int(segmenter.model.config.vision_config.image_size)

    scene = bundled_scene()
    Image.fromarray(scene.image).save(out_dir / "scene.png")
    points = [interior_point(m) for m in scene.masks]
    boxes = [bounding_box(m) for m in scene.masks]
    by_point, _ = segmenter.segment(scene.image, points=points)
    by_box, _ = segmenter.segment(scene.image, boxes=boxes)
    overlay(scene.image, by_point, points=points).save(out_dir / "point_prompts.png")
    overlay(scene.image, by_box, boxes=boxes).save(out_dir / "box_prompts.png")

    generator = pipeline("mask-generation", model=model, device=device, dtype=torch.float32)
    generated = generator(
        Image.fromarray(scene.image), points_per_batch=64, points_per_crop=points_per_side, **thresholds
    )
    auto_masks = sorted((np.asarray(m, bool) for m in generated["masks"]), key=lambda m: -int(m.sum()))
    overlay(scene.image, auto_masks).save(out_dir / "mask_generation.png")

    held_out = make_scenes(num_eval_scenes, seed=seed, height=image_size, width=image_size)
    metrics = evaluate_prompted_segmentation(segmenter, held_out)
    dinov = run_dinov_demo(out_dir, dinov_model, device=device) if with_dinov else {}
    summary = {
        "model": model,
        "seed": seed,
        "num_eval_scenes": num_eval_scenes,
        **metrics,
        "bundled_scene_iou_point": float(np.mean([mask_iou(p, t) for p, t in zip(by_point, scene.masks)])),
        "bundled_scene_iou_box": float(np.mean([mask_iou(p, t) for p, t in zip(by_box, scene.masks)])),
        "mask_generation_masks": len(auto_masks),
        "mask_generation_thresholds": thresholds,
        "outputs": {name: str(out_dir / f"{name}.png") for name in OUTPUT_IMAGES},
        **({"dinov": {k: v for k, v in dinov.items() if k != "dinov_outputs"}} if dinov else {}),
        "seconds": round(time.perf_counter() - start, 1),
    }
    summary["outputs"].update(dinov.get("dinov_outputs", {}))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="segment a bundled scene offline with the embedded model", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--model", default=None, help="SAM repo id or directory (default: the embedded demo model)")
    parser.add_argument("--out", default="demo_output", type=Path, help="output directory")
    parser.add_argument("--seed", default=DEMO_SAM_CARD_SEED, type=int, help="seed of the held-out evaluation scenes")
    parser.add_argument(
        "--num-eval-scenes", default=DEFAULT_EVAL_SCENES, type=int, help="size of the held-out set for the IoU numbers"
    )
    parser.add_argument("--points-per-side", default=16, type=int, help="grid of the automatic mask generation")
    parser.add_argument("--pred-iou-thresh", type=float, help="mask-generation filter (embedded model: 0.6)")
    parser.add_argument("--stability-score-thresh", type=float, help="mask-generation filter (embedded model: 0.85)")
    parser.add_argument("--dinov-model", default=None, help="DINOv repo id or directory (default: the embedded one)")
    parser.add_argument("--no-dinov", action="store_true", help="skip the DINOv part")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    summary = run_demo(
        args.model,
        args.out,
        args.seed,
        args.num_eval_scenes,
        args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        dinov_model=args.dinov_model,
        with_dinov=not args.no_dinov,
    )
    print(
        f"mean IoU on {summary['num_objects']} held-out objects (seed {summary['seed']}): "
        f"point {summary['mean_iou_point']:.3f}, box {summary['mean_iou_box']:.3f}; "
        f"{summary['mask_generation_masks']} masks from mask generation; {summary['seconds']} s"
    )
    if "dinov" in summary:
        dinov = summary["dinov"]
        print(
            f"DINOv: referring IoU {dinov['referring_miou']:.3f} over mask / scribble / box / point prompts across "
            f"scenes; generic: {dinov['generic_found']} of {dinov['generic_objects']} objects found"
        )
    for name, path in summary["outputs"].items():
        print(f"  {name:>16}: {path}")
    print(f"  {'summary':>16}: {Path(args.out) / 'summary.json'}")
    return 0
