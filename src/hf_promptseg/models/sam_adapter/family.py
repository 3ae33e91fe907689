"""The SAM-Adapter family's plug-in: the PEFT method, the prompt-free image-segmentation pipeline, the adapter card
and the converter of released checkpoints."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from hf_promptseg.families import ArtifactKind, ModelFamily
from hf_promptseg.utils.files import read_json


def register() -> None:
    from hf_promptseg.pipelines.image_segmentation import register_image_segmentation_pipeline
    from hf_promptseg.tuners.sam_adapter import register_sam_adapter

    register_sam_adapter()
    register_image_segmentation_pipeline()


def _holds_adapter(local_dir: Path) -> bool:
    return (local_dir / "adapter_config.json").is_file()


def _adapter_details(local_dir: Path) -> dict[str, Any]:
    config = read_json(local_dir / "adapter_config.json")
    return {
        "base_model": config.get("base_model_name_or_path"),
        "method": "LoRA" if str(config.get("peft_type", "")).upper() == "LORA" else "SAM-Adapter",
        "modules_to_save": ", ".join(config.get("modules_to_save") or []) or "none",
    }


def _add_convert_command(subparsers) -> None:
    from hf_promptseg.models.sam_adapter.convert_sam_adapter_checkpoint import add_cli_parser

    add_cli_parser(subparsers)


FAMILY = ModelFamily(
    name="sam_adapter",
    register=register,
    artifacts=(
        ArtifactKind(
            name="sam_adapter",
            template=resources.files(__package__) / "model_card.md",
            library_name="peft",
            pipeline_tag="image-segmentation",
            tags=("sam", "sam-adapter", "peft", "hf-promptseg"),
            summary="Prompt-free foreground segmentation with an adapter over a frozen SAM encoder.",
            limitations="The adapter is tied to the width and depth of its base model; it segments the foreground "
            "class it was trained for (e.g. camouflaged objects, shadows, polyps) without prompts.",
            holds=_holds_adapter,
            details=_adapter_details,
        ),
    ),
    add_convert_command=_add_convert_command,
)
