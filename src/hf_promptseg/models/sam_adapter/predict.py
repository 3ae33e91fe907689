"""Prompt-free prediction with SAM-Adapter (COD, shadow, polyp): probability maps at each image's original size.

Example:

```python
import hf_promptseg
from peft import PeftModel
from transformers import SamModel
from hf_promptseg.models.sam_adapter.predict import predict_masks

model = PeftModel.from_pretrained(SamModel.from_pretrained("cod-adapter/base"), "cod-adapter/adapter")
probabilities = predict_masks(model, ["animal.jpg"])  # [(H, W) float32 in [0, 1]]
```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from hf_promptseg.models.sam.encoder_backends import check_encoder_backend
from hf_promptseg.models.sam.image_processing_sam import HfPromptsegSamImageProcessor
from hf_promptseg.models.sam.prompt_free import prompt_free_input_size, prompt_free_logits
from hf_promptseg.utils.masks import unpad_mask_logits


def reference_image_processor(image_size: int = 1024) -> HfPromptsegSamImageProcessor:
    """SAM-Adapter's own preprocessing: bilinear resize to `image_size`² (aspect not kept), ImageNet mean/std."""
    return HfPromptsegSamImageProcessor(
        resize_mode="square",
        size={"longest_edge": image_size},
        pad_size={"height": image_size, "width": image_size},
    )


def prompt_free_image_processor(image_size: int, saved: Any = None) -> HfPromptsegSamImageProcessor:
    """The one preprocessing prompt-free SAM trains, evaluates and serves with.

    `saved` (the image processor stored beside a model) is used when it is a square-mode SAM processor of
    `image_size`, as hf_promptseg saves beside every prompt-free model; anything else (none, or the resize + pad
    processor a SAM directory carries for prompts) gives the reference's preprocessing at `image_size`.
    """
    square = {"height": image_size, "width": image_size}
    if isinstance(saved, HfPromptsegSamImageProcessor) and saved.resize_mode == "square" and saved.pad_size == square:
        return saved
    return reference_image_processor(image_size)


def load_prompt_free_image_processor(image_size: int, *directories: str | os.PathLike | None):
    """`prompt_free_image_processor` of the first of `directories` that holds an image processor of ours."""
    from transformers import AutoImageProcessor

    for directory in directories:
        if directory is None or not (Path(directory) / "preprocessor_config.json").is_file():
            continue
        saved = AutoImageProcessor.from_pretrained(directory)
        if prompt_free_image_processor(image_size, saved) is saved:
            return saved
    return reference_image_processor(image_size)


def reference_pixel_values(images: Sequence[Any], size: int = 1024) -> torch.Tensor:
    return reference_image_processor(size)(list(images), return_tensors="pt")["pixel_values"]


def _sam_config(model: torch.nn.Module):
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "vision_config"):
        raise TypeError(f"`model` must be a SAM model (or a PeftModel over one), got {type(model).__name__}")
    return config


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, pixel_values: torch.Tensor, encoder_backend: str = "default"
) -> torch.Tensor:
    """(B, S, S) mask logits at input resolution from the prompt-free path (the ViT run by `encoder_backend`)."""
    _sam_config(model)
    image_size = prompt_free_input_size(model)
    if pixel_values.ndim != 4 or tuple(pixel_values.shape[-2:]) != (image_size, image_size):
        raise ValueError(
            f"`pixel_values` must be (B, 3, {image_size}, {image_size}) for this model, got {tuple(pixel_values.shape)}"
        )
    return prompt_free_logits(model, pixel_values, encoder_backend)[:, 0]


@torch.no_grad()
def predict_masks(
    model: torch.nn.Module,
    images: Sequence[Any],
    image_processor: HfPromptsegSamImageProcessor | None = None,
    batch_size: int = 1,
    encoder_backend: str = "default",
) -> list[np.ndarray]:
    """Foreground probability maps (H, W) float32 in [0, 1], one per image, at the image's original size.

    `image_processor` defaults to the reference preprocessing at the model's input size; pass a SAM processor
    (`resize_mode="longest_edge"`) for models fine-tuned with SAM's own resize + pad. SAM2 models default to
    `prompt_free_sam2_image_processor` (a plain resize, nothing to unpad). `encoder_backend` runs the ViT another way
    (`encoder_backends.ENCODER_BACKENDS`; SAM2: "default" only).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be positive, got {batch_size}")
    check_encoder_backend(encoder_backend)
    if isinstance(images, (Image.Image, np.ndarray)):
        images = [images]
    config = _sam_config(model)
    if image_processor is None and hasattr(config.mask_decoder_config, "dynamic_multimask_via_stability"):
        from hf_promptseg.models.sam2.processing_sam2 import prompt_free_sam2_image_processor

        image_processor = prompt_free_sam2_image_processor(config)
    processor = image_processor or reference_image_processor(prompt_free_input_size(model))
    device = next(model.parameters()).device
    maps = []
    for start in range(0, len(images), batch_size):
        inputs = processor(list(images[start : start + batch_size]), return_tensors="pt")
        logits = predict_logits(model, inputs["pixel_values"].to(device), encoder_backend)
        # SAM2's processor resizes without padding: the whole input is the image
        reshaped_sizes = inputs.get("reshaped_input_sizes", [logit.shape[-2:] for logit in logits])
        for logit, reshaped, original in zip(logits, reshaped_sizes, inputs["original_sizes"]):
            full = unpad_mask_logits(logit[None], tuple(int(v) for v in reshaped), tuple(original.tolist()))[0]
            maps.append(full.sigmoid().float().cpu().numpy())
    return maps


__all__ = [
    "load_prompt_free_image_processor",
    "predict_logits",
    "predict_masks",
    "prompt_free_image_processor",
    "prompt_free_logits",
    "reference_image_processor",
    "reference_pixel_values",
]
