"""The DINOv family's plug-in: Auto registration, the visual-prompt-segmentation pipeline, model and prompt-bank
cards, and the converter of released checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_promptseg.families import ModelFamily, card_kinds
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

    adapter = read_json(local_dir / "adapter_config.json")
    # a trainer's LoRA output: the adapter, with the base's config under base/ when the base is a random preset
    config = read_json(local_dir / ("base/config.json" if adapter else "config.json"))
    backbone = config.get("backbone_config") or {}
    architecture = (
        f"Swin backbone (embed dim {backbone.get('embed_dim')}, depths {backbone.get('depths')}); deformable "
        f"pixel decoder of width {config.get('hidden_size')} with {config.get('encoder_layers')} layers; "
        f"decoder of {config.get('decoder_layers')} layers over {config.get('num_queries')} generic queries and "
        f"a {config.get('points_per_side')}² point grid."
    )
    if adapter:
        base = adapter.get("base_model_name_or_path") or "base/"
        return {
            "architecture": (
                f"A PEFT LoRA adapter (r {adapter.get('r')}, {count_parameters(local_dir):,} parameters with the "
                f"fully trained modules {', '.join(adapter.get('modules_to_save') or []) or 'none'}) over the DINOv "
                f"`{base}`: load it with `PeftModel.from_pretrained(base_model, this_directory)`."
                + (f" Base: {architecture}" if config else "")
            )
        }
    return {"architecture": f"{architecture} {count_parameters(local_dir):,} parameters."}


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


FAMILY = ModelFamily(
    name="dinov",
    register=register,
    artifacts=card_kinds(
        __package__, {"dinov": (_holds_model, _model_details), "dinov_prompt_bank": (_holds_bank, _bank_details)}
    ),
    converter="hf_promptseg.models.dinov.convert_dinov_checkpoint",
)
