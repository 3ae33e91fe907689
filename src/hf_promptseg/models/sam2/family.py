"""The SAM2 family's plug-in: Auto registration of the torchvision-free processors and the SAM2 model card.

Covers the SAM2 generation transformers serves with SAM2's processing: `Sam2Model`, `Sam3TrackerModel` and
`EdgeTamModel` checkpoints (adapters over them are cards of the SAM-Adapter family, `sam2_adapter`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_promptseg.families import ModelFamily, card_kinds
from hf_promptseg.models.sam2.registration import SAM2_MODEL_TYPES
from hf_promptseg.utils.files import read_json

MODEL_CLASSES = {"sam2": "Sam2Model", "sam3_tracker": "Sam3TrackerModel", "edgetam": "EdgeTamModel"}


def register() -> None:
    from hf_promptseg.models.sam2.registration import register_sam2_processors
    from hf_promptseg.pipelines.mask_generation import register_mask_generation_pipeline

    register_sam2_processors()
    register_mask_generation_pipeline()


def _holds_sam2(local_dir: Path) -> bool:
    return (
        not (local_dir / "adapter_config.json").is_file()
        and read_json(local_dir / "config.json").get("model_type") in SAM2_MODEL_TYPES
    )


def _encoder_description(vision: dict[str, Any]) -> str:
    backbone = vision.get("backbone_config") or {}
    kind = backbone.get("model_type", "")
    if "hiera" in kind:
        return (
            f"Hiera image encoder: stage widths {backbone.get('embed_dim_per_stage')}, blocks per stage "
            f"{backbone.get('blocks_per_stage')}, heads {backbone.get('num_attention_heads_per_stage')}, global "
            f"attention at {backbone.get('global_attention_blocks')}, input {backbone.get('image_size')}"
        )
    return f"{kind or 'vision'} image encoder ({backbone.get('hidden_size', '?')} wide)"


def _sam2_details(local_dir: Path) -> dict[str, Any]:
    from hf_promptseg.hub import count_parameters

    config = read_json(local_dir / "config.json")
    model_type = config.get("model_type")
    decoder = config.get("mask_decoder_config", {})
    vision = config.get("vision_config", {})
    return {
        "model_class": MODEL_CLASSES.get(model_type, "Sam2Model"),
        "architecture": (
            f"{_encoder_description(vision)}; FPN neck of width {vision.get('fpn_hidden_size')}; two-way mask "
            f"decoder: width {decoder.get('hidden_size')}, {decoder.get('num_hidden_layers')} layers, "
            f"{decoder.get('num_attention_heads')} heads, with high-resolution skip features and an object-score "
            f"head. {count_parameters(local_dir):,} parameters."
        ),
    }


FAMILY = ModelFamily(
    name="sam2",
    register=register,
    artifacts=card_kinds(__package__, {"sam2": (_holds_sam2, _sam2_details)}),
)
