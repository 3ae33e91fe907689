"""The In-context tab's logic: DINOv matches, in a target image, what a visual prompt marks on a reference image.

Prompts on the reference are a mask, a box, points or a scribble (`DinovProcessor` rasterises them); the target's
matching objects come from `pipeline("visual-prompt-segmentation", task="referring")`.

Without `--dinov` the tab uses the embedded demo DINOv (`hf_promptseg.assets.demo_dinov_path()`), trained on
procedural scenes of textured shapes: it shows the flow on such pictures and knows nothing of natural images.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from hf_promptseg.utils.overlays import overlay


def load_in_context(model: str | os.PathLike):
    """`pipeline("visual-prompt-segmentation", model=...)` for a DINOv directory or Hub repo."""
    from transformers import pipeline

    import hf_promptseg  # noqa: F401  (registers the DINOv family and its pipeline)

    return pipeline("visual-prompt-segmentation", model=str(model))


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
    "load_in_context",
    "match",
    "visual_prompts",
]
