"""The Prompt-free tab's logic: a SAM-Adapter (or any prompt-free SAM) model's probability map and mask.

The model is served by `pipeline("image-segmentation")`, which hf_promptseg routes to its prompt-free SAM pipeline
with the preprocessing the model trained with; the probability map comes from the same model and processor.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from hf_promptseg.models.sam_adapter.predict import predict_masks
from hf_promptseg.utils.overlays import overlay


def load_prompt_free(model: str | os.PathLike):
    """`pipeline("image-segmentation", model=...)` for a SAM-Adapter directory or Hub repo."""
    from transformers import pipeline

    import hf_promptseg  # noqa: F401  (registers the SAM-aware image-segmentation pipeline)

    return pipeline("image-segmentation", model=str(model))


def probability_and_mask(
    segmenter, image: np.ndarray, threshold: float = 0.5
) -> tuple[Image.Image, Image.Image, np.ndarray]:
    """(probability map as a grey image, the image with the thresholded mask tinted, the (H, W) bool mask)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1], got {threshold}")
    probability = predict_masks(segmenter.model, [image], segmenter.image_processor)[0]
    mask = probability > threshold
    grey = Image.fromarray((probability * 255).round().astype(np.uint8), mode="L")
    return grey, overlay(image, [mask]), mask


__all__ = ["load_prompt_free", "probability_and_mask"]
