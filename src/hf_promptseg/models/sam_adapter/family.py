"""The SAM-Adapter family's plug-in: the PEFT method, the prompt-free image-segmentation pipeline, the adapter card
and the converter of released checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_promptseg.families import ModelFamily, card_kinds
from hf_promptseg.utils.files import read_json


def register() -> None:
    from hf_promptseg.models.sam_adapter.loading import install_adapter_file_checks
    from hf_promptseg.pipelines.image_segmentation import register_image_segmentation_pipeline
    from hf_promptseg.tuners.sam_adapter import register_sam_adapter

    register_sam_adapter()
    register_image_segmentation_pipeline()
    install_adapter_file_checks()


SAM2_BASE_CLASSES = ("Sam2Model", "Sam3TrackerModel", "EdgeTamModel")


def adapter_base_class(local_dir: Path) -> str:
    """The transformers class an adapter directory was saved over (PEFT records it in `auto_mapping`).

    Older directories without it: SAM-Adapter's `encoder_type`, else the local base's `config.json`, else `SamModel`.
    """
    config = read_json(local_dir / "adapter_config.json")
    recorded = (config.get("auto_mapping") or {}).get("base_model_class")
    if recorded:
        return recorded
    if config.get("encoder_type") == "sam2_hiera":
        return "Sam2Model"
    base = config.get("base_model_name_or_path")
    if base and (Path(base) / "config.json").is_file():
        model_type = read_json(Path(base) / "config.json").get("model_type")
        return {"sam2": "Sam2Model", "sam3_tracker": "Sam3TrackerModel", "edgetam": "EdgeTamModel"}.get(
            model_type, "SamModel"
        )
    return "SamModel"


def _holds_adapter(local_dir: Path) -> bool:
    return (local_dir / "adapter_config.json").is_file() and adapter_base_class(local_dir) not in SAM2_BASE_CLASSES


def _holds_sam2_adapter(local_dir: Path) -> bool:
    return (local_dir / "adapter_config.json").is_file() and adapter_base_class(local_dir) in SAM2_BASE_CLASSES


def _adapter_details(local_dir: Path) -> dict[str, Any]:
    config = read_json(local_dir / "adapter_config.json")
    return {
        "base_model": config.get("base_model_name_or_path"),
        "base_model_class": adapter_base_class(local_dir),
        "method": "LoRA" if str(config.get("peft_type", "")).upper() == "LORA" else "SAM-Adapter",
        "modules_to_save": ", ".join(config.get("modules_to_save") or []) or "none",
    }


def _check_adapter(local_dir: Path) -> None:
    from hf_promptseg.models.sam_adapter.loading import check_adapter_dir

    check_adapter_dir(local_dir)


FAMILY = ModelFamily(
    name="sam_adapter",
    register=register,
    artifacts=card_kinds(
        __package__,
        {
            "sam_adapter": (_holds_adapter, _adapter_details, _check_adapter),
            "sam2_adapter": (_holds_sam2_adapter, _adapter_details, _check_adapter),
        },
    ),
    converter="hf_promptseg.models.sam_adapter.convert_sam_adapter_checkpoint",
)
