"""The Everything tab's logic: automatic mask generation whose threshold sliders only re-filter cached candidates.

`compute_candidates` decodes a point grid once per image (on the embedding `PromptedSegmenter` already holds) and
keeps every candidate with its predicted IoU, stability score and box, as a COCO RLE; `filter_candidates` applies
the sliders' thresholds and box NMS to that list, which takes milliseconds, so moving a slider never re-runs the
model. The filters are those of transformers' `SamImageProcessor.filter_masks` (its stability-score and box helpers
are called directly), for one crop covering the whole image.

Example:

```python
from hf_promptseg.app.everything import compute_candidates, filter_candidates
from hf_promptseg.assets import demo_sam_path
from hf_promptseg.data.scenes import make_scene
from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter

segmenter = PromptedSegmenter(demo_sam_path())
candidates = compute_candidates(segmenter, make_scene(0, 128, 128).image, points_per_side=4)
masks = filter_candidates(candidates, pred_iou_thresh=0.6, stability_score_thresh=0.85)
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pycocotools import mask as mask_utils
from transformers.models.sam.image_processing_pil_sam import _batched_mask_to_box, _compute_stability_score

from hf_promptseg.models.sam.prompted_segmentation import PromptedSegmenter
from hf_promptseg.utils.boxes import nms


@dataclass
class Candidates:
    """Every grid candidate of one image: COCO RLEs, (N,) predicted IoU, stability score and area, (N, 4) boxes."""

    rles: list[dict]
    iou_scores: np.ndarray
    stability_scores: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    image_size: tuple[int, int]


def grid_points(height: int, width: int, points_per_side: int) -> np.ndarray:
    """SAM's grid: `points_per_side`² cell centres, as (N, 2) pixel (x, y)."""
    if points_per_side < 1:
        raise ValueError(f"`points_per_side` must be positive, got {points_per_side}")
    offsets = (np.arange(points_per_side) + 0.5) / points_per_side
    xs, ys = np.meshgrid(offsets * width, offsets * height)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def compute_candidates(
    segmenter: PromptedSegmenter,
    image: np.ndarray,
    points_per_side: int = 16,
    mask_threshold: float = 0.0,
    stability_score_offset: float = 1.0,
    progress: Callable[[float], None] | None = None,
) -> Candidates:
    """Decode the grid on `image` (encoded by `segmenter.set_image` unless it already is) and keep all candidates."""
    segmenter.set_image(image)
    height, width = segmenter.image_size
    points = grid_points(height, width, points_per_side)
    rles, ious, stabilities, boxes, areas = [], [], [], [], []
    done = 0
    for logits, scores in segmenter.predict_each_point(points):
        flat = logits.flatten(0, 1)
        stabilities.append(_compute_stability_score(flat, mask_threshold, stability_score_offset).numpy())
        binary = flat > mask_threshold
        boxes.append(_batched_mask_to_box(binary).numpy())
        areas.append(binary.flatten(1).sum(1).numpy())
        rles += mask_utils.encode(np.asfortranarray(binary.permute(1, 2, 0).numpy().astype(np.uint8)))
        ious.append(scores.flatten().numpy())
        done += len(logits)
        if progress is not None:
            progress(done / len(points))
    return Candidates(rles=rles, iou_scores=np.concatenate(ious), stability_scores=np.concatenate(stabilities),
                      boxes=np.concatenate(boxes).astype(np.float32), areas=np.concatenate(areas),
                      image_size=(height, width))  # fmt: skip


def filter_candidates(
    candidates: Candidates,
    pred_iou_thresh: float = 0.88,
    stability_score_thresh: float = 0.95,
    box_nms_thresh: float = 0.7,
    min_area: int = 1,
) -> list[np.ndarray]:
    """The (H, W) bool masks that pass both thresholds and box NMS, largest first (no model call)."""
    for name, value in (("pred_iou_thresh", pred_iou_thresh), ("stability_score_thresh", stability_score_thresh),
                        ("box_nms_thresh", box_nms_thresh)):  # fmt: skip
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"`{name}` must be in [0, 1], got {value}")
    keep = (candidates.iou_scores > pred_iou_thresh) & (candidates.stability_scores > stability_score_thresh)
    keep &= candidates.areas >= min_area
    index = np.nonzero(keep)[0]
    if len(index) == 0:
        return []
    kept = nms(torch.from_numpy(candidates.boxes[index]), torch.from_numpy(candidates.iou_scores[index]),
               box_nms_thresh).numpy()  # fmt: skip
    chosen = index[kept]
    masks = [mask_utils.decode(candidates.rles[i]).astype(bool) for i in chosen]
    return sorted(masks, key=lambda m: -int(m.sum()))


__all__ = ["Candidates", "compute_candidates", "filter_candidates", "grid_points"]
