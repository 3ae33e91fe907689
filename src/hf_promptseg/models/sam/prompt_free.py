"""SAM without prompts: the decoder's `no_mask_embed` path, which prompt-free fine-tuning (SAM-Adapter, LoRA, full,
decoder-only) trains and serves. Valid for any SAM-family model, with or without a PEFT adapter."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prompt_free_input_size(model: torch.nn.Module) -> int:
    """The square input size of a SAM-family model (or a `PeftModel` over one): SAM's ViT's, SAM2's prompt encoder's."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "prompt_encoder_config"):
        raise TypeError(f"`model` must be a SAM-family model (or a PeftModel over one), got {type(model).__name__}")
    size = getattr(getattr(config, "vision_config", None), "image_size", None)
    return size if isinstance(size, int) else int(config.prompt_encoder_config.image_size)


def prompt_free_logits(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) mask logits at input size from SAM's prompt-free path (`multimask_output=False`), with grads."""
    outputs = model(pixel_values=pixel_values, multimask_output=False)
    return F.interpolate(outputs.pred_masks[:, 0], pixel_values.shape[-2:], mode="bilinear", align_corners=False)


__all__ = ["prompt_free_input_size", "prompt_free_logits"]
