"""The SAM family's plug-in: Auto registration, the mask-generation pipeline, its model card and its converter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_promptseg.families import ModelFamily, card_kinds
from hf_promptseg.utils.files import read_json

SAM_MODEL_TYPES = ("sam", "sam_hq", "hf_promptseg_sam")


def register() -> None:
    from hf_promptseg.models.sam.image_processing_sam import register_sam_image_processor
    from hf_promptseg.models.sam.processing_sam import register_sam_processor
    from hf_promptseg.pipelines.mask_generation import register_mask_generation_pipeline

    register_sam_image_processor()
    register_sam_processor()
    register_mask_generation_pipeline()


def _holds_sam(local_dir: Path) -> bool:
    return (
        not (local_dir / "adapter_config.json").is_file()
        and read_json(local_dir / "config.json").get("model_type") in SAM_MODEL_TYPES
    )


def _sam_details(local_dir: Path) -> dict[str, Any]:
    from hf_promptseg.hub import count_parameters

    config = read_json(local_dir / "config.json")
    vision = config.get("vision_config", {})
    decoder = config.get("mask_decoder_config", {})
    return {
        "architecture": (
            f"ViT image encoder: width {vision.get('hidden_size')}, {vision.get('num_hidden_layers')} layers, "
            f"{vision.get('num_attention_heads')} heads, global attention at {vision.get('global_attn_indexes')}, "
            f"window {vision.get('window_size')}, input {vision.get('image_size')}²; two-way mask decoder: width "
            f"{decoder.get('hidden_size')}, {decoder.get('num_hidden_layers')} layers, "
            f"{decoder.get('num_attention_heads')} heads. {count_parameters(local_dir):,} parameters."
        )
    }


FAMILY = ModelFamily(
    name="sam",
    register=register,
    artifacts=card_kinds(__package__, {"sam": (_holds_sam, _sam_details)}),
    converter="hf_promptseg.models.sam.convert_sam_checkpoint",
)
