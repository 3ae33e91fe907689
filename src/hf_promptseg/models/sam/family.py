"""The SAM family's plug-in: Auto registration, the mask-generation pipeline, its model card and its converter."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from hf_promptseg.families import ArtifactKind, ModelFamily
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


def _add_convert_command(subparsers) -> None:
    from hf_promptseg.models.sam.convert_sam_checkpoint import add_cli_parser

    add_cli_parser(subparsers)


FAMILY = ModelFamily(
    name="sam",
    register=register,
    artifacts=(
        ArtifactKind(
            name="sam",
            template=resources.files(__package__) / "model_card.md",
            library_name="transformers",
            pipeline_tag="mask-generation",
            tags=("sam", "segment-anything", "promptable-segmentation", "hf-promptseg"),
            summary="Promptable image segmentation with Segment Anything.",
            limitations="SAM segments what it is prompted with; it does not name objects. Masks near thin "
            "structures and low-contrast boundaries are coarse at the decoder's resolution (4× the image-embedding "
            "grid: 256×256 for the released checkpoints).",
            holds=_holds_sam,
            details=_sam_details,
        ),
    ),
    add_convert_command=_add_convert_command,
)
