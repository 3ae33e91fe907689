"""Point and box prompting of a SAM model on whole images, and its mean IoU on scenes with exact masks.

Example:

```python
from hf_promptseg.assets import demo_sam_path
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter

scene = make_scene(seed=0, height=128, width=128)
masks, scores = PromptedSegmenter(demo_sam_path()).segment(scene.image, boxes=[(10, 10, 60, 70)])
```
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import AutoModelForMaskGeneration, AutoProcessor

from hf_promptseg.data.scenes import Scene
from hf_promptseg.utils.masks import mask_iou
from hf_promptseg.utils.prompt_geometry import bounding_box, interior_point


class PromptedSegmenter:
    """Point and box prompting of a SAM model: one image encoding per image, all prompts decoded together."""

    def __init__(self, model: str | os.PathLike, device: str = "cpu") -> None:
        self.processor = AutoProcessor.from_pretrained(model)
        self.model = AutoModelForMaskGeneration.from_pretrained(model, dtype=torch.float32).to(device).eval()
        self.device = device

    @torch.no_grad()
    def segment(self, image: np.ndarray, points=None, boxes=None) -> tuple[np.ndarray, np.ndarray]:
        """Masks (N, H, W) bool and scores (N,) for N single-point prompts or N boxes (not both).

        A single point is ambiguous, so SAM's three candidates are decoded and the one with the best predicted IoU is
        kept; a box is not, so one mask is decoded.
        """
        if (points is None) == (boxes is None):
            raise ValueError("pass exactly one of `points` (list of (x, y)) or `boxes` (list of (x0, y0, x1, y1))")
        if points is not None:
            inputs = self.processor(
                Image.fromarray(image),
                input_points=[[[list(p)] for p in points]],
                input_labels=[[[1] for _ in points]],
                return_tensors="pt",
            )
        else:
            inputs = self.processor(
                Image.fromarray(image), input_boxes=[[list(b) for b in boxes]], return_tensors="pt"
            )
        inputs = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        inputs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
        outputs = self.model(**inputs, multimask_output=points is not None)
        masks = self.processor.post_process_masks(
            outputs.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
        )[0]
        scores = outputs.iou_scores[0].cpu()
        best = scores.argmax(-1)
        chosen = masks[torch.arange(masks.shape[0]), best]
        return chosen.numpy().astype(bool), scores.gather(-1, best[:, None])[:, 0].numpy()


def evaluate_prompted_segmentation(segmenter: PromptedSegmenter, scenes: list[Scene]) -> dict[str, float]:
    """Mean IoU over every object of `scenes`, from one interior positive point and from its tight box."""
    point_ious, box_ious = [], []
    for scene in tqdm(scenes, desc="held-out scenes", leave=False):
        if not scene.masks:
            continue
        by_point, _ = segmenter.segment(scene.image, points=[interior_point(m) for m in scene.masks])
        by_box, _ = segmenter.segment(scene.image, boxes=[bounding_box(m) for m in scene.masks])
        point_ious += [mask_iou(p, t) for p, t in zip(by_point, scene.masks)]
        box_ious += [mask_iou(p, t) for p, t in zip(by_box, scene.masks)]
    return {
        "mean_iou_point": float(np.mean(point_ious)),
        "mean_iou_box": float(np.mean(box_ious)),
        "num_objects": len(point_ious),
    }


__all__ = ["PromptedSegmenter", "evaluate_prompted_segmentation"]
