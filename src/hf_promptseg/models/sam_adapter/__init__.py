"""SAM-Adapter on transformers' SAM: checkpoint import and prompt-free prediction."""

from hf_promptseg.models.sam_adapter.convert_sam_adapter_checkpoint import (
    build_sam_adapter_model,
    convert_sam_adapter_checkpoint,
    split_sam_adapter_state_dict,
)

__all__ = ["build_sam_adapter_model", "convert_sam_adapter_checkpoint", "split_sam_adapter_state_dict"]
