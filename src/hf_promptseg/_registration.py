"""One place that wires hf_promptseg's classes into transformers (and PEFT); idempotent."""

from __future__ import annotations

import importlib

# Each entry: "module:function" of a zero-argument registration hook. Families append theirs here.
_REGISTRATION_HOOKS: list[str] = [
    "hf_promptseg.models.sam.image_processing_sam:register_sam_image_processor",
    "hf_promptseg.models.sam.processing_sam:register_sam_processor",
    "hf_promptseg.pipelines.mask_generation:register_mask_generation_pipeline",
    "hf_promptseg.tuners.sam_adapter:register_sam_adapter",
    "hf_promptseg.pipelines.image_segmentation:register_image_segmentation_pipeline",
    "hf_promptseg.models.dinov.modeling_dinov:register_dinov",
    "hf_promptseg.models.dinov.processing_dinov:register_dinov_processor",
    "hf_promptseg.pipelines.visual_prompt_segmentation:register_visual_prompt_segmentation_pipeline",
]

_registered = False


def register_all() -> None:
    """Register image processors, pipelines, model families and PEFT methods. Safe to call more than once."""
    global _registered
    if _registered:
        return
    _registered = True
    for hook in _REGISTRATION_HOOKS:
        module_name, function_name = hook.split(":")
        getattr(importlib.import_module(module_name), function_name)()
