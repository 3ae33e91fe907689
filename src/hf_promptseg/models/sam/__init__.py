from hf_promptseg.models.sam.configuration_sam import HfPromptsegSamConfig
from hf_promptseg.models.sam.convert_sam_checkpoint import (
    convert_sam_checkpoint,
    convert_sam_state_dict,
    detect_checkpoint_family,
    infer_sam_config,
)
from hf_promptseg.models.sam.image_processing_sam import HfPromptsegSamImageProcessor
from hf_promptseg.models.sam.processing_sam import HfPromptsegSamProcessor

__all__ = [
    "HfPromptsegSamConfig",
    "HfPromptsegSamImageProcessor",
    "HfPromptsegSamProcessor",
    "convert_sam_checkpoint",
    "convert_sam_state_dict",
    "detect_checkpoint_family",
    "infer_sam_config",
]
