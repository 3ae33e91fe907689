"""The DINOv family's plug-in: Auto registration, the visual-prompt-segmentation pipeline, model and prompt-bank
cards, and the converter of released checkpoints."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from hf_promptseg.families import ArtifactKind, ModelFamily
from hf_promptseg.models.dinov.configuration_dinov import DinovConfig
from hf_promptseg.models.dinov.prompt_bank import BANK_CONFIG
from hf_promptseg.utils.files import read_json


def register() -> None:
    from hf_promptseg.models.dinov.modeling_dinov import register_dinov
    from hf_promptseg.models.dinov.processing_dinov import register_dinov_processor
    from hf_promptseg.pipelines.visual_prompt_segmentation import register_visual_prompt_segmentation_pipeline

    register_dinov()
    register_dinov_processor()
    register_visual_prompt_segmentation_pipeline()


def _holds_model(local_dir: Path) -> bool:
    return read_json(local_dir / "config.json").get("model_type") == DinovConfig.model_type


def _model_details(local_dir: Path) -> dict[str, Any]:
    from hf_promptseg.hub import count_parameters

    config = read_json(local_dir / "config.json")
    backbone = config.get("backbone_config") or {}
    return {
        "architecture": (
            f"Swin backbone (embed dim {backbone.get('embed_dim')}, depths {backbone.get('depths')}); deformable "
            f"pixel decoder of width {config.get('hidden_size')} with {config.get('encoder_layers')} layers; "
            f"decoder of {config.get('decoder_layers')} layers over {config.get('num_queries')} generic queries and "
            f"a {config.get('points_per_side')}² point grid. {count_parameters(local_dir):,} parameters."
        )
    }


def _holds_bank(local_dir: Path) -> bool:
    return (local_dir / BANK_CONFIG).is_file()


def _bank_details(local_dir: Path) -> dict[str, Any]:
    config = read_json(local_dir / BANK_CONFIG)
    categories = config.get("categories", [])
    return {
        "base_model": config.get("model_name_or_path"),
        "categories": ", ".join(map(str, categories)),
        "num_categories": len(categories),
    }


def _add_convert_command(subparsers) -> None:
    from hf_promptseg.models.dinov.convert_dinov_checkpoint import add_cli_parser

    add_cli_parser(subparsers)


FAMILY = ModelFamily(
    name="dinov",
    register=register,
    artifacts=(
        ArtifactKind(
            name="dinov",
            template=resources.files(__package__) / "model_card.md",
            library_name="transformers",
            pipeline_tag="image-segmentation",
            tags=("dinov", "visual-prompting", "in-context-segmentation", "hf-promptseg"),
            summary="Visual in-context prompting: segment what the reference prompts show.",
            limitations="Quality depends on how representative the reference prompts are; generic segmentation "
            "needs in-context examples for every category it should find.",
            holds=_holds_model,
            details=_model_details,
        ),
        ArtifactKind(
            name="dinov_prompt_bank",
            template=resources.files(__package__) / "prompt_bank_card.md",
            library_name="hf-promptseg",
            pipeline_tag=None,
            tags=("dinov", "prompt-bank", "in-context-segmentation", "hf-promptseg"),
            summary="In-context examples for DINOv generic segmentation.",
            limitations="A bank only works with the DINOv model it was built with (its features live in that "
            "model's embedding space).",
            holds=_holds_bank,
            details=_bank_details,
        ),
    ),
    add_convert_command=_add_convert_command,
)
