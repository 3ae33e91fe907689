"""`pipeline("mask-generation")` that runs on this stack: no torchvision, and `batch_size > 1` works.

Registered in place of transformers' own class for the task at `import hf_promptseg`; outputs are the same
(`masks`, `scores`, optional `rle_mask` and `bounding_boxes`).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForMaskGeneration
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.mask_generation import MaskGenerationPipeline
from transformers.utils import logging

from hf_promptseg.models.sam.image_processing_sam import validate_images


def _stack_intermediate(intermediate: Any) -> list[torch.Tensor]:
    """SAM-HQ's per-layer ViT features as a list of (B, H, W, C) tensors, whatever nesting chunking/collation left.

    A chunk carries the list returned by `get_image_embeddings`; the pipeline's iterators may wrap it once more,
    and collating `batch_size > 1` chunks gives one list per layer of per-chunk tensors.
    """
    while (
        isinstance(intermediate, (list, tuple))
        and len(intermediate) == 1
        and isinstance(intermediate[0], (list, tuple))
    ):
        intermediate = intermediate[0]
    if isinstance(intermediate, (list, tuple)) and intermediate and isinstance(intermediate[0], (list, tuple)):
        return [torch.cat(list(layer), dim=0) for layer in intermediate]
    return list(intermediate)


class HfPromptsegMaskGenerationPipeline(MaskGenerationPipeline):
    """Automatic mask generation with SAM-family models.

    Differences from transformers' `MaskGenerationPipeline`:
    - `batch_size > 1` runs several point batches (of one or several images) through the model in one call
      (transformers' class fails there, upstream issue 37805);
    - the final NMS comes from the image processor, which for hf_promptseg directories is torch-only.

    Example:
        >>> import numpy as np, hf_promptseg
        >>> from transformers import pipeline
        >>> generator = pipeline("mask-generation", model="path/to/converted-sam")  # doctest: +SKIP
        >>> outputs = generator(np.zeros((64, 64, 3), np.uint8), points_per_batch=64, batch_size=2)  # doctest: +SKIP
        >>> sorted(outputs)  # doctest: +SKIP
        ['masks', 'scores']
    """

    def preprocess(self, image, *args, **kwargs):
        if not isinstance(image, str):
            validate_images(image, argument="image")
        for chunk in super().preprocess(image, *args, **kwargs):
            chunk["num_points"] = torch.tensor([chunk["input_points"].shape[1]])
            yield chunk

    def _forward(
        self,
        model_inputs: dict[str, Any],
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        mask_threshold: float = 0,
        stability_score_offset: int = 1,
        max_hole_area: float | None = None,
        max_sprinkle_area: float | None = None,
    ) -> dict[str, list]:
        num_points = model_inputs.pop("num_points").tolist()
        batch = len(num_points)
        input_boxes = model_inputs.pop("input_boxes").reshape(batch, -1)
        is_last = model_inputs.pop("is_last")
        collated = isinstance(is_last, list)  # batch_size > 1: the DataLoader collated chunks into lists/tensors
        is_last = is_last if collated else [bool(is_last)]
        original_sizes = model_inputs.pop("original_sizes").reshape(batch, 2).tolist()
        reshaped_input_sizes = model_inputs.pop("reshaped_input_sizes").reshape(batch, 2).tolist()
        full_image_sizes = model_inputs.pop("full_image_size").reshape(batch, 2).tolist()

        if "intermediate_embeddings" in model_inputs:
            model_inputs["intermediate_embeddings"] = _stack_intermediate(model_inputs["intermediate_embeddings"])
        model_outputs = self.model(**model_inputs)
        low_resolution_masks = model_outputs["pred_masks"]
        iou_scores = model_outputs["iou_scores"]
        size_kwargs = {}
        if max_hole_area is not None:
            size_kwargs["max_hole_area"] = max_hole_area
        if max_sprinkle_area is not None and max_sprinkle_area > 0:
            size_kwargs["max_sprinkle_area"] = max_sprinkle_area

        out: dict[str, list] = {"masks": [], "is_last": is_last, "boxes": [], "iou_scores": []}
        for i, count in enumerate(num_points):
            masks = self.image_processor.post_process_masks(
                low_resolution_masks[i : i + 1, :count],
                [original_sizes[i]],
                mask_threshold=mask_threshold,
                reshaped_input_sizes=[reshaped_input_sizes[i]],
                binarize=False,
                **size_kwargs,
            )
            masks, scores, boxes = self.image_processor.filter_masks(
                masks[0],
                iou_scores[i, :count],
                full_image_sizes[i],
                input_boxes[i],
                pred_iou_thresh,
                stability_score_thresh,
                mask_threshold,
                stability_score_offset,
            )
            out["masks"].append(masks)
            out["boxes"].append(boxes)
            out["iou_scores"].append(scores)
        return out if collated else {key: value[0] for key, value in out.items()}

    def postprocess(self, model_outputs, output_rle_mask=False, output_bboxes_mask=False, crops_nms_thresh=0.7):
        for output in model_outputs:
            output["iou_scores"] = output["iou_scores"].reshape(-1)
            output["boxes"] = output["boxes"].reshape(-1, 4)
        return super().postprocess(
            model_outputs,
            output_rle_mask=output_rle_mask,
            output_bboxes_mask=output_bboxes_mask,
            crops_nms_thresh=crops_nms_thresh,
        )


def register_mask_generation_pipeline() -> None:
    """Serve `pipeline("mask-generation")` with `HfPromptsegMaskGenerationPipeline` (replacing the stock class)."""
    pipelines_logger = logging.get_logger("transformers.pipelines.base")
    level = pipelines_logger.level
    pipelines_logger.setLevel(logging.ERROR)  # the "Overwriting pipeline" warning is expected here
    try:
        PIPELINE_REGISTRY.register_pipeline(
            "mask-generation",
            pipeline_class=HfPromptsegMaskGenerationPipeline,
            pt_model=AutoModelForMaskGeneration,
            type="image",
        )
    finally:
        pipelines_logger.setLevel(level)


__all__ = ["HfPromptsegMaskGenerationPipeline", "register_mask_generation_pipeline"]
