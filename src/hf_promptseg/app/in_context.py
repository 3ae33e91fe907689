"""The In-context tab's logic: DINOv matches, in a target image, what a visual prompt marks on a reference image.

Prompts on the reference are a mask, a box, points or a scribble (`DinovProcessor` rasterises them); the target's
matching objects come from `pipeline("visual-prompt-segmentation", task="referring")`.

There is no trained DINOv in the package: without `--dinov`, `random_tiny_dinov()` builds a tiny one with random
weights so that the tab's flow can be used and tested; its matches are meaningless and the tab says so.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from hf_promptseg.utils.overlays import overlay

RANDOM_DINOV_FILTERS = {"iou_threshold": 0.0, "min_mask_area": 0}  # random weights pass no stock filter
RANDOM_DINOV_NOTICE = (
    "⚠ In-context model: a tiny DINOv with RANDOM weights (no trained DINOv ships with hf_promptseg) — its matches "
    "are meaningless. Start the app with `--dinov DIR_OR_REPO` for a real model."
)


def load_in_context(model: str | os.PathLike):
    """`pipeline("visual-prompt-segmentation", model=...)` for a DINOv directory or Hub repo."""
    from transformers import pipeline

    import hf_promptseg  # noqa: F401  (registers the DINOv family and its pipeline)

    return pipeline("visual-prompt-segmentation", model=str(model))


def random_tiny_dinov(seed: int = 0):
    """A DINOv pipeline with random weights and a ~100-pixel input (for the app's flow only: it matches nothing)."""
    import torch

    import hf_promptseg  # noqa: F401
    from hf_promptseg.models.dinov import (
        DinovConfig,
        DinovForVisualPromptSegmentation,
        DinovImageProcessor,
        swin_backbone_config,
    )
    from hf_promptseg.pipelines.visual_prompt_segmentation import VisualPromptSegmentationPipeline

    backbone = swin_backbone_config(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4)
    config = DinovConfig(backbone_config=backbone, group_norm_groups=8, hidden_size=32, mask_dim=32,
                         feedforward_dim=64, encoder_layers=1, decoder_layers=2, num_queries=8, points_per_side=3,
                         projection_dim=16, prompt_attention_heads=4, encoder_attention_heads=4,
                         decoder_attention_heads=4)  # fmt: skip
    torch.manual_seed(seed)
    model = DinovForVisualPromptSegmentation(config).eval()
    processor = DinovImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    return VisualPromptSegmentationPipeline(model=model, image_processor=processor)


def visual_prompts(kind: str, box: tuple | None = None, points: list | None = None, scribble: list | None = None,
                   mask: np.ndarray | None = None) -> dict:  # fmt: skip
    """The pipeline's prompt dict for one prompt of `kind` ("box", "point", "scribble" or "mask")."""
    if kind == "box" and box is not None:
        return {"boxes": [list(box)]}
    if kind == "point" and points:
        return {"points": [list(points[0])]}
    if kind == "scribble" and points:
        return {"scribbles": [[list(p) for p in points]]}
    if kind == "mask" and mask is not None and mask.any():
        return {"masks": mask[None]}
    raise ValueError(f"no {kind} prompt drawn on the reference image yet")


def match(segmenter, reference: np.ndarray, prompts: dict, target: np.ndarray, score_floor: float = 0.0,
          **filters: float):  # fmt: skip
    """(the target with its matches tinted, [(mask, score)]) for one prompt on `reference`; `filters` are the
    pipeline's proposal filters (`iou_threshold`, `min_mask_area`, ...; default: the model config's)."""
    options = {name: value for name, value in filters.items() if value is not None}
    results = segmenter(Image.fromarray(target), reference_images=Image.fromarray(reference), prompts=prompts,
                        task="referring", **options)  # fmt: skip
    matches = [(np.asarray(r["mask"], bool), float(r["score"])) for r in results if r["score"] >= score_floor]
    return overlay(target, [m for m, _ in matches]), matches


__all__ = [
    "RANDOM_DINOV_FILTERS",
    "RANDOM_DINOV_NOTICE",
    "load_in_context",
    "match",
    "random_tiny_dinov",
    "visual_prompts",
]
