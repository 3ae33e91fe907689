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


def prompt_free_logits(
    model: torch.nn.Module, pixel_values: torch.Tensor, encoder_backend: str = "default"
) -> torch.Tensor:
    """(B, 1, S, S) mask logits at input size from SAM's prompt-free path (`multimask_output=False`), with grads.

    `encoder_backend` (`encoder_backends.ENCODER_BACKENDS`) runs the ViT, adapter included, another way; the
    decoder then gets its embedding (no grads through "compile" / "onnx" guarantees: for inference)."""
    if encoder_backend == "default":
        outputs = model(pixel_values=pixel_values, multimask_output=False)
    else:
        from hf_promptseg.models.sam.encoder_backends import image_embeddings_function

        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel's SAM
        embedded = image_embeddings_function(base, encoder_backend)(pixel_values)
        if torch.is_tensor(embedded):
            outputs = model(image_embeddings=embedded, multimask_output=False)
        else:  # SAM-HQ: the embedding and the ViT features its extra token needs
            outputs = model(image_embeddings=embedded[0], intermediate_embeddings=embedded[1], multimask_output=False)
    return F.interpolate(outputs.pred_masks[:, 0], pixel_values.shape[-2:], mode="bilinear", align_corners=False)


__all__ = ["prompt_free_input_size", "prompt_free_logits"]
